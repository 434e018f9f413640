"""Every prompt format the project trains on and serves, in one place. The corpus tokenizer (data/), the evaluations
(eval/) and the server (serve/) all build their prompts here, so what a model reads when it is served is what it
read in training, token for token (tests/test_prompt_format.py checks the corpus builder against the server).

Control tokens are Qwen2.5-Coder's (its tokenizer_config.json). A prompt is a list of pieces: an int is a control
token id, a str is text encoded on its own, a list of ints is text already encoded. Text pieces are never joined with
the control tokens before encoding, so a literal "<|fim_prefix|>" typed in code can never become a control token.

  FIM, PSM:   <|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}
  FIM, SPM:   <|fim_prefix|><|fim_suffix|>{suffix}<|fim_middle|>{prefix}{middle}   (Bavarian et al.'s variant 2)
  repository: <|repo_name|>{repo}\\n<|file_sep|>{path}\\n{content}\\n<|file_sep|>{path}\\n{content}...
              (a file's content may itself be a FIM rearrangement; the last file ends with EOS in training)
  synthesis:  CodeGen's multi-turn format (MTPB): a preamble, then per turn "# {instruction}\\n" and the code the
              model wrote for it, truncated where the official sampler cuts a turn, plus a blank line.

Serving uses PSM: the prompt is PSM up to the middle token, and the middle is what the model writes. The model is
trained on both orders; in SPM the prefix is encoded together with the middle, so PSM is the order whose prompt
tokens are exactly the training tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .errors import UserError

EOS = "<|endoftext|>"
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"
REPO_NAME, FILE_SEP = "<|repo_name|>", "<|file_sep|>"
# In Qwen2.5-Coder's id order, EOS first so that a freshly trained tokenizer gives it id 0.
SPECIAL_TOKENS = (EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD, REPO_NAME, FILE_SEP)
# Tokens that end a middle besides EOS: a model trained on repository documents may move on to the next file.
FIM_END_TOKENS = (EOS, FIM_PAD, FILE_SEP)
FILE_END = "\n"  # after every file of a repository document but the last
# How model families spell a PSM prompt as text, for servers that take no `suffix` field (vLLM, llama.cpp's OpenAI
# endpoint): the prompt carries the model's own FIM tokens and the server tokenizes them as special tokens.
FIM_TEXT_FORMATS: dict[str, str] = {
    "qwen": FIM_PREFIX + "{prefix}" + FIM_SUFFIX + "{suffix}" + FIM_MIDDLE,  # ours, Qwen2.5-Coder, CodeGemma
    "starcoder": "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",  # also SantaCoder, StarCoder2
    "codellama": "<PRE> {prefix} <SUF>{suffix} <MID>",
    "deepseek": "<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
}
# Text that ends a middle when a server prints special tokens instead of stopping at them.
FIM_TEXT_STOPS = (*FIM_END_TOKENS, FIM_PREFIX, "<fim_prefix>", "<EOT>", "<｜end▁of▁sentence｜>")

Piece = int | str | Sequence[int]


@dataclass(frozen=True)
class FimIds:
    prefix: int
    middle: int
    suffix: int


@dataclass(frozen=True)
class RepoIds:
    repo_name: int
    file_sep: int


def _ids(tokenizer, names: Sequence[str]) -> list[int] | None:
    ids = [tokenizer.special_id(name) for name in names]
    return None if any(i is None for i in ids) else ids


def missing_tokens(tokenizer, names: Sequence[str]) -> list[str]:
    return [name for name in names if tokenizer.special_id(name) is None]


def fim_ids(tokenizer) -> FimIds | None:
    """The tokenizer's FIM ids, or None when it has not all three (the model was not trained to infill)."""
    ids = _ids(tokenizer, (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX))
    return None if ids is None else FimIds(*ids)


def repo_ids(tokenizer) -> RepoIds | None:
    ids = _ids(tokenizer, (REPO_NAME, FILE_SEP))
    return None if ids is None else RepoIds(*ids)


def require_fim_ids(tokenizer) -> FimIds:
    ids = fim_ids(tokenizer)
    if ids is None:
        missing = missing_tokens(tokenizer, (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE))
        raise UserError(f"the tokenizer has no {', '.join(missing)} token: this model was not trained for infilling")
    return ids


def fim_end_ids(tokenizer) -> tuple[int, ...]:
    return tuple(i for i in (tokenizer.special_id(t) for t in FIM_END_TOKENS) if i is not None)


