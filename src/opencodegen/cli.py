"""The `ocg` command. Thin: each subcommand lives in `opencodegen.commands.<module>`, which defines
`add_arguments(parser)` and `run(args) -> int`. Modules are imported lazily so `ocg --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import version

from .errors import UserError
from .heap import keep_freed_memory

# name -> (module under opencodegen.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("quickstart", "run the whole system on this machine's own sources with a tiny model"),
    "corpus": ("corpus", "build a filtered, deduplicated corpus and tokenize it into shards"),
    "tokenizer": ("tokenizer", "train a code BPE tokenizer"),
    "exercises": ("exercises", "build HumanEval-shaped exercises (synthetic, mined, self-generated), validated by "
                               "execution and decontaminated"),
    "train": ("train", "train a model through the stages of a recipe"),
    "eval": ("evaluate", "evaluate a model by execution: humaneval, mbpp, evalplus, mtpb, infill, bpb, compare"),
    "generate": ("generate", "sample completions from a model"),
    "synth": ("synth", "interactive multi-turn program synthesis"),
    "serve": ("serve", "OpenAI-compatible HTTP server with FIM and a web playground"),
    "import-hf": ("import_hf", "convert a local HuggingFace checkpoint directory into an opencodegen checkpoint"),
    "export-hf": ("export_hf", "write an opencodegen checkpoint as a HuggingFace directory"),
    "average": ("average", "average the weights of several checkpoints of one model into a new checkpoint"),
}


DESCRIPTION = ("CodeGen end to end: build a code corpus, train a tokenizer and models in stages, evaluate them by "
               "running their code, and serve them for program synthesis. `ocg COMMAND --help` explains a command.")


class HelpFormatter(argparse.HelpFormatter):
    """Shows each flag's default after its help, unless the help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action.default, list)
        if shown and action.option_strings and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocg", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('opencodegen')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        # Only the chosen command's module is imported (it may pull in torch); the rest show one help line.
        if name == wanted:
            mod = importlib.import_module(f"opencodegen.commands.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
            _describe_subcommands(p)
    return parser


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A subcommand's `--help` opens with its one-line help (`ocg eval humaneval --help`) and shows defaults."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                sub.description = sub.description or choice.help
                sub.formatter_class = HelpFormatter
                _describe_subcommands(sub)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    keep_freed_memory()  # the process is ours: its large tensors reuse heap memory (heap.py says why)
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"ocg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ocg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
