"""What we publish gets the modes the umask gives, as a plain mkdir() or open() would.

`tempfile.mkdtemp` and `mkstemp` create private entries (0700 / 0600) whatever the umask, and a rename keeps the mode,
so a checkpoint or export written through a temporary path would stay unreadable to other users and to containers
(`vllm serve out/model` under another uid). Every atomic writer calls `as_if_created` on its temporary path before the
rename."""

from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it (another thread may be creating files meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no /proc (not Linux): the only portable way to read it is to set it back at once
    os.umask(old)
    return old


def as_if_created(path: str | Path) -> None:
    """Gives `path` (a file, or a directory and everything under it) the modes a fresh mkdir/open would have:
    0777 / 0666 minus the umask."""
    mask = current_umask()
    path = Path(path)
    if not path.is_dir():
        os.chmod(path, 0o666 & ~mask)
        return
    os.chmod(path, 0o777 & ~mask)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~mask)
