"""Command-line options that several `ocg` commands share, written once so their meaning and help stay the same."""

from __future__ import annotations

import argparse

from ..errors import UserError

COMPILE_HELP = ("run decode steps through torch.compile (inductor; needs a C++ compiler, else decoding stays eager "
                "with a note): the same tokens, fewer operators per token, after a compile of tens of seconds the "
                "first time one row and several rows decode")


def add_compile(parser: argparse.ArgumentParser, pays_off: str) -> None:
    """`--compile` (engine.Engine's compile); pays_off: when the compile's wait is worth it for this command."""
    parser.add_argument("--compile", action="store_true", help=f"{COMPILE_HELP}; {pays_off}")


def unescape(text: str) -> str:
    """'\\n' typed on a command line means a newline in a stop string."""
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        raise UserError(f"--stop {text!r}: bad escape ({e})") from None
