"""The `ocg` command. Thin: each subcommand lives in `opencodegen.commands.<module>`, which defines
`add_arguments(parser)` and `run(args) -> int`. Modules are imported lazily so `ocg --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

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
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported (it may pull in torch); the rest show one help line.
        if name == wanted:
            mod = importlib.import_module(f"opencodegen.commands.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
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
