"""Prompt token ids for infilling in the formats the model was trained on, built with prompt_format (the module
the corpus tokenizer builds training documents with): PSM at file level, and the repository format with the other
files before the current one at repository level. A tokenizer without the needed control tokens is a 400 naming them.

With token healing (healing.py) the text before the cursor is backed up: the end of the prefix, or of the text
typed after the middle token when there is some, since that is where the middle continues.
"""

from __future__ import annotations

from typing import Sequence

from ..eval.context import fit_infill
from ..healing import HealedPrompt, heal_tail
from ..prompt_format import (
    FILE_SEP,
    FIM_CONTROL_TOKENS,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    REPO_NAME,
    FimIds,
    RepoIds,
    encode_pieces,
    fim_ids,
    missing_tokens,
    psm,
    repo_file,
    repo_head,
    repo_ids,
)
from .protocol import APIError


def _unsupported(tokenizer, names: Sequence[str], param: str, why: str) -> APIError:
    return APIError(400, f"{param}: the model's tokenizer has no {', '.join(missing_tokens(tokenizer, names))} token, "
                         f"so it cannot {why}", param=param, code="unsupported_by_model")


def fim_ids_or_400(tokenizer, param: str) -> FimIds:
    ids = fim_ids(tokenizer)
    if ids is None:
        raise _unsupported(tokenizer, (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE), param, "fill in the middle")
    return ids


def repo_ids_or_400(tokenizer, param: str) -> RepoIds:
    ids = repo_ids(tokenizer)
    if ids is None:
        raise _unsupported(tokenizer, (REPO_NAME, FILE_SEP), param, "read a repository-level prompt")
    return ids


def fim_ids_prompt(tokenizer, prefix: list[int], suffix: list[int], param: str = "suffix") -> list[int]:
    """PSM prompt from already-encoded prefix and suffix."""
    return encode_pieces(tokenizer, psm(fim_ids_or_400(tokenizer, param), prefix, suffix))


def healed_fim(tokenizer, prefix: list[int], suffix: list[int], typed: Sequence[int] = (), heal: bool = True,
               param: str = "suffix") -> HealedPrompt:
    """PSM prompt + the ids typed after the middle token, with token healing at the cursor: the end of `typed`, or
    of the prefix when nothing is typed."""
    removed = b""
    if heal and typed:
        typed, removed = heal_tail(tokenizer, typed)
    elif heal:
        prefix, removed = heal_tail(tokenizer, prefix)
    return HealedPrompt(fim_ids_prompt(tokenizer, prefix, suffix, param) + list(typed), removed)


def repo_infill_ids(tokenizer, *, repo: str, files: Sequence[tuple[str, str]], path: str, prefix: str, suffix: str,
                    typed: str, room: int, heal: bool = True) -> tuple[HealedPrompt, bool]:
    """The repository-level FIM prompt for the file `path` with the other `files` [(path, text)] before it, cut to
    `room` tokens: whole extra files are dropped from the front first, then the far ends of prefix and suffix
    (keeping the code nearest the cursor); token healing at the cursor when `heal`. Returns (the prompt, whether
    anything was cut)."""
    head: list[int] = []
    file_ids: list[list[int]] = []
    current: list[int] = []
    if files:
        ids = repo_ids_or_400(tokenizer, "input_extra")
        head = encode_pieces(tokenizer, repo_head(ids, repo))
        file_ids = [encode_pieces(tokenizer, repo_file(ids, p, [text])) for p, text in files]
        current = encode_pieces(tokenizer, repo_file(ids, path, [], last=True))
    pre_ids, suf_ids, typed_ids = tokenizer.encode(prefix), tokenizer.encode(suffix), tokenizer.encode(typed)
    fixed = len(head) + len(current) + len(typed_ids) + FIM_CONTROL_TOKENS
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
