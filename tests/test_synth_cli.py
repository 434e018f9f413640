"""`ocg synth --model DIR` driven through stdin on a real checkpoint directory (a tiny random model with a trained
CodeTokenizer): turns come from the model with the given settings, and every command works and reports mistakes."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
import torch

from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.eval import mtpb
from opencodegen.model.config import ModelConfig
from opencodegen.model.io import load_checkpoint, save_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.serve.synth import SynthSession, SynthSettings, Turn, model_complete
from opencodegen.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    texts = [p.description + "\n" + "\n".join(p.solution or ()) for p in mtpb.load_problems()]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=-(-tok.vocab_size // 64) * 64, block_size=256)).eval()
    return save_checkpoint(model, tok, tmp_path_factory.mktemp("ckpt") / "model")


def drive(monkeypatch, capsys, argv: list[str], lines: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code = main(["synth", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_terminal_session(checkpoint, tmp_path, monkeypatch, capsys):
    first, final = tmp_path / "first.json", tmp_path / "final.json"
    code, out, _ = drive(monkeypatch, capsys, ["--model", str(checkpoint), "--seed", "3", "--max-tokens", "12",
                                               "--temperature", "0.9", "--timeout", "5"], [
        "Let xs be the list [3, 1, 2].",
        f":save {first}",
        ":edit 1 xs = [3, 1, 2]\\nn = len(xs)",  # inline code, with an escaped newline
        "Print xs sorted.",
        ":edit 2",  # no $EDITOR on a pipe: the code is typed, up to a '.'
        "ys = sorted(xs)",
        "print(ys)",
        ".",
        ":run",
        f":save {final}",
        ":undo",
        ":bogus",
        ":edit 7 x = 1",
        ":regen",
        f":load {final}",
        ":show",
        ":quit",
        "Never read.",
    ])
    assert code == 0
    # The first turn is the model's, sampled with the command line's settings.
    model, tok = load_checkpoint(checkpoint)
    expected = SynthSession(model_complete(model, tok), SynthSettings(max_tokens=12, temperature=0.9, seed=3))
    asyncio.run(expected.add_turn("Let xs be the list [3, 1, 2]."))
    assert json.loads(first.read_text())["turns"] == [{"intent": "Let xs be the list [3, 1, 2].",
                                                      "code": expected.turns[0].code, "edited": False, "attempt": 0}]
    saved = SynthSession.load(final)
    assert [(t.code, t.edited) for t in saved.turns] == [("xs = [3, 1, 2]\nn = len(xs)", True),
                                                         ("ys = sorted(xs)\nprint(ys)", True)]
    assert "[1, 2, 3]\npassed in" in out
    assert "error: unknown command :bogus" in out and "error: :edit takes a turn number from 1 to 1, not '7'" in out
    assert "loaded 2 turns from" in out and out.count("print(ys)") >= 3  # shown after the edit, the load, :show
    assert "Never read." not in out


def test_commands_before_any_turn_and_ctrl_d(checkpoint, monkeypatch, capsys):
    code, out, _ = drive(monkeypatch, capsys, ["--model", str(checkpoint)], [":undo", ":regen", ":edit 1 x", ":help",
                                                                            ":save", ":load nowhere.json"])
    assert code == 0  # end of input leaves cleanly
    assert "error: nothing to undo" in out and "error: nothing to regenerate" in out
    assert "error: nothing to edit" in out and ":edit N [CODE]" in out and ":save takes a file name" in out
    assert "nowhere.json: no such session file" in out


@pytest.mark.parametrize("argv,message", [
    (["--temperature", "-1"], "--temperature: must be a number >= 0"),
    (["--top-p", "2"], "--top-p: must be a number in (0, 1]"),
    (["--max-tokens", "0"], "--max-tokens: must be an integer from 1"),
    (["--load", "/nonexistent/s.json"], "no such session file"),
])
def test_bad_arguments(checkpoint, monkeypatch, capsys, argv, message):
    code, _, err = drive(monkeypatch, capsys, ["--model", str(checkpoint), *argv], [])
    assert code == 2 and message in err


def test_missing_model_directory(tmp_path, monkeypatch, capsys):
    code, _, err = drive(monkeypatch, capsys, ["--model", str(tmp_path / "absent")], [])
    assert code == 2 and "checkpoint directory does not exist" in err


def test_edit_opens_the_editor_on_a_terminal(monkeypatch):
    from rich.console import Console

    from opencodegen.commands.synth import Repl

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setenv("EDITOR", "sed -i s/old/new/")  # an "editor" that changes the file it is given
    monkeypatch.delenv("VISUAL", raising=False)
    session = SynthSession(None, turns=[Turn("Let v be old.", "v = 'old'")])
    Repl(session, None, Console(file=io.StringIO())).dispatch(":edit 1")
    assert (session.turns[0].code, session.turns[0].edited) == ("v = 'new'", True)
    monkeypatch.setenv("EDITOR", "false")  # an editor that fails leaves the turn alone
    with pytest.raises(UserError, match="false exited with an error"):
        Repl(session, None, Console(file=io.StringIO())).dispatch(":edit 1")
    assert session.turns[0].code == "v = 'new'"


def test_the_preamble_is_explained_and_run_errors_show_only_the_programs_frames(checkpoint, monkeypatch, capsys):
    code, out, _ = drive(monkeypatch, capsys, ["--model", str(checkpoint), "--timeout", "5"], [
        "Divide by zero.",
        ":edit 1 def f(x):\\n    return 1 / x\\nf(0)",
        ":run",
        ":edit 1 x = (",
        ":run",
        ":quit",
    ])
    assert code == 0
    assert "Programs start with MTPB's preamble (import numpy as np)" in out
    program = mtpb.PREAMBLE + mtpb.turn_prompt("Divide by zero.")
    call_line = program.count("\n") + 3  # f(0), the edited turn's third line
    assert f'File "<program>", line {call_line}, in <module>' in out and "ZeroDivisionError" in out
    assert "SyntaxError" in out and "sandbox_worker" not in out and "exec(code" not in out
