"""One sample being decoded (`SequenceState`): its RNG, its tokens, its text so far with stop strings, its
speculative drafter and the token-healing constraint on its first tokens, and when it ends. The engine (engine.py)
keeps one per cache row and feeds it the sampled tokens; everything that decides a sequence's output lives here or
in sampling.py, so a sequence gives the same tokens whatever rows share its batch."""

from __future__ import annotations

import time
from typing import Callable

from .healing import Respeller, token_index
from .prompt_format import control_ids
from .sampling import Completion, IncrementalDecoder, SamplingParams, StopChecker, sequence_generator
from .speculative import NgramDrafter, SpeculationStats

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
