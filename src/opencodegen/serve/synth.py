"""A multi-turn program synthesis session, the CodeGen paper's conversational setting: a person states intent in
English one step at a time; each step becomes a `# {intent}` comment on top of the program so far and the model writes
the sub-program under it. Prompt and cut are MTPB's (prompt_format.py: preamble, `turn_prompt`, `truncate_turn`), so a
session is what that benchmark measures, with a person choosing the turns.

No HTTP and no terminal here. The session takes a `complete` callable, sync or async, with the server's signature
`complete(prompt, *, max_tokens, temperature, top_p, seed, stop) -> str`: the terminal passes `model_complete` (direct
`engine.generate`), the server an async one that goes through its batching scheduler. Running a program goes through
a `ProgramRunner` (the evaluation sandbox), which the caller owns so that one can serve many sessions.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..engine import generate
from ..errors import UserError
from ..eval.context import fit_prompts
from ..eval.mtpb import DEFAULT_TIMEOUT, PRELOAD, wrap_last_in_print
from ..eval.report import write_json
from ..eval.sandbox import Sandbox
from ..prompt_format import SYNTH_PREAMBLE, synth_history, truncate_turn, turn_code, turn_prompt
from ..sampling import SamplingParams

Complete = Callable[..., "str | Awaitable[str]"]

FORMAT = "opencodegen-synth-session"
VERSION = 1

# Strings that end a turn's sampling early. MTPB samples the whole budget and cuts afterwards; each of these starts
# exactly where `truncate_turn` cuts (a top-level comment or docstring quote, two blank lines), so stopping there keeps
# the same code up to a trailing newline, which `turn_code` removes anyway. They save most of the budget once the model moves
# on to a next `# ...` step of its own.
TURN_STOPS = ("\n#", "\n'''", '\n"""', "\n\n\n")
MAX_TOKENS_LIMIT = 4096  # per turn; a typo like 100000 should be an error, not an hour of sampling


class BadField(UserError):
    """A field of a saved session, its settings or a turn that is missing or has the wrong type or value. `param`
    names the field (the HTTP error body reports it)."""

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f"{param}: {detail}")
        self.param, self.detail = param, detail


def check_intent(intent: Any, param: str = "intent") -> str:
    """An intent becomes one `# ...` comment line, so it must be a non-empty single line."""
    if not isinstance(intent, str):
        raise BadField(param, f"must be a string, not {type(intent).__name__}")
    intent = intent.strip()
    if not intent:
        raise BadField(param, "must not be empty")
    if "\n" in intent or "\r" in intent:
        raise BadField(param, "must be one line (it becomes a single `# ...` comment in the program)")
    return intent


def check_code(code: Any, param: str = "code") -> str:
    if not isinstance(code, str):
        raise BadField(param, f"must be a string, not {type(code).__name__}")
    return turn_code(code)


