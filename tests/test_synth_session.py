"""The multi-turn synthesis session: its prompts and programs are MTPB's (checked against eval/mtpb.py's own
builders), its early stops keep what MTPB's truncation keeps, and undo/regenerate/edit/run/save/load behave."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from eval_tiny import ByteTokenizer, tiny_model
from opencodegen.errors import UserError
from opencodegen.eval import mtpb
from opencodegen.engine import generate
from opencodegen.sampling import SamplingParams, StopChecker
from opencodegen.prompt_format import turn_code
from opencodegen.serve.synth import TURN_STOPS, ProgramRunner, SynthSession, SynthSettings, model_complete


class Scripted:
    """A `complete` that answers from a script and records every call."""

    def __init__(self, *answers: str) -> None:
        self.answers, self.calls = list(answers), []

    def __call__(self, prompt, **kwargs) -> str:
        self.calls.append({"prompt": prompt, **kwargs})
        return self.answers.pop(0)


def run(coro):
    return asyncio.run(coro)


def test_prompts_and_program_are_mtpbs():
    complete = Scripted("a = [3, 1, 2]\n\n# the model goes on by itself\nb = 1",
                        "s = sorted(a)\nprint(s)\nprint('again')\n")
    session = SynthSession(complete)
    run(session.add_turn("Let a be [3, 1, 2]."))
    run(session.add_turn("  Print a sorted.  "))
    problem = mtpb.Problem(id=1, name="t", category="array", description="",
                           prompts=("Let a be [3, 1, 2].", "Print a sorted."), inputs=({},), outputs=(None,),
                           max_gen_length=128)
    codes = ["a = [3, 1, 2]", "s = sorted(a)\nprint(s)"]  # mtpb.truncate's cuts: the comment, the second print
    assert [t.code for t in session.turns] == codes
    assert session.program == mtpb.multi_turn_program(problem, 0, codes)
    assert complete.calls[0]["prompt"] == mtpb.PREAMBLE + "# Let a be [3, 1, 2].\n"
    assert complete.calls[1]["prompt"] == mtpb.multi_turn_program(problem, 0, codes[:1]) + "# Print a sorted.\n"
    assert complete.calls[0] == {**complete.calls[0], "max_tokens": 128, "temperature": 0.2, "top_p": 0.95,
                                 "seed": None, "stop": list(TURN_STOPS)}
    assert list(session.turn_lines(1)) == [8, 9, 10]
    assert session.program.splitlines()[7:10] == ["# Print a sorted.", "s = sorted(a)", "print(s)"]


def test_early_stops_keep_what_truncate_keeps():
    """Stopping at TURN_STOPS and then truncating gives the code that truncating the full sample gives."""
    rng = random.Random(0)
    pieces = ["\n", "\n", "#", "'''", '"""', "print(x)", "def f():", "    ", "x = 1", " # c", "\n\n\n", "y"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        stopped = StopChecker(TURN_STOPS)
        stopped.push(text)
        assert turn_code(mtpb.truncate(stopped.text)) == turn_code(mtpb.truncate(text)), text


def test_model_turn_with_stops_equals_the_full_sample_truncated():
    model, tok = tiny_model(), ByteTokenizer()
    settings = SynthSettings(max_tokens=48, temperature=1.0, top_p=1.0, seed=5)
    session = SynthSession(model_complete(model, tok), settings)
    turn = run(session.add_turn("Make a list of squares."))
    prompt = mtpb.PREAMBLE + "# Make a list of squares.\n"
    [[full]] = generate(model, tok, [prompt], SamplingParams(max_new_tokens=48, temperature=1.0, seed=5))
    assert turn.code == turn_code(mtpb.truncate(full.text))


def test_regenerate_undo_edit():
    complete = Scripted("x = 1", "y = 2", "y = 3", "z = 4")
    session = SynthSession(complete, SynthSettings(seed=10))
    run(session.add_turn("one"))
    run(session.add_turn("two"))
    regenerated = run(session.regenerate())
    assert (regenerated.code, regenerated.attempt) == ("y = 3", 1)
    # The regeneration sees the same prompt with the next seed; the first turn keeps its code.
    assert complete.calls[2]["prompt"] == complete.calls[1]["prompt"]
    assert [c["seed"] for c in complete.calls] == [10, 10, 11]
    assert [t.code for t in session.turns] == ["x = 1", "y = 3"]
    edited = session.edit(0, "x = 100\n\n\n")
    assert edited.edited and edited.code == "x = 100" and "# one\nx = 100\n\n# two\ny = 3\n\n" in session.program
    assert session.undo().intent == "two"
    assert [t.intent for t in session.turns] == ["one"]
    run(session.add_turn("three"))
    assert complete.calls[-1]["prompt"].endswith("# one\nx = 100\n\n# three\n")


