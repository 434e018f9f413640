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
  chat:       Qwen2.5-Coder-Instruct's (ChatML): a system turn (the template's default when the conversation has
              none), then per message <|im_start|>{role}\\n{content}<|im_end|>\\n, and <|im_start|>assistant\\n
              for the model to answer after; the answer ends with <|im_end|>. CHAT_TEMPLATE is the same in Jinja,
              for tokenizer_config.json, so transformers' apply_chat_template gives the same ids.

Plain completion (no FIM, no chat) never samples a control token but the one that ends it: control_ids() lists
them, and the decode loop (sequence.banned_ids) bans all but EOS and the request's end tokens.

Serving uses PSM: the prompt is PSM up to the middle token, and the middle is what the model writes. The model is
trained on both orders; in SPM the prefix is encoded together with the middle, so PSM is the order whose prompt
tokens are exactly the training tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import UserError

EOS = "<|endoftext|>"
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"
REPO_NAME, FILE_SEP = "<|repo_name|>", "<|file_sep|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# EOS first so that a freshly trained tokenizer gives it id 0; then Qwen2.5-Coder's FIM and repository tokens in its
# order, and its chat tokens last, so that the ids of tokenizers trained before them stay where they were.
SPECIAL_TOKENS = (EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD, REPO_NAME, FILE_SEP, IM_START, IM_END)
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


def control_ids(tokenizer) -> frozenset[int]:
    """Every control token id of the tokenizer: ours that it has, and any other special token it declares (a
    HuggingFace tokenizer may have more, such as Qwen's vision tokens). None of them is ever text. A bare tokenizer
    (encode and decode only, as the decode loop needs) has none."""
    special_id = getattr(tokenizer, "special_id", None)
    ours = {special_id(name) for name in SPECIAL_TOKENS} - {None} if special_id else set()
    return frozenset(ours | set(getattr(tokenizer, "special_ids", ())))


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


# ---- chat (Qwen2.5-Coder-Instruct's ChatML) ------------------------------------------------------------------------

DEFAULT_SYSTEM_PROMPT = "You are a helpful coding assistant."
CHAT_ROLES = ("system", "user", "assistant")
# Qwen2.5-Coder-Instruct's template without its tool-calling branches, with our default system prompt. Kept in step
# with chat_pieces() by tests/test_chat.py (transformers renders this; we render the pieces).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


@dataclass(frozen=True)
class ChatFormat:
    """A tokenizer's chat format: its two chat token ids and the default system prompt of its template (None: the
    template adds no system turn to a conversation without one)."""
    im_start: int
    im_end: int
    default_system: str | None


def chat_messages(messages: Sequence[Mapping], where: str = "messages") -> list[dict[str, str]]:
    """The conversation as [{role, content}] checked: roles system/user/assistant, content a string (or OpenAI's list
    of text parts), a system message only first."""
    if not messages:
        raise UserError(f"{where}: the conversation is empty")
    out = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in CHAT_ROLES:
            raise UserError(f"{where}[{i}].role: {role!r} is not one of {', '.join(CHAT_ROLES)}")
        if isinstance(content, list):  # OpenAI's content parts: only text can be rendered
            if not all(isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise UserError(f"{where}[{i}].content: only text parts ({{'type': 'text', 'text': ...}}) are "
                                "supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise UserError(f"{where}[{i}].content must be a string")
        if role == "system" and i > 0:
            raise UserError(f"{where}[{i}]: a system message may only come first")
        out.append({"role": role, "content": content})
    return out


def chat_pieces(fmt: ChatFormat, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
                ) -> list[Piece]:
    """The conversation's pieces: a turn is <|im_start|>, "{role}\\n{content}", <|im_end|>, "\\n". The text between
    two control tokens is one piece, as a tokenizer that parses the rendered template splits it."""
    turns = list(messages)
    if (not turns or turns[0]["role"] != "system") and fmt.default_system is not None:
        turns.insert(0, {"role": "system", "content": fmt.default_system})
    out: list[Piece] = []
    for m in turns:
        out += [fmt.im_start, f"{m['role']}\n{m['content']}", fmt.im_end, "\n"]
    if add_generation_prompt:
        out += [fmt.im_start, "assistant\n"]
    return out


def chat_prompt(tokenizer, fmt: ChatFormat, messages: Sequence[Mapping[str, str]],
                add_generation_prompt: bool = True) -> list[int]:
    return encode_pieces(tokenizer, chat_pieces(fmt, messages, add_generation_prompt))


def chat_format(tokenizer, template: str | None = None) -> ChatFormat | None:
    """The chat format of `template` (default: the tokenizer's own) with the tokenizer's chat tokens, or None when
    there is no template, no <|im_start|>/<|im_end|> token, or a template that renders conversations differently
    from chat_pieces (another family's)."""
    template = template or getattr(tokenizer, "chat_template", None)
    ids = _ids(tokenizer, (IM_START, IM_END))
    if not template or ids is None:
        return None
    return _template_format(template, *ids)


def require_chat_format(tokenizer) -> ChatFormat:
    fmt = chat_format(tokenizer)
    if fmt is None:
        raise UserError(f"{chat_unsupported_reason(tokenizer)}; use plain completion instead")
    return fmt


def chat_unsupported_reason(tokenizer) -> str:
    missing = missing_tokens(tokenizer, (IM_START, IM_END))
    if missing:
        return f"this model's tokenizer has no {', '.join(missing)} token, so it has no chat format"
    if not getattr(tokenizer, "chat_template", None):
        return "this model's tokenizer has no chat template (tokenizer_config.json's chat_template)"
    return "this model's chat template is not in the <|im_start|>/<|im_end|> form this project renders"


def render_template(template: str, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
    """A Jinja chat template rendered as transformers renders it (a sandbox; trim_blocks and lstrip_blocks)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                            tools=None)


# A conversation with every kind of turn, rendered both ways to check that a template is in our form.
_PROBE = ({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"})


@lru_cache(maxsize=8)
def _template_format(template: str, im_start: int, im_end: int) -> ChatFormat | None:
    """The default system prompt is what the template puts before a conversation that has no system message; the
    template is ours in form if, given that, chat_pieces renders the probe conversations to the same text."""
    try:
        text = render_template(template, _PROBE, True)
        with_system = render_template(template, [{"role": "system", "content": "s"}, *_PROBE], True)
    except TemplateError:
        return None
    head = IM_START + "system\n"
    default = text[len(head):text.index(IM_END)] if text.startswith(head) and IM_END in text else None
    fmt = ChatFormat(im_start, im_end, default)
    names = {im_start: IM_START, im_end: IM_END}

    def as_text(messages) -> str:
        return "".join(names[p] if isinstance(p, int) else p for p in chat_pieces(fmt, messages))

    ok = as_text(_PROBE) == text and as_text([{"role": "system", "content": "s"}, *_PROBE]) == with_system
    return fmt if ok else None