@dataclass(frozen=True)
class SynthSettings:
    """How each turn is sampled. The defaults are MTPB's (temperature 0.2, top-p 0.95, 128 tokens). With a seed, turn
    sampling is reproducible: a turn's k-th regeneration uses seed + k."""

    max_tokens: int = 128
    temperature: float = 0.2
    top_p: float = 0.95
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) \
                or not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise BadField("max_tokens", f"must be an integer from 1 to {MAX_TOKENS_LIMIT}, not {self.max_tokens!r}")
        for name, ok in (("temperature", lambda v: v >= 0), ("top_p", lambda v: 0 < v <= 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                    or not ok(value):
                allowed = "a number >= 0" if name == "temperature" else "a number in (0, 1]"
                raise BadField(name, f"must be {allowed}, not {value!r}")
            object.__setattr__(self, name, float(value))
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise BadField("seed", f"must be an integer or null, not {self.seed!r}")

    @classmethod
    def from_dict(cls, data: Any, param: str = "settings") -> SynthSettings:
        if not isinstance(data, dict):
            raise BadField(param, f"must be an object, not {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise BadField(f"{param}.{unknown[0]}", "unknown setting (known: max_tokens, temperature, top_p, seed)")
        try:
            return cls(**data)
        except BadField as e:
            raise BadField(f"{param}.{e.param}", e.detail) from None


@dataclass
class Turn:
    intent: str
    code: str
    edited: bool = False  # the code was written by hand, not sampled
    attempt: int = 0  # how often the turn was regenerated: its last sample used seed + attempt


@dataclass
class RunResult:
    """A program's run in the sandbox. status is the sandbox's: "passed" (ran to its last line), "failed" (an
    exception or early exit; `reason` says which), "timeout" or "error" (a limit was hit)."""

    status: str
    stdout: str
    stderr: str
    reason: str
    duration: float
    answer: str | None  # repr of the first argument of the last print call (MTPB's answer), if there was one

    def to_dict(self) -> dict:
        return asdict(self)


class ProgramRunner:
    """The evaluation sandbox for session programs. Its worker starts on the first run (it pre-imports numpy and
    pandas, as MTPB's does, so that first run takes a second or two) and then serves every session; runs are one at a
    time, because a Sandbox's workers serve one run() call at a time."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int = 1, allow_unsafe: bool = False) -> None:
        if not timeout > 0:
            raise UserError(f"run timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout, self.workers, self.allow_unsafe = timeout, workers, allow_unsafe
        self._sandbox = None
        self._lock = threading.Lock()

    def run(self, program: str) -> RunResult:
        """Runs the program as MTPB does: its last statement, if it has a value, is printed (like a notebook cell)."""
        with self._lock:
            if self._sandbox is None:
                self._sandbox = Sandbox(workers=self.workers, preload=PRELOAD, allow_unsafe=self.allow_unsafe)
            [r] = self._sandbox.run([wrap_last_in_print(program)], timeout=self.timeout, capture_last_print=True,
                                    progress=None)
        return RunResult(status=r.status, stdout=r.stdout, stderr=program_frames_only(r.stderr), reason=r.reason,
                         duration=round(r.duration, 4), answer=repr(r.value) if r.has_value else None)

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def __enter__(self) -> ProgramRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


PROGRAM_FILE = "<program>"  # the file name eval/sandbox_worker.py compiles every program under
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line \d+')


def program_frames_only(stderr: str) -> str:
    """A traceback as the session's program sees it: the sandbox's own frames (the `exec` and `compile` that run
    every program) are dropped with their source lines, so the first frame shown is the program's."""
    out, skipping = [], False
    for line in stderr.splitlines(keepends=True):
        frame = _FRAME.match(line)
        if frame:
            skipping = frame["file"] != PROGRAM_FILE
        elif skipping and not line.startswith("    "):
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)


@dataclass
class SynthSession:
    complete: Complete | None = None
    settings: SynthSettings = field(default_factory=SynthSettings)
    turns: list[Turn] = field(default_factory=list)
    preamble: str = SYNTH_PREAMBLE

    # ---- the program ----------------------------------------------------------------------------------------------
    def history(self, upto: int | None = None) -> str:
        """The program after the first `upto` turns (all by default): MTPB's history, preamble then per turn its
        comment prompt, its code and a blank line."""
        turns = self.turns if upto is None else self.turns[:upto]
        return synth_history([t.intent for t in turns], [t.code for t in turns], self.preamble)

    @property
    def program(self) -> str:
        return self.history()

    def turn_lines(self, index: int) -> range:
        """1-based line numbers of turn `index` (comment and code) in `program`, for highlighting it."""
        turn = self.turns[index]
        first = self.history(index).count("\n") + 1
        return range(first, first + len((turn_prompt(turn.intent) + turn.code).splitlines()))

    # ---- commands -------------------------------------------------------------------------------------------------
    async def add_turn(self, intent: str) -> Turn:
        intent = check_intent(intent)
        turn = Turn(intent=intent, code=await self._sample(len(self.turns), intent, attempt=0))
        self.turns.append(turn)
        return turn

    async def regenerate(self) -> Turn:
        """Samples the last turn again (a new draw: the seed moves on by one; greedy settings give the same code)."""
        last = self._last("regenerate")
        attempt = last.attempt + 1
        code = await self._sample(len(self.turns) - 1, last.intent, attempt)
        self.turns[-1] = Turn(intent=last.intent, code=code, attempt=attempt)
        return self.turns[-1]

    def undo(self) -> Turn:
        self._last("undo")
        return self.turns.pop()

    def edit(self, index: int, code: str) -> Turn:
        """Replaces turn `index`'s code (0-based) by hand; later turns stay as they are."""
        if not 0 <= index < len(self.turns):
            raise BadField("index", f"no turn {index} (the session has {len(self.turns)} turns, numbered from 0)")
        self.turns[index].code = check_code(code)
        self.turns[index].edited = True
        return self.turns[index]

    def run(self, runner: ProgramRunner) -> RunResult:
        return runner.run(self.program)

    def _last(self, what: str) -> Turn:
        if not self.turns:
            raise UserError(f"nothing to {what}: the session has no turns yet")
        return self.turns[-1]

    async def _sample(self, before: int, intent: str, attempt: int) -> str:
        if self.complete is None:
            raise UserError("this session has no model to complete with (it was loaded for reading only)")
        s = self.settings
        out = self.complete(self.history(before) + turn_prompt(intent), max_tokens=s.max_tokens,
                            temperature=s.temperature, top_p=s.top_p,
                            seed=None if s.seed is None else s.seed + attempt, stop=list(TURN_STOPS))
        if inspect.isawaitable(out):
            out = await out
        return turn_code(truncate_turn(out))

    # ---- saving and loading ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "settings": asdict(self.settings), "preamble": self.preamble,
                "turns": [asdict(t) for t in self.turns]}

    @classmethod
    def from_dict(cls, data: Any, complete: Complete | None = None,
                  settings: SynthSettings | None = None) -> SynthSession:
        """A session from `to_dict`'s form; every key is optional (an empty object is a new session). `settings`, when
        given, replaces the saved ones (the command line's flags win over a file's)."""
        if not isinstance(data, dict):
            raise BadField("session", f"must be a JSON object, not {type(data).__name__}")
        unknown = sorted(set(data) - {"format", "version", "settings", "preamble", "turns"})
        if unknown:
            raise BadField(unknown[0], "unknown field (known: format, version, settings, preamble, turns)")
        if data.get("format", FORMAT) != FORMAT:
            raise BadField("format", f"is {data['format']!r}, not {FORMAT!r}")
        if data.get("version", VERSION) != VERSION:
            raise BadField("version", f"{data['version']!r} is not supported (this version reads {VERSION})")
        preamble = data.get("preamble", SYNTH_PREAMBLE)
        if not isinstance(preamble, str):
            raise BadField("preamble", f"must be a string, not {type(preamble).__name__}")
        turns = data.get("turns", [])
        if not isinstance(turns, list):
            raise BadField("turns", f"must be a list, not {type(turns).__name__}")
        return cls(complete=complete, preamble=preamble, turns=[_turn_from_dict(t, i) for i, t in enumerate(turns)],
                   settings=settings or SynthSettings.from_dict(data.get("settings", {})))

    def save(self, path: str | Path) -> Path:
        """Writes the session as JSON, atomically (an interrupted save leaves the previous file intact)."""
        path = Path(path)
        try:
            write_json(path, self.to_dict())
        except OSError as e:
            raise UserError(f"{path}: cannot save the session ({e.strerror or e})") from None
        return path

    @classmethod
    def load(cls, path: str | Path, complete: Complete | None = None,
             settings: SynthSettings | None = None) -> SynthSession:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no such session file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: cannot read the session file ({e})") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not a saved session (invalid JSON: {e})") from None
        try:
            return cls.from_dict(data, complete, settings)
        except UserError as e:
            raise UserError(f"{path}: not a valid saved session ({e})") from None


