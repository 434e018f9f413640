"""Prompt token ids for infilling, in the formats the model was trained on (data/tokenize.py): text pieces encoded
separately and the special ids spliced in, so a literal "<|fim_prefix|>" typed in code is never a control token.

  file level:  <|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>
  repo level:  <|repo_name|>{repo}\\n <|file_sep|>{path}\\n{text}\\n ... <|file_sep|>{path}\\n + the file-level FIM

With token healing (healing.py) the text before the cursor is backed up: the end of the prefix, or of the text
typed after the middle token when there is some, since that is where the middle continues.
"""

from __future__ import annotations

from typing import Sequence

from ..eval.context import fit_infill
from ..healing import HealedPrompt, heal_tail
from ..eval.infill import END_TOKENS, FIM_TOKENS
from .protocol import APIError

REPO_TOKENS = ("<|repo_name|>", "<|file_sep|>")


def special_ids(tokenizer, names: Sequence[str], param: str, why: str) -> list[int]:
    ids = [tokenizer.special_id(name) for name in names]
    missing = [name for name, i in zip(names, ids) if i is None]
    if missing:
        raise APIError(400, f"{param}: the model's tokenizer has no {', '.join(missing)} token, so it cannot {why}",
                       param=param, code="unsupported_by_model")
    return ids


def end_token_ids(tokenizer) -> tuple[int, ...]:
    """Tokens that end a middle besides EOS (a model trained on repository data may move on to the next file)."""
    return tuple(i for i in (tokenizer.special_id(t) for t in END_TOKENS) if i is not None)


def fim_ids(tokenizer, prefix: list[int], suffix: list[int], param: str = "suffix") -> list[int]:
    """PSM prompt from already-encoded prefix and suffix."""
    pre, suf, mid = special_ids(tokenizer, FIM_TOKENS, param, "fill in the middle")
    return [pre, *prefix, suf, *suffix, mid]


def healed_fim(tokenizer, prefix: list[int], suffix: list[int], typed: Sequence[int] = (), heal: bool = True,
               param: str = "suffix") -> HealedPrompt:
    """PSM prompt + the ids typed after the middle token, with token healing at the cursor: the end of `typed`, or
    of the prefix when nothing is typed."""
    removed = b""
    if heal and typed:
        typed, removed = heal_tail(tokenizer, typed)
    elif heal:
        prefix, removed = heal_tail(tokenizer, prefix)
    return HealedPrompt(fim_ids(tokenizer, prefix, suffix, param) + list(typed), removed)


def repo_infill_ids(tokenizer, *, repo: str, files: Sequence[tuple[str, str]], path: str, prefix: str, suffix: str,
                    typed: str, room: int, heal: bool = True) -> tuple[HealedPrompt, bool]:
    """The repository-level FIM prompt for the file `path` with the other `files` [(path, text)] before it, cut to
    `room` tokens: whole extra files are dropped from the front first, then the far ends of prefix and suffix
    (keeping the code nearest the cursor); token healing at the cursor when `heal`. Returns (the prompt, whether
    anything was cut)."""
    head: list[int] = []
    file_ids: list[list[int]] = []
    if files:
        repo_name, file_sep = special_ids(tokenizer, REPO_TOKENS, "input_extra", "read a repository-level prompt")
        head = [repo_name, *tokenizer.encode(repo + "\n")]
        file_ids = [[file_sep, *tokenizer.encode(p + "\n"), *tokenizer.encode(text), *tokenizer.encode("\n")]
                    for p, text in files]
        current = [file_sep, *tokenizer.encode(path + "\n")]
    else:
        current = []
    pre_ids, suf_ids, typed_ids = tokenizer.encode(prefix), tokenizer.encode(suffix), tokenizer.encode(typed)
    fixed = len(head) + len(current) + len(typed_ids) + 3  # the three FIM tokens
    cut = False
    while file_ids and fixed + sum(map(len, file_ids)) + len(pre_ids) + len(suf_ids) > room:
        file_ids.pop(0)
        cut = True
    space = room - fixed - sum(map(len, file_ids))
    if space < 0:
        raise APIError(400, f"prompt: the typed text and file names alone take {fixed} tokens; the context leaves "
                            f"{room} for the prompt", param="prompt", code="context_length_exceeded")
    if len(pre_ids) + len(suf_ids) > space:
        pre_ids, suf_ids = fit_infill(pre_ids, suf_ids, space)
        cut = True
    fim = healed_fim(tokenizer, pre_ids, suf_ids, typed_ids, heal, "input_suffix")
    return HealedPrompt(head + [t for f in file_ids for t in f] + current + fim.ids, fim.removed), cut
