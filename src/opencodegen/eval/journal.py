"""An append-only record of finished work in a run's output directory, so that an interrupted evaluation resumes
without redoing it: an endpoint's answers (endpoint.py), a local model's samples (repo_completion.py).

One JSON line per finished piece, `{"key": ..., "values": [...]}`, written and fsynced as soon as the piece is done.
The key says what was asked (the request body, or the prompt and settings): a rerun with other settings or another
model asks again instead of reusing answers to a different question. A line cut short by a kill is ignored, so that
piece is simply done again.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.values: dict[str, list] = {}
        self._lock = threading.Lock()
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]
        if len(complete) < len(data):  # the line being written when the last run was killed: that piece is redone,
            os.truncate(self.path, len(complete))  # and the next line must not be glued to its remains
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
                key, values = row["key"], list(row["values"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line damaged some other way, or of another shape: that piece is done again
            self.values.setdefault(key, []).extend(values)

    def __len__(self) -> int:
        return sum(map(len, self.values.values()))

    def get(self, key: str) -> list:
        return self.values.get(key, [])

    def add(self, key: str, values: list) -> None:
        line = json.dumps({"key": key, "values": values}) + "\n"
        with self._lock:
            self.values.setdefault(key, []).extend(values)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:  # one write per piece, on disk at once
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
