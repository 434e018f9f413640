"""`ocg synth --model DIR`: multi-turn program synthesis in the terminal. Each line you type is one step of intent in
English; the model writes the code for it on top of the program so far, and the whole program is shown with syntax
highlighting (the new turn marked). Lines starting with ':' are commands (`:help` lists them)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax

from ..device import device_arg
from ..errors import UserError
from .options import add_compile

HELP = """\
One step of intent per line ("Let xs be [3, 1, 2]."); the model writes its code.
  :show            show the program
  :undo            drop the last turn
  :regen           sample the last turn again
  :edit N [CODE]   replace turn N's code: CODE inline (\\n for newlines), or else
                   in $EDITOR, or else typed on the next lines, ended by a '.' line
  :run             run the program in the sandbox and show its output
  :save FILE       save the session as JSON
  :load FILE       load a saved session (settings stay the command line's)
  :help            this text
  :quit, :q        leave (Ctrl-D too)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..eval.mtpb import DEFAULT_TIMEOUT
    from .generate import DTYPES

    parser.add_argument("--model", required=True, type=Path, help="checkpoint or HuggingFace model directory")
    parser.add_argument("--temperature", type=float, default=0.2, help="sampling temperature (MTPB's 0.2)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling: keep the most likely tokens "
                        "whose probabilities sum to this")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per turn at most")
    parser.add_argument("--seed", type=int, default=None, help="makes turns reproducible (regeneration: seed + k)")
    parser.add_argument("--load", type=Path, metavar="FILE", help="start from a saved session")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds a :run may take")
    parser.add_argument("--unsafe-no-isolation", action="store_true", help="run programs even where the sandbox cannot isolate them (no root and no user namespaces): they get this user's files, network and processes")
    add_compile(parser, "pays off for long sessions")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="weights and compute dtype (default: %(default)s)")
    parser.add_argument("--device", default="cpu", type=device_arg,
                        help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")


class Repl:
    """The read-eval-print loop over a SynthSession; every command is a method `cmd_<name>(argument)`."""

    def __init__(self, session, runner, console: Console) -> None:
        self.session, self.runner, self.console = session, runner, console

    def loop(self) -> int:
        self.console.print("Multi-turn synthesis: one step of intent per line; :help for commands.")
        if self.session.preamble:
            self.console.print(f"Programs start with MTPB's preamble ({_one_line(self.session.preamble)}), as the "
                               "benchmark's prompts do, so models trained on them continue in the same style.",
                               highlight=False, markup=False)
        if self.session.turns:
            self.show()
        while True:
            try:
                line = input(f"turn {len(self.session.turns) + 1}> ").strip()
            except EOFError:
                self.console.print()
                return 0
            except KeyboardInterrupt:
                self.console.print()
                continue
            if not line:
                continue
            try:
                if self.dispatch(line) == "quit":
                    return 0
            except UserError as e:
                self.console.print(f"[red]error:[/red] {e}", highlight=False)
            except KeyboardInterrupt:
                self.console.print("[yellow]interrupted[/yellow]")

    def dispatch(self, line: str) -> str | None:
        if not line.startswith(":"):
            asyncio.run(self.session.add_turn(line))
            self.show(new=len(self.session.turns) - 1)
            return None
        name, _, argument = line[1:].partition(" ")
        command = getattr(self, f"cmd_{name}", None)
        if command is None:
            raise UserError(f"unknown command :{name} (:help lists them)")
        return command(argument.strip())

    def show(self, new: int | None = None) -> None:
        lines = set(self.session.turn_lines(new)) if new is not None else set()
        self.console.print(Syntax(self.session.program.rstrip("\n"), "python", line_numbers=True,
                                  highlight_lines=lines, theme="ansi_dark", word_wrap=True))

    # ---- commands ---------------------------------------------------------------------------------------------
    def cmd_help(self, _argument: str) -> None:
        self.console.print(HELP, highlight=False, markup=False, soft_wrap=True)

    def cmd_quit(self, _argument: str) -> str:
        return "quit"

    cmd_q = cmd_exit = cmd_quit

    def cmd_show(self, _argument: str) -> None:
        self.show()

    def cmd_undo(self, _argument: str) -> None:
        turn = self.session.undo()
        self.console.print(f"dropped turn {len(self.session.turns) + 1}: {turn.intent}", highlight=False)
        self.show()

    def cmd_regen(self, _argument: str) -> None:
        asyncio.run(self.session.regenerate())
        self.show(new=len(self.session.turns) - 1)

    def cmd_edit(self, argument: str) -> None:
        number, _, code = argument.partition(" ")
        turns = len(self.session.turns)
        if not number.isdigit() or not 1 <= int(number) <= turns:
            raise UserError(f":edit takes a turn number from 1 to {turns}, not {number!r}" if turns
                            else "nothing to edit: the session has no turns yet")
        index = int(number) - 1
        if code:
            from .options import unescape
            code = unescape(code)
        else:
            code = self.edit_text(self.session.turns[index].code)
        self.session.edit(index, code)
        self.show(new=index)

    def edit_text(self, current: str) -> str:
        """$EDITOR on a temporary file holding the current code when there is a terminal to edit in; otherwise the
        lines typed next, up to a single '.'."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if editor and sys.stdin.isatty():
            with tempfile.NamedTemporaryFile("w+", suffix=".py", delete=False) as f:
                f.write(current + "\n")
            try:
                if subprocess.run([*shlex.split(editor), f.name]).returncode != 0:
                    raise UserError(f"{editor} exited with an error; the turn is unchanged")
                return Path(f.name).read_text()
            finally:
                os.unlink(f.name)
        self.console.print("Type the new code; end with a line holding a single '.':", highlight=False)
        lines = []
        while (line := input()) != ".":
            lines.append(line)
        return "\n".join(lines)

    def cmd_run(self, _argument: str) -> None:
        result = self.session.run(self.runner)
        if result.stdout:
            self.console.print(result.stdout.rstrip("\n"), highlight=False, markup=False)
        if result.stderr:
            self.console.print(result.stderr.rstrip("\n"), style="red", highlight=False, markup=False)
        ok = result.status == "passed"
        detail = "" if ok else f": {result.reason}" if result.reason else ""
        self.console.print(f"[{'green' if ok else 'red'}]{result.status}[/] in {result.duration:.2f}s{detail}",
                           highlight=False)

    def cmd_save(self, argument: str) -> None:
        if not argument:
            raise UserError(":save takes a file name")
        path = self.session.save(Path(argument).expanduser())
        self.console.print(f"saved {len(self.session.turns)} turns to {path}", highlight=False)

    def cmd_load(self, argument: str) -> None:
        if not argument:
            raise UserError(":load takes a file name")
        from ..serve.synth import SynthSession
        s = self.session
        self.session = SynthSession.load(Path(argument).expanduser(), s.complete, s.settings)
        self.console.print(f"loaded {len(self.session.turns)} turns from {argument}", highlight=False)
        self.show()


def _one_line(code: str) -> str:
    return "; ".join(line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model.io import load_checkpoint
    from ..serve.synth import BadField, ProgramRunner, SynthSession, SynthSettings, model_complete
    from .generate import DTYPES

    try:
        settings = SynthSettings(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                                 seed=args.seed)
    except BadField as e:
        raise UserError(f"--{e.param.replace('_', '-')}: {e.detail}") from None
    model, tokenizer = load_checkpoint(args.model, device=args.device, dtype=getattr(torch, DTYPES[args.dtype]))
    complete = model_complete(model, tokenizer, compile=args.compile)
    session = (SynthSession.load(args.load, complete, settings) if args.load
               else SynthSession(complete, settings))
    with ProgramRunner(timeout=args.timeout, allow_unsafe=args.unsafe_no_isolation) as runner:
        return Repl(session, runner, Console(highlight=False)).loop()
