"""Choosing tokens and turning them into text: sampling parameters, each sequence's own RNG, greedy, temperature,
top-k and top-p sampling of a batch of logits rows (each row with its own parameters), incremental detokenization and
stop strings on a text stream. The decode engine (engine.py, whose `generate()` is the entry point for sampling
from a model) calls these once per step for every live row; sequence.py holds one sample's state between steps.

What keeps an output independent of its batch: sample j of a prompt with seed s always draws from
`sequence_generator(s, j, prompt_ids)`, and `sample_tokens` consumes exactly one uniform number from a row's
generator per token, so a request gives the same output alone, batched with others, or in the server."""

from __future__ import annotations

import hashlib
import math
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch

from .errors import UserError
from .speculative import SpeculationStats

# Codex's and CodeGen's HumanEval stops, plus the two that bigcode-evaluation-harness adds.
HUMANEVAL_STOP: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint", "\n@", "\n```")

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
    not the output: see engine.Engine._decode.

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
    sampling with many rows and a large vocabulary. The kept set is a prefix of that order, so it is found among the
    K best (topk) as soon as their mass reaches p; K widens (x8, up to a full sort) only for the rows where it
    doesn't. So a row's result depends on its own logits and params alone, never on which rows share the batch, and
    one flat row no longer makes every row of a large batch pay for a full sort. Rows that stopped at a smaller K are
    padded with candidates of probability 0."""
    device = logits.device
    temps = torch.tensor([p.temperature for p in params], dtype=logits.dtype, device=device)[:, None]
    scaled = logits / temps
    V = scaled.shape[-1]
    if all(p.top_k == 0 and p.top_p >= 1.0 for p in params):
        return torch.softmax(scaled, dim=-1), None
    ks = torch.tensor([p.top_k or V for p in params], device=device)[:, None]
    ps = torch.tensor([p.top_p for p in params], dtype=scaled.dtype, device=device)[:, None]
    # Each row starts from its own K (its top-k if wider than the first candidates) and rows are handled in groups of
    # equal K, narrowest first.
    start = [min(V, max(FIRST_CANDIDATES, p.top_k)) for p in params]
    todo: dict[int, torch.Tensor | None] = {start[0]: None} if len(set(start)) == 1 else {
        K: torch.tensor([r for r, k in enumerate(start) if k == K], device=device) for K in set(start)}
    parts = []  # (rows or None for every row, probs, ids)
    while todo:
        K = min(todo)
        rows = todo.pop(K)
        rows_k, rows_p = (ks, ps) if rows is None else (ks.index_select(0, rows), ps.index_select(0, rows))
        probs, ids = _candidates(scaled if rows is None else scaled.index_select(0, rows), rows_k, K)
        done = ((rows_k <= K) | (probs.sum(-1, keepdim=True) >= rows_p)).squeeze(1)
        if K == V or bool(done.all()):
            parts.append((rows, probs, ids))
            continue
        rows = torch.arange(len(params), device=device) if rows is None else rows
        parts.append((rows[done], probs[done], ids[done]))
        wider = min(V, K * 8)
        todo[wider] = rows[~done] if wider not in todo else torch.cat([todo[wider], rows[~done]])
    if parts[0][0] is None:
        probs, ids = parts[0][1], parts[0][2]
    else:
        width = max(p.shape[1] for _, p, _ in parts)
        probs = scaled.new_zeros(len(params), width)
        ids = torch.zeros(len(params), width, dtype=torch.long, device=device)
        for rows, p, i in parts:
            probs[rows, : p.shape[1]] = p
            ids[rows, : i.shape[1]] = i
    # Top-p keeps the smallest prefix whose mass reaches p: a candidate stays if the mass strictly before it is < p
    # (the most likely one always stays, its prefix mass being 0).
    mass_before = probs.cumsum(-1) - probs
    probs = probs.masked_fill(mass_before >= ps, 0.0)
    return probs / probs.sum(-1, keepdim=True), ids


def _candidates(scaled: torch.Tensor, ks: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The K best tokens of each row (all V in a stable sort: among equal probabilities the lower token id comes
    first) with their probabilities; those past a row's top-k get 0. Rows whose top-k set lies within the K
    renormalise over it, the others over the whole vocabulary."""
    V = scaled.shape[-1]
    if K == V:
        vals, ids = scaled.sort(dim=-1, descending=True, stable=True)
    else:
        vals, ids = scaled.topk(K, dim=-1)
    vals = vals.masked_fill(torch.arange(K, device=scaled.device)[None, :] >= ks, -math.inf)
    within = ks <= K
    norm = torch.logsumexp(vals, dim=-1, keepdim=True)
    if not bool(within.all()):
        norm = torch.where(within, norm, torch.logsumexp(scaled, dim=-1, keepdim=True))
    return torch.exp(vals - norm), ids


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