def _turn_from_dict(data: Any, index: int) -> Turn:
    where = f"turns[{index}]"
    if not isinstance(data, dict):
        raise BadField(where, f"must be an object, not {type(data).__name__}")
    unknown = sorted(set(data) - {"intent", "code", "edited", "attempt"})
    if unknown:
        raise BadField(f"{where}.{unknown[0]}", "unknown field (known: intent, code, edited, attempt)")
    for name in ("intent", "code"):
        if name not in data:
            raise BadField(f"{where}.{name}", "is missing")
    edited, attempt = data.get("edited", False), data.get("attempt", 0)
    if not isinstance(edited, bool):
        raise BadField(f"{where}.edited", f"must be true or false, not {edited!r}")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise BadField(f"{where}.attempt", f"must be an integer >= 0, not {attempt!r}")
    return Turn(intent=check_intent(data["intent"], f"{where}.intent"),
                code=check_code(data["code"], f"{where}.code"), edited=edited, attempt=attempt)


def model_complete(model, tokenizer, compile: bool = False) -> Complete:
    """`complete` on a model in this process (the terminal session): `engine.generate`, with a program longer than
    the context keeping its end, as MTPB's sampler does (eval.context.fit_prompts notes the cut). compile: decode
    steps run compiled (engine.generate)."""

    def complete(prompt: str, *, max_tokens: int, temperature: float, top_p: float, seed: int | None,
                 stop: list[str]) -> str:
        params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                stop=tuple(stop))
        [[completion]] = generate(model, tokenizer, fit_prompts(tokenizer, model, [prompt], max_tokens, "synth"),
                                  params, compile=compile)
        return completion.text

    return complete
