"""Help a newcomer can use: every command, subcommand and flag explains itself, `ocg --version` answers, and every
`ocg` line in the README parses against the real parser."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from readme_commands import readme_commands  # noqa: E402

from opencodegen.cli import COMMANDS, build_parser, main  # noqa: E402


def command_parser(name: str) -> argparse.ArgumentParser:
    root = build_parser([name])
    [sub] = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def parsers(parser: argparse.ArgumentParser, path: list[str]):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, path + [name])


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_subcommand_and_flag_has_help(name):
    for path, parser in parsers(command_parser(name), [name]):
        assert parser.description, f"ocg {' '.join(path)} has no description"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"ocg {' '.join(path)} {action.option_strings or action.dest}: no help text"
        formatter = parser._get_formatter()
        for action in parser._actions:  # a flag with a value to show shows it
            if action.option_strings and action.help != argparse.SUPPRESS and action.default not in (
                    None, False, argparse.SUPPRESS) and not isinstance(action.default, list):
                assert "default" in formatter._get_help_string(action), \
                    f"ocg {' '.join(path)} {action.option_strings[-1]}: default {action.default!r} not shown"
        parser.format_help()  # every help string formats (a stray % would raise here)


def test_top_level_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "CodeGen end to end" in out and "which defines" not in out
    for name in COMMANDS:
        assert name in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"ocg {version('opencodegen')}"


@pytest.mark.parametrize("argv", readme_commands("ocg"), ids=lambda a: " ".join(a[1:4]))
def test_readme_command_lines_parse(argv):
    args = build_parser(argv[1:]).parse_args(argv[1:])  # an unknown flag or a bad value exits here
    assert args._run


def test_readme_has_commands_for_every_area():
    seen = {argv[1] for argv in readme_commands("ocg")}
    assert {"import-hf", "generate", "eval", "serve", "synth", "corpus", "train", "exercises"} <= seen