def test_async_complete_is_awaited():
    async def complete(prompt, **kwargs):
        await asyncio.sleep(0)
        return "v = 'async'\n"

    session = SynthSession(complete)
    assert run(session.add_turn("Set v.")).code == "v = 'async'"


@pytest.mark.parametrize("action,message", [
    (lambda s: s.undo(), "nothing to undo"),
    (lambda s: run(s.regenerate()), "nothing to regenerate"),
    (lambda s: s.edit(0, "x"), "no turn 0"),
    (lambda s: run(s.add_turn("   ")), "intent: must not be empty"),
    (lambda s: run(s.add_turn("two\nlines")), "must be one line"),
    (lambda s: run(s.add_turn(3)), "must be a string"),
])
def test_bad_commands_say_why(action, message):
    with pytest.raises(UserError, match=message):
        action(SynthSession(Scripted()))


@pytest.mark.parametrize("settings,param", [
    ({"temperature": -0.1}, "settings.temperature"), ({"top_p": 0}, "settings.top_p"),
    ({"top_p": 1.5}, "settings.top_p"), ({"max_tokens": 0}, "settings.max_tokens"),
    ({"max_tokens": "64"}, "settings.max_tokens"), ({"seed": 1.5}, "settings.seed"),
    ({"temperature": float("nan")}, "settings.temperature"), ({"top_k": 5}, "settings.top_k"),
])
def test_bad_settings_name_the_field(settings, param):
    with pytest.raises(UserError, match=param.replace(".", r"\.")) as e:
        SynthSettings.from_dict(settings)
    assert e.value.param == param


def test_save_and_load_round_trip(tmp_path):
    session = SynthSession(Scripted("a = 2", "b = a * 21"), SynthSettings(max_tokens=64, temperature=0.0, seed=3))
    run(session.add_turn("Let a be 2."))
    run(session.add_turn("Let b be a times 21."))
    session.edit(1, "b = a * 21  # checked")
    path = session.save(tmp_path / "s.json")
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # the temporary file was renamed, none left behind
    loaded = SynthSession.load(path)
    assert loaded.to_dict() == session.to_dict() and loaded.program == session.program
    assert loaded.settings == SynthSettings(max_tokens=64, temperature=0.0, seed=3)
    # The command line's settings win over the file's.
    assert SynthSession.load(path, settings=SynthSettings()).settings == SynthSettings()
    with pytest.raises(UserError, match="no model"):
        run(loaded.regenerate())


@pytest.mark.parametrize("content,message", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"turns": {"intent": "x"}}', "turns: must be a list"),
    ('{"turns": [{"intent": "x"}]}', r"turns\[0\]\.code: is missing"),
    ('{"turns": [{"intent": "x", "code": 5}]}', r"turns\[0\]\.code: must be a string"),
    ('{"turns": [{"intent": "", "code": ""}]}', r"turns\[0\]\.intent: must not be empty"),
    ('{"turns": [{"intent": "x", "code": "", "attempt": -1}]}', r"turns\[0\]\.attempt"),
    ('{"settings": {"temperature": "hot"}}', r"settings\.temperature"),
    ('{"format": "something-else"}', "format"),
    ('{"version": 99}', "version: 99 is not supported"),
    ('{"turnz": []}', "turnz: unknown field"),
])
def test_malformed_session_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as e:
        SynthSession.load(path)
    assert str(path) in str(e.value)


def test_missing_session_file(tmp_path):
    with pytest.raises(UserError, match="no such session file"):
        SynthSession.load(tmp_path / "absent.json")


@pytest.fixture(scope="module")
def runner():
    with ProgramRunner(timeout=2) as r:
        yield r


def test_run_in_the_sandbox(runner):
    session = SynthSession(Scripted("xs = [n * n for n in range(4)]", "total = sum(xs)\nprint('xs', xs)\ntotal"))
    run(session.add_turn("Make squares."))
    run(session.add_turn("Sum them."))
    result = session.run(runner)
    # The last statement's value is printed, as MTPB runs programs; the answer is the last print's first argument.
    assert (result.status, result.stdout, result.answer) == ("passed", "xs [0, 1, 4, 9]\n14\n", "14")
    session.edit(1, "total = sum(xs) / 0")
    failed = session.run(runner)
    assert failed.status == "failed" and "ZeroDivisionError" in failed.stderr + failed.reason
    session.edit(1, "while True:\n    pass")
    assert session.run(runner).status == "timeout"
