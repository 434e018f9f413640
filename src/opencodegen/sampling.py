"""Sampling from a GPT with its KV cache: greedy, temperature, top-k and top-p decoding; n samples per prompt sharing
one prompt prefill; prompts of different lengths batched without padding; stop strings on decoded text; streaming;
speculative decoding with prompt-lookup drafts (speculative.py), which changes the speed and not the output.

Stable pieces the server reuses for continuous batching (keep their signatures):
  - `SamplingParams`, `Completion`, `HUMANEVAL_STOP`
  - `sequence_generator(seed, sample_index, prompt_ids)`: the RNG of one sequence. Sample j of a prompt with seed s
    always draws from this generator, so a request gives the same output alone, batched with others, or in the server.
  - `sample_tokens(logits, params, generators)` (a batch of rows, each with its own params) and
    `next_token(logits_row, params, generator)` (one row)
  - `IncrementalDecoder` (token ids -> text deltas) and `StopChecker` (stop strings on a text stream, and how much of
    the text is safe to stream)
  - `SequenceState` (one sample being decoded), `verify_drafts` (sample each row's tokens, its speculative draft's
    as far as they agree), `draft_tokens` and `forward_drafts` (the next forward pass, drafts included),
    `end_token_set`, `banned_ids`, `ban`, `compact_rows` (finished cache rows filled from the end) and `eos_id_of`:
    generate()'s own decode-loop pieces, so the server's loop is generate()'s loop

A custom decode loop reproduces generate() token for token if, per sample j of a prompt: the generator is
sequence_generator(seed, j, prompt_ids, removed=...) (not for greedy params); the first token is drawn from the
logits of the prompt's last position; every step calls sample_tokens (or next_token) once on that row's fp32
logits, passed through healing.constrain with the row's SequenceState.respeller (token healing; a no-op for other
rows) and ban (SequenceState.banned: banned_ids); the sequence ends on EOS / stop_token_ids (unless ignore_eos),
when StopChecker.stopped, or after max_new_tokens clamped so that prompt + completion fits model.config.block_size;
text comes from StopChecker(IncrementalDecoder(...).push(t)) less the re-spelled text, control tokens never rendered
(SequenceState does all of this)."""

from __future__ import annotations

import hashlib
import math
import time
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import torch

from .errors import UserError
from .healing import HealedPrompt, Respeller, constrain, token_index
from .model.transformer import KVCache
from .prompt_format import control_ids
from .speculative import NgramDrafter, SpeculationStats

