"""The shell commands in README.md's fenced blocks, as argument lists (comments dropped, `\\` continuations joined)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def readme_commands(program: str | None = None) -> list[list[str]]:
    """Every command line of the README's ```bash blocks; only those running `program` when it is given."""
    out = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv and (program is None or argv[0] == program):
                out.append(argv)
    return out