# ---- fill in the middle -------------------------------------------------------------------------------------------

def psm(ids: FimIds, prefix: Piece, suffix: Piece, middle: Piece = "") -> list[Piece]:
    """PSM pieces; with the default empty middle, the prompt a model infills from."""
    return [ids.prefix, prefix, ids.suffix, suffix, ids.middle, middle]


def spm(ids: FimIds, prefix: str, suffix: str, middle: str = "") -> list[Piece]:
    """SPM pieces (variant 2): prefix and middle are one text, as a model trained this way read them."""
    return [ids.prefix, ids.suffix, suffix, ids.middle, prefix + middle]


FIM_CONTROL_TOKENS = 3  # the prompt tokens of psm() besides the text


# ---- the repository format --------------------------------------------------------------------------------------

def repo_head(ids: RepoIds, repo: str) -> list[Piece]:
    return [ids.repo_name, repo + "\n"]


def repo_file(ids: RepoIds, path: str, content: Sequence[Piece], last: bool = False) -> list[Piece]:
    """A file of a repository document: its separator and path, its content pieces (text, or a FIM
    rearrangement), and the newline between files unless it is the last (which training ends with EOS and a
    prompt ends with the file being written)."""
    return [ids.file_sep, path + "\n", *content, *(() if last else (FILE_END,))]


# ---- rendering --------------------------------------------------------------------------------------------------

def encode_pieces(tokenizer, pieces: Sequence[Piece]) -> list[int]:
    """Token ids of a prompt: each text piece encoded on its own, control ids and encoded pieces spliced in."""
    out: list[int] = []
    for p in pieces:
        if isinstance(p, int):
            out.append(p)
        elif isinstance(p, str):
            if p:
                out.extend(tokenizer.encode(p))
        else:
            out.extend(p)
    return out


def describe_fim(tokenizer) -> dict | None:
    """The FIM and repository formats as a client configures itself from them (/v1/models, /props): the token
    strings, their order and the templates, or None for a model without FIM tokens."""
    if fim_ids(tokenizer) is None:
        return None
    out = {"mode": "psm", "order": ["prefix", "suffix", "middle"],
           "tokens": {"prefix": FIM_PREFIX, "suffix": FIM_SUFFIX, "middle": FIM_MIDDLE},
           "template": f"{FIM_PREFIX}{{prefix}}{FIM_SUFFIX}{{suffix}}{FIM_MIDDLE}",
           "end_tokens": [t for t in FIM_END_TOKENS if tokenizer.special_id(t) is not None]}
    if repo_ids(tokenizer) is not None:
        out["repo"] = {"tokens": {"repo_name": REPO_NAME, "file_sep": FILE_SEP},
                       "template": f"{REPO_NAME}{{repo}}\n{FILE_SEP}{{path}}\n{{content}}{FILE_END}"}
    return out


# ---- multi-turn synthesis (CodeGen's MTPB format) -----------------------------------------------------------------

SYNTH_PREAMBLE = "# Import libraries.\n\nimport numpy as np\n\n"


def turn_prompt(instruction: str) -> str:
    return f"# {instruction}\n"


def turn_code(code: str) -> str:
    """A turn's code as the history holds it: without trailing whitespace, so every turn is followed by exactly one
    blank line, whether its code was cut at a stop, by `truncate_turn`, typed by hand or written for training."""
    return code.rstrip()


def synth_history(turns: Sequence[str], completions: Sequence[str], preamble: str = SYNTH_PREAMBLE) -> str:
    """The program after every turn: the preamble, then per turn its instruction and its code + a blank line."""
    return preamble + "".join(turn_prompt(t) + turn_code(c) + "\n\n" for t, c in zip(turns, completions))


_TERMINALS = [re.compile(p, re.MULTILINE) for p in (r"^#", re.escape(EOS), r"^'''", r'^"""', r"\n\n\n")]


def truncate_turn(completion: str) -> str:
    """The official MTPB sampler's cut of a turn's code: before a second top-level print or def, and before the first
    top-level comment, end-of-text marker, top-level docstring quote or two blank lines."""
    for keyword in (r"^print", r"^def"):
        starts = [m.start() for m in re.finditer(keyword, completion, re.MULTILINE)]
        if len(starts) > 1:
            completion = completion[: starts[1]]
    cuts = [m.start() for m in (t.search(completion) for t in _TERMINALS) if m]
    return completion[: min(cuts)] if cuts else completion