# Codex's and CodeGen's HumanEval stops, plus the two that bigcode-evaluation-harness adds.
HUMANEVAL_STOP: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint", "\n@", "\n```")

# Memory the KV cache of one generate() batch may take when max_batch_size is not given; more sequences run in
# successive batches (same results: every sequence has its own RNG).
DEFAULT_KV_BUDGET_BYTES = 4 * 2**30


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 is greedy (and so, in effect, is top_k 1); top_k 0 and top_p 1.0 disable those
    filters.

    stop: strings that end a completion (checked on decoded text; the completion is cut before the earliest one).
    stop_token_ids: token ids that end a completion besides EOS (e.g. <|file_sep|> for FIM); ignore_eos keeps
    sampling past EOS (benchmarks that need a fixed length). seed None draws one from torch's global RNG.

    A completion is text: the control tokens of the tokenizer (FIM, repository, chat: prompt_format.control_ids)
    are never sampled except EOS and stop_token_ids, the ones that end it (their logits are -inf: banned_ids), and
    never rendered in its text. So plain completion never writes <|fim_middle|>, while a FIM request, whose prompt
    holds the FIM tokens, still ends at its end tokens. control_tokens=True samples from the model's own
    distribution instead (parity with other implementations).
    logprobs None: none; 0: the chosen token's log-probability under the model; k > 0: also the k most likely
    alternatives at each step. Log-probabilities are those of the unmodified model distribution (before temperature
    and filtering), as in vLLM, so they measure the model rather than the sampler.

    speculative_tokens k > 0: speculative decoding with prompt-lookup drafts (opencodegen.speculative): each step
    proposes up to k tokens by matching the sequence's last n tokens (n from prompt_lookup_max down to
    prompt_lookup_min) against its earlier text, and verifies them all in one forward pass. It changes the speed,
    not the output: see generate().

    max_time_ms: a time budget for decoding, counted from the sequence's first sampled token; once it has passed
    and the completion holds a line break, the sequence ends with finish_reason "time" (llama.cpp's
    t_max_predict_ms: an editor gets at least the rest of the current line, and no more than it can wait for)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    logprobs: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    control_tokens: bool = False
    speculative_tokens: int = 0
    prompt_lookup_min: int = 1
    prompt_lookup_max: int = 3
    max_time_ms: float | None = None

    def __post_init__(self) -> None:
        # Accept a single string or any sequence for stop, stored as a tuple so params stay hashable and immutable.
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            problems.append(f"temperature={self.temperature} must be a finite number >= 0")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p={self.top_p} must be in (0, 1]")
        if self.top_k < 0:
            problems.append(f"top_k={self.top_k} must be >= 0 (0 disables it)")
        if self.n < 1:
            problems.append(f"n={self.n} must be >= 1")
        if self.logprobs is not None and self.logprobs < 0:
            problems.append(f"logprobs={self.logprobs} must be None or >= 0")
        if any(s == "" for s in stop):
            problems.append("stop strings must not be empty")
        if self.speculative_tokens < 0:
            problems.append(f"speculative_tokens={self.speculative_tokens} must be >= 0 (0 disables speculation)")
        if not 1 <= self.prompt_lookup_min <= self.prompt_lookup_max:
            problems.append(f"prompt_lookup_min={self.prompt_lookup_min} and prompt_lookup_max="
                            f"{self.prompt_lookup_max} need 1 <= min <= max")
        if self.max_time_ms is not None and not (self.max_time_ms > 0 and math.isfinite(self.max_time_ms)):
            problems.append(f"max_time_ms={self.max_time_ms} must be a finite number > 0 (None: no time budget)")
        if problems:
            raise UserError("sampling parameters: " + "; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Completion:
    """One sample. token_ids holds every sampled token, including the EOS or the token that completed a stop string;
    text is the decoded completion without EOS (nor any control token), cut before the earliest stop string.
    logprobs[i] belongs to token_ids[i]; top_logprobs[i] maps token id -> log-probability of the most likely
    alternatives at step i. speculation: draft and acceptance counts when params.speculative_tokens > 0. For a
    HealedPrompt the first tokens re-spell the text healing removed from the prompt: they are in token_ids, and that
    text is not in text."""

    text: str
    token_ids: list[int]
    # "stop" (EOS, stop token or stop string) | "length" (max_new_tokens or the context is full) | "time"
    # (params.max_time_ms passed after a line break)
    finish_reason: str
    logprobs: list[float] | None = None
    top_logprobs: list[dict[int, float]] | None = None
    speculation: SpeculationStats | None = None


# ---- randomness ------------------------------------------------------------------------------------------------

def sequence_generator(seed: int, sample_index: int = 0, prompt_ids: Sequence[int] = (),
                       device: str | torch.device = "cpu", removed: bytes = b"") -> torch.Generator:
    """The RNG of sample `sample_index` of `prompt_ids` in a request with `seed`. It depends on nothing else (not the
    batch, not the prompt's position in it), which makes outputs independent of batch composition; the prompt is
    part of the key so different prompts sampled with one seed draw independent streams. Hashed, so nearby seeds
    don't share streams either. `removed` is the text token healing backed the prompt up by (healing.py): two
    prompts backed up to the same ids differ there, and a prompt with nothing removed keeps its stream."""
    h = hashlib.blake2b(f"{int(seed)}:{int(sample_index)}:".encode(), digest_size=8)
    h.update(array("q", prompt_ids).tobytes())
    if removed:
        h.update(b":healed:" + removed)
    g = torch.Generator(device=device)
    g.manual_seed(int.from_bytes(h.digest(), "little") >> 1)  # manual_seed takes a non-negative 63-bit value
    return g


def random_seed() -> int:
    """A seed from torch's global RNG, so torch.manual_seed(...) before generate() makes seedless calls repeatable."""
    return int(torch.randint(0, 2**62, (1,)).item())


# ---- one sampling step -----------------------------------------------------------------------------------------

FIRST_CANDIDATES = 64  # top-p looks at this many best tokens first and widens (x8) only for rows that need more


def _filtered_probs(logits: torch.Tensor, params: Sequence[SamplingParams]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Applies temperature, then top-k, then top-p (the order transformers uses) to rows of logits (S, V), each row
    with its own params. Returns (probs (S, K), candidate token ids (S, K), best first) or (probs (S, V), None) when
    no row filters. Filtered-out candidates have probability 0; the kept ones are renormalised.

    Top-p needs the tokens in order of probability, but a full sort of the vocabulary per row per step would dominate
    sampling with many rows and a large vocabulary. The kept set is a prefix of that order, so it is
    found among the K best (topk) as soon as their mass reaches p; K grows only for rows where it doesn't."""
    device = logits.device
    temps = torch.tensor([p.temperature for p in params], dtype=logits.dtype, device=device)[:, None]
    scaled = logits / temps
    V = scaled.shape[-1]
    if all(p.top_k == 0 and p.top_p >= 1.0 for p in params):
        return torch.softmax(scaled, dim=-1), None
    ks = torch.tensor([p.top_k or V for p in params], device=device)[:, None]
    ps = torch.tensor([p.top_p for p in params], dtype=scaled.dtype, device=device)[:, None]
    full_lse = None
    K = min(V, max(FIRST_CANDIDATES, *(p.top_k for p in params)))
    while True:
        if K == V:  # a stable sort: among equal probabilities the lower token id comes first
            vals, ids = scaled.sort(dim=-1, descending=True, stable=True)
        else:
            vals, ids = scaled.topk(K, dim=-1)
        vals = vals.masked_fill(torch.arange(K, device=device)[None, :] >= ks, -math.inf)
        # Rows whose top-k set lies within the candidates renormalise over it; the others over the whole vocabulary.
        within = ks <= K
        norm = torch.logsumexp(vals, dim=-1, keepdim=True)
        if not bool(within.all()):
            full_lse = torch.logsumexp(scaled, dim=-1, keepdim=True) if full_lse is None else full_lse
            norm = torch.where(within, norm, full_lse)
        probs = torch.exp(vals - norm)
        if K == V or bool((within | (probs.sum(-1, keepdim=True) >= ps)).all()):
            break
        K = min(V, K * 8)
    # Top-p keeps the smallest prefix whose mass reaches p: a candidate stays if the mass strictly before it is < p
    # (the most likely one always stays, its prefix mass being 0).
    mass_before = probs.cumsum(-1) - probs
    probs = probs.masked_fill(mass_before >= ps, 0.0)
    return probs / probs.sum(-1, keepdim=True), ids


def sampling_distribution(logits: torch.Tensor, params: SamplingParams | Sequence[SamplingParams]) -> torch.Tensor:
    """The distribution (B, V) each row's next token is drawn from (one-hot on the argmax when greedy)."""
    rows = [params] * logits.shape[0] if isinstance(params, SamplingParams) else list(params)
    logits = logits.float()
    out = torch.zeros_like(logits)
    for b, p in enumerate(rows):
        if p.greedy:
            out[b, logits[b].argmax()] = 1.0
        else:
            probs, ids = _filtered_probs(logits[b : b + 1], [p])
            out[b : b + 1] = probs if ids is None else out[b : b + 1].scatter(1, ids, probs)
    return out


def sample_tokens(logits: torch.Tensor, params: Sequence[SamplingParams],
                  generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """Next token for each row of logits (B, V); row b uses params[b] and draws from generators[b] (None only for
    greedy rows). Returns token ids (B,) on logits' device.

    Each sampled row consumes exactly one uniform number from its own generator per step (inverse-CDF sampling),
    so a row's tokens never depend on which other rows share the batch."""
    logits = logits.float()
    tokens = logits.argmax(dim=-1)  # greedy rows keep this; argmax picks the first of tied maxima
    # Rows without filters take the cheap full-softmax path; grouping keeps them from forcing a wide top-p search.
    unfiltered = [b for b, p in enumerate(params) if not p.greedy and p.top_k == 0 and p.top_p >= 1.0]
    filtered = [b for b, p in enumerate(params) if not p.greedy and (p.top_k > 0 or p.top_p < 1.0)]
    for group in (unfiltered, filtered):
        if not group:
            continue
        index = torch.tensor(group, device=logits.device)
        rows = logits if len(group) == len(params) else logits.index_select(0, index)
        probs, ids = _filtered_probs(rows, [params[b] for b in group])
        u = torch.cat([torch.rand(1, generator=generators[b], dtype=torch.float64) for b in group])
        pick = _inverse_cdf(probs, u.to(device=logits.device, dtype=probs.dtype))
        tokens[index] = pick if ids is None else ids.gather(1, pick[:, None]).squeeze(1)
    return tokens


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index i with cdf[i-1] <= u·total < cdf[i] for each row. CPU cumsum accumulates in double, so each fp32 CDF
    entry is exact to rounding. right=True skips zero-probability entries (their CDF step is empty)."""
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:].contiguous()
    pick = torch.searchsorted(cdf, u[:, None] * total, right=True)
    # u < 1, but u·total can round up to total: then take the last entry with probability > 0.
    last = torch.searchsorted(cdf, total, right=False)
    return torch.where(pick >= cdf.shape[-1], last, pick).squeeze(1)


def next_token(logits_row: torch.Tensor, params: SamplingParams,
               generator: torch.Generator | None) -> tuple[int, float]:
    """One row (V,): (token id, its log-probability under the unmodified model distribution)."""
    logits_row = logits_row.float()
    token = int(sample_tokens(logits_row[None], [params], [generator])[0])
    return token, float(logits_row[token] - torch.logsumexp(logits_row, dim=-1))


# ---- text: incremental decoding and stop strings -------------------------------------------------------------

class IncrementalDecoder:
    """Turns a growing token sequence into text deltas, decoding only a short window per token (not the whole
    sequence). The window starts a few tokens back because some decoders depend on the left neighbour (e.g. the
    leading-space rule of SentencePiece); a delta is held while it ends in an incomplete UTF-8 character (U+FFFD),
    since byte-level tokens can split a character. The same scheme as vLLM's detokenizer. Tokens in `hidden`
    (control tokens) are not text: they are left out, of the context too."""

    CONTEXT = 5  # prompt tokens kept as left context for the first window

    def __init__(self, tokenizer, prompt_ids: Sequence[int], hidden: frozenset[int] = frozenset()):
        self.decode = tokenizer.decode
        self.hidden = hidden
        self.ids = self.left_context(tokenizer, prompt_ids, hidden)
        self.prefix_offset = 0
        self.read_offset = len(self.ids)
        self.prefix_text = self.decode(self.ids) if self.ids else ""

    @classmethod
    def left_context(cls, tokenizer, prompt_ids: Sequence[int], hidden: frozenset[int] = frozenset()) -> list[int]:
        """The prompt's last text tokens, unless they end inside a character: then the completion's first bytes would
        merge into the prompt's text and no delta would be well defined, so the completion is decoded alone."""
        context = [t for t in prompt_ids[-cls.CONTEXT:] if t not in hidden]
        return [] if context and tokenizer.decode(context).endswith("\ufffd") else context

    def push(self, token: int) -> str:
        """Adds one token; returns the text it completes (possibly "")."""
        if token in self.hidden:
            return ""
        self.ids.append(token)
        text = self.decode(self.ids[self.prefix_offset:])
        if len(text) <= len(self.prefix_text) or text.endswith("\ufffd"):
            return ""
        delta = text[len(self.prefix_text):]
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        self.prefix_text = self.decode(self.ids[self.prefix_offset:self.read_offset])
        return delta

    def flush(self) -> str:
        """Whatever is still held (an incomplete character decodes as U+FFFD, as in a full decode)."""
        text = self.decode(self.ids[self.prefix_offset:])
        delta = text[len(self.prefix_text):]
        self.prefix_offset = self.read_offset = len(self.ids)
        self.prefix_text = ""
        return delta


class StopChecker:
    """Stop strings on a text stream fed in pieces. `push(delta)` appends and returns the text that is now safe to
    stream: text that can no longer turn out to be the start of a stop string. Once a stop string appears, `stopped`
    is set and `text` is cut before the earliest one (by start position, among all stops).

    Each push searches only the tail that a new stop could occupy, so the cost per token doesn't grow with length."""

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(stops)
        self.longest = max((len(s) for s in self.stops), default=0)
        self.text = ""
        self.emitted = 0  # length of the prefix of text already returned to the caller
        self.stopped = False

    def push(self, delta: str) -> str:
        if self.stopped or not delta:
            return ""
        # Nothing before this push contained a stop, so a new one ends inside delta and starts at most
        # longest-1 characters before it.
        start = max(0, len(self.text) - self.longest + 1)
        self.text += delta
        cut = min((i for s in self.stops if (i := self.text.find(s, start)) >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self.stopped = True
            safe = cut
        else:
            safe = len(self.text) - self._partial_stop_length()
        out = self.text[self.emitted:safe]
        self.emitted = max(self.emitted, safe)
        return out

    def flush(self) -> str:
        """At the end of the sequence: the held-back text (a stop string that never completed is ordinary text)."""
        out = self.text[self.emitted:]
        self.emitted = len(self.text)
        return out

    def _partial_stop_length(self) -> int:
        """Length of the longest suffix of text that is a proper prefix of some stop string."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:k]):
                    best = k
                    break
        return best


# ---- generate ----------------------------------------------------------------------------------------------

OnToken = Callable[[int, int, str], None]


class SequenceState:
    """State of one sample being decoded: its RNG, tokens so far, (when stop strings or streaming need it) the
    incremental text, (when speculating) its drafter, which always holds prompt + tokens so far, and (when token
    healing backed the prompt up by `removed`, healing.py) the constraint its first tokens re-spell that text under,
    and how much of the decoded text is that re-spelling rather than completion."""

    def __init__(self, prompt_index: int, sample_index: int, prompt_ids: list[int], max_new: int,
                 params: SamplingParams, seed: int, tokenizer, end_ids: frozenset[int], on_token: OnToken | None,
                 removed: bytes = b""):
        self.prompt_index, self.sample_index = prompt_index, sample_index
        self.prompt_ids, self.max_new, self.params = prompt_ids, max_new, params
        self.generator = None if params.greedy else sequence_generator(seed, sample_index, prompt_ids,
                                                                       removed=removed)
        self.tokenizer, self.end_ids, self.on_token = tokenizer, end_ids, on_token
        self.token_ids: list[int] = []
        self.logprobs: list[float] | None = [] if params.logprobs is not None else None
        self.top_logprobs: list[dict[int, float]] | None = [] if params.logprobs else None
        self.respeller = Respeller(token_index(tokenizer), removed) if removed else None
        self.hidden_chars = len(removed.decode("utf-8"))  # decoded characters that re-spell the prompt's end
        # The time budget starts with the first sampled token (llama.cpp's t_start_generation), not at creation.
        self.deadline: float | None = None
        self.line_break = False  # whether the completion text holds a line break yet (for the time budget)
        text_needed = bool(params.stop) or on_token is not None or bool(removed) or params.max_time_ms is not None
        self.hidden = control_ids(tokenizer)  # never rendered as text (end tokens are not decoded at all)
        self.banned = banned_ids(params, tokenizer)
        self.decoder = IncrementalDecoder(tokenizer, prompt_ids, self.hidden) if text_needed else None
        self.stopper = StopChecker(params.stop) if text_needed else None
        self.drafter, self.speculation = None, None
        if params.speculative_tokens > 0:
            self.drafter = NgramDrafter(prompt_ids, params.prompt_lookup_min, params.prompt_lookup_max)
            self.speculation = SpeculationStats()
        self.completion: Completion | None = None

    def accept(self, token: int) -> bool:
        """Appends a sampled token; returns True when the sequence has finished."""
        self.token_ids.append(token)
        if self.respeller is not None:
            self.respeller.advance(token)
        if self.drafter is not None:
            self.drafter.extend((token,))
        if token in self.end_ids:
            return self._finish("stop", ended_by_token=True)
        if self.decoder is not None:
            delta = self._completion_text(self.decoder.push(token))
            self.line_break = self.line_break or "\n" in delta
            self._emit(self.stopper.push(delta))
            if self.stopper.stopped:
                return self._finish("stop")
        if len(self.token_ids) >= self.max_new:
            return self._finish("length")
        if self.params.max_time_ms is not None:
            now = time.monotonic()
            if self.deadline is None:
                self.deadline = now + self.params.max_time_ms / 1000
            elif self.line_break and now > self.deadline:
                return self._finish("time")
        return False

    def _completion_text(self, delta: str) -> str:
        """The part of a decoded delta after the re-spelled prompt text (stop strings see only completion text)."""
        if self.hidden_chars:
            cut = min(self.hidden_chars, len(delta))
            self.hidden_chars -= cut
            delta = delta[cut:]
        return delta

    def _emit(self, text: str) -> None:
        if text and self.on_token is not None:
            self.on_token(self.prompt_index, self.sample_index, text)

    def _finish(self, reason: str, ended_by_token: bool = False) -> bool:
        if self.decoder is not None:
            # Release what was held back: bytes of an unfinished character, and the start of a stop string that
            # never completed (the end token itself was never decoded: it is not text).
            if not self.stopper.stopped:
                self._emit(self.stopper.push(self._completion_text(self.decoder.flush())))
                reason = "stop" if self.stopper.stopped else reason
            self._emit(self.stopper.flush())
            text = self.stopper.text
        else:
            # One decode at the end, with the same left context the incremental path uses, so both give the text
            # that follows the prompt (a decoder may render a token differently at the start of a string).
            context = IncrementalDecoder.left_context(self.tokenizer, self.prompt_ids, self.hidden)
            ids = [t for t in (self.token_ids[:-1] if ended_by_token else self.token_ids) if t not in self.hidden]
            text = self.tokenizer.decode(context + ids)[len(self.tokenizer.decode(context)):]
        self.completion = Completion(text, self.token_ids, reason, self.logprobs, self.top_logprobs,
                                     self.speculation)
        return True


Prompt = str | Sequence[int] | HealedPrompt


def _healed_prompts(tokenizer, model, prompts: Sequence[Prompt]) -> list[HealedPrompt]:
    if isinstance(prompts, str):
        raise UserError("generate() takes a list of prompts, got a single string")
    out = []
    for p in prompts:
        if not isinstance(p, HealedPrompt):
            p = HealedPrompt(tokenizer.encode(p) if isinstance(p, str) else [int(t) for t in p])
        if not p.ids:  # an empty prompt starts a new document, as after the EOS separator in training data
            p = HealedPrompt([eos_id_of(tokenizer, model)], p.removed)
        out.append(p)
    return out


def eos_id_of(tokenizer, model) -> int | None:
    eos = getattr(tokenizer, "eos_id", None)
    return model.config.eos_token_id if eos is None else eos


def end_token_set(params: SamplingParams, eos: int | None) -> frozenset[int]:
    """The tokens that end a sequence: params.stop_token_ids, and EOS unless params.ignore_eos."""
    return frozenset(params.stop_token_ids) | (frozenset() if eos is None or params.ignore_eos else {eos})


def banned_ids(params: SamplingParams, tokenizer) -> tuple[int, ...]:
    """The ids a completion never samples: every control token but EOS and the stop tokens (none with
    params.control_tokens). EOS stays allowed under ignore_eos too: it is where a document ends."""
    if params.control_tokens:
        return ()
    keep = set(params.stop_token_ids) | {getattr(tokenizer, "eos_id", None)}
    return tuple(sorted(control_ids(tokenizer) - keep))


def _default_batch_size(model, max_len: int, dtype: torch.dtype) -> int:
    c = model.config
    per_row = 2 * c.n_layer * c.n_kv_heads * c.head_dim * max_len * torch.finfo(dtype).bits // 8
    return max(1, DEFAULT_KV_BUDGET_BYTES // per_row)


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[Prompt], params: SamplingParams | None = None,
             on_token: OnToken | None = None, max_batch_size: int | None = None) -> list[list[Completion]]:
    """Samples params.n completions for each prompt (text, token ids, or a HealedPrompt: token healing, healing.py,
    then constrains the first tokens to re-spell its removed text, which the completion's text leaves out).
    Returns completions[prompt][sample].

    Each prompt is prefilled once into its own KV-cache row and copied to its n sample rows; all rows then decode
    together, each continuing from its own length (no padding). Finished rows leave the batch. on_token(prompt_index,
    sample_index, text_delta) streams text that can no longer become part of a stop string; the deltas of a sample
    concatenate to its final text. max_batch_size bounds the rows decoded at once (default: what fits a 4 GiB KV
    cache); results don't depend on it.

    With params.speculative_tokens k > 0, each forward pass feeds a row its last token plus up to k drafted ones
    (rows padded to the longest draft), then samples position by position exactly as without drafts, going on to
    the next position only while the sampled token equals the draft there, and the KV cache forgets the rest. For a
    point-mass draft this is exact speculative sampling: the draft survives with probability p(draft), otherwise the
    token is drawn from p restricted to the other tokens, which is what the textbook accept/resample rule gives.
    Each emitted token also consumes one draw from its row's generator, as without drafts, so greedy and seeded
    outputs are the same tokens with or without speculation, up to float rounding: the verify pass multiplies
    several positions at once, which can round the logits differently (~1e-6) and flip a near-tie."""
    params = params or SamplingParams()
    healed = _healed_prompts(tokenizer, model, prompts)
    prompt_ids = [p.ids for p in healed]
    context = model.config.block_size
    for i, ids in enumerate(prompt_ids):
        if len(ids) >= context:
            raise UserError(f"prompt {i} is {len(ids)} tokens; the model's context is {context} tokens, "
                            "which leaves no room to generate")
    end_ids = end_token_set(params, eos_id_of(tokenizer, model))
    seed = random_seed() if params.seed is None else params.seed
    # Clamp so prompt + completion fits the context; a completion cut here ends with "length".
    max_new = [min(params.max_new_tokens, context - len(ids)) for ids in prompt_ids]
    sequences = [SequenceState(i, j, prompt_ids[i], max_new[i], params, seed, tokenizer, end_ids, on_token,
                               healed[i].removed)
                 for i in range(len(prompt_ids)) for j in range(params.n)]
    dtype = next(model.parameters()).dtype
    if max_batch_size is None:
        longest = max(len(ids) + m for ids, m in zip(prompt_ids, max_new)) + params.speculative_tokens
        max_batch_size = _default_batch_size(model, longest, dtype)
    for start in range(0, len(sequences), max_batch_size):
        _decode_batch(model, sequences[start : start + max_batch_size], dtype)
    results: list[list[Completion]] = [[] for _ in prompt_ids]
    for s in sequences:
        results[s.prompt_index].append(s.completion)
    return results


def _decode_batch(model, sequences: list[SequenceState], dtype: torch.dtype) -> None:
    device = model.lm_head.weight.device
    k = sequences[0].params.speculative_tokens  # one generate() call: every sequence has the same params
    # Verify passes pad every row to the longest draft, so a row may write up to k positions past its own end.
    max_len = min(max(len(s.prompt_ids) + s.max_new for s in sequences) + k, model.config.block_size)
    cache = KVCache(model.config, len(sequences), max_len, device=device, dtype=dtype)
    # Prefill: each distinct prompt once, into the first row of its samples, then copied to the others. Only the last
    # position's logits are needed, so the vocabulary projection runs on one position instead of the whole prompt.
    first_logits = []
    row = 0
    while row < len(sequences):
        end = row
        while end < len(sequences) and sequences[end].prompt_index == sequences[row].prompt_index:
            end += 1
        ids = torch.tensor([sequences[row].prompt_ids], dtype=torch.long, device=device)
        hidden = model(ids, cache=cache, rows=torch.tensor([row], device=device), hidden_only=True)
        logits = model.lm_head(hidden[:, -1]).float()  # (1, V)
        if end - row > 1:
            cache.copy_rows(row, list(range(row + 1, end)))
        first_logits.append(logits.expand(end - row, -1))
        row = end
    logits = torch.cat(first_logits)

    # active[r] is the sequence in cache row r; rows 0..len(active)-1 are always the live ones, so the model reads
    # the cache through views (rows=None) rather than gathering rows each step. drafts[r] are the tokens fed after
    # row r's last sampled one, and logits[first[r] + i] are its logits at verify position i.
    active = list(sequences)
    drafts: list[list[int]] = [[] for _ in active]
    first = list(range(len(active)))
    while True:
        finished = verify_drafts(active, logits, first, drafts)
        if k:  # forget the keys of rejected drafts: each row's cache holds all its tokens but the last
            cache.truncate([len(s.prompt_ids) + len(s.token_ids) - 1 for s in active])
        if any(finished):
            order = compact_rows(cache, finished)
            if not order:
                return
            active = [active[r] for r in order]
        drafts = draft_tokens(active, k, cache.max_len) if k else [[] for _ in active]
        logits, first = forward_drafts(model, cache, active, drafts)


def forward_drafts(model, cache, active: list[SequenceState],
                   drafts: list[list[int]]) -> tuple[torch.Tensor, list[int]]:
    """One forward pass for cache rows 0..len(active)-1: each row's last sampled token, then its draft, rows padded
    to the longest draft. Returns the logits of the real positions, (sum of 1 + len(draft), V), and the index of
    each row's first position in them."""
    device = cache.lengths.device
    width = 1 + max(len(d) for d in drafts)
    last = [s.token_ids[-1] for s in active]
    fed = torch.tensor([[t, *d] + [t] * (width - 1 - len(d)) for t, d in zip(last, drafts)], device=device)
    hidden = model(fed, cache=cache, hidden_only=True)  # (B, width, C)
    if width == 1 or all(len(d) == width - 1 for d in drafts):
        first = list(range(0, len(active) * width, width))
        hidden = hidden.flatten(0, 1)
    else:  # only real positions go through the vocabulary projection, not the padding
        real = torch.tensor([1 + len(d) for d in drafts], device=device)
        hidden = hidden[torch.arange(width, device=device)[None, :] < real[:, None]]
        first = [0, *torch.cumsum(real, 0)[:-1].tolist()]
    return model.lm_head(hidden).float(), first


def verify_drafts(active: list[SequenceState], logits: torch.Tensor, first: list[int],
            drafts: list[list[int]]) -> list[bool]:
    """Samples each row's tokens from its positions' logits, in order, accepting them into the sequence; a row moves
    on to its next position only while the token it sampled equals its draft there (the next position's logits
    assumed that token). One sample_tokens call per position over the rows still going, so every emitted token
    draws from its row's generator exactly once. Returns which rows finished."""
    finished = [False] * len(active)
    going = list(range(len(active)))
    i = 0
    while going:
        if i == 0 and len(going) == logits.shape[0]:
            rows = logits  # every row at its first position, one logits row each: the plain decode step
        else:
            rows = logits[torch.tensor([first[r] + i for r in going], device=logits.device)]
        states = [active[r] for r in going]
        # token healing (rows still re-spelling), then each row's banned control tokens
        allowed = ban(constrain(rows, [s.respeller for s in states]), [s.banned for s in states])
        tokens = sample_tokens(allowed, [s.params for s in states], [s.generator for s in states])
        record_all_logprobs(states, rows, tokens)
        still = []
        for r, s, t in zip(going, states, tokens.tolist()):
            if s.accept(t):
                finished[r] = True
            elif i < len(drafts[r]) and drafts[r][i] == t:
                still.append(r)
            if i > 0 and s.speculation is not None:
                s.speculation.accepted += 1  # position i was reached because draft i-1 was right
        going = still
        i += 1
    return finished


def ban(logits: torch.Tensor, banned: Sequence[tuple[int, ...]]) -> torch.Tensor:
    """Logits (B, V) with row b's banned ids at -inf (a copy; the same tensor when no row bans any), one indexed
    write per distinct set of banned ids."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for b, ids in enumerate(banned):
        if ids:
            groups.setdefault(ids, []).append(b)
    if not groups:
        return logits
    out = logits.clone()
    for ids, rows in groups.items():
        columns = _index(ids, out.shape[-1], out.device)
        if len(rows) == len(banned):  # the usual case: every row bans the same tokens
            out[:, columns] = -math.inf
        else:
            out[torch.tensor(rows, device=out.device)[:, None], columns[None, :]] = -math.inf
    return out


@lru_cache(maxsize=64)
def _index(ids: tuple[int, ...], vocab: int, device: torch.device) -> torch.Tensor:
    """The banned ids as an index tensor, made once per set rather than at every decode step."""
    return torch.tensor([i for i in ids if i < vocab], dtype=torch.long, device=device)


def draft_tokens(active: list[SequenceState], k: int, cache_len: int) -> list[list[int]]:
    """Each row's draft: at most k tokens, none past the row's max_new_tokens (the model's own token comes on top),
    and short enough that padding every row to the longest draft stays within the cache."""
    room = cache_len - max(len(s.prompt_ids) + len(s.token_ids) for s in active)  # positions past the longest row
    out = []
    for s in active:
        if s.drafter is None:  # a row that does not speculate (the server batches requests that differ)
            out.append([])
            continue
        d = s.drafter.draft(min(k, s.params.speculative_tokens, s.max_new - len(s.token_ids) - 1, room))
        s.speculation.passes += 1
        s.speculation.drafted += len(d)
        out.append(d)
    return out


def record_all_logprobs(states: list[SequenceState], logits: torch.Tensor, tokens: torch.Tensor) -> None:
    """record_logprobs for every row that asks, one call per group of rows asking for the same number of
    alternatives (rows of different requests may differ)."""
    for k in {s.params.logprobs for s in states} - {None}:
        rows = [r for r, s in enumerate(states) if s.params.logprobs == k]
        if len(rows) == len(states):
            record_logprobs(states, logits, tokens)
        else:
            index = torch.tensor(rows, device=logits.device)
            record_logprobs([states[r] for r in rows], logits[index], tokens[index])


def record_logprobs(active: list[SequenceState], logits: torch.Tensor, tokens: torch.Tensor) -> None:
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(1, tokens[:, None]).squeeze(1).tolist()
    k = active[0].params.logprobs
    top = logp.topk(k, dim=-1) if k else None
    for r, s in enumerate(active):
        s.logprobs.append(chosen[r])
        if top is not None:
            s.top_logprobs.append(dict(zip(top.indices[r].tolist(), top.values[r].tolist())))


def compact_rows(cache, finished: list[bool]) -> list[int]:
    """Packs the live rows into cache rows 0..n_live-1 and returns, for each new row, the old row it came from.
    Holes left by finished rows are filled from the end (not by shifting everything down), so each finished row
    costs at most one row copy; that is cheaper than gathering scattered rows at every later step."""
    n_live = finished.count(False)
    holes = [r for r in range(n_live) if finished[r]]
    movers = [r for r in range(n_live, len(finished)) if not finished[r]]
    order = list(range(n_live))
    for hole, mover in zip(holes, movers):
        cache.copy_rows(mover, [hole])
        order[hole] = mover
    return order
