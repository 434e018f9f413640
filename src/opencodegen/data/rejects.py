"""Nothing lost: every step that drops an input counts it and writes a record saying why.

A drop is counted as the datatrove stat `drop/<reason>` of the step that made it (the report sums those across tasks)
and written to `rejects/<step>/<rank>.jsonl` with the file's identity, so the count and the list can never disagree."""

from __future__ import annotations

from typing import Any

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.jsonl import JsonlWriter


def _reject_record(self, doc: Document) -> dict[str, Any]:
    m = doc.metadata
    return {"id": doc.id, "source": m.get("source"), "repo": m.get("repo"), "path": m.get("path"),
            "bytes": m.get("bytes", 0), "reason": m["reason"], "detail": m.get("detail", "")}


class RejectingStep(PipelineStep):
    """A pipeline step that may drop documents; subclasses call `self.reject(...)` and wrap their loop in
    `with self.rejects(rank):`."""

    step_key: str = "step"  # names the rejects/<step_key>/ folder

    def __init__(self, rejects_dir: str):
        super().__init__()
        self.rejects_dir = rejects_dir
        self._writer: JsonlWriter | None = None
        self._rank = 0

    def rejects(self, rank: int) -> JsonlWriter:
        self._rank = rank
        self._writer = JsonlWriter(self.rejects_dir, output_filename=f"{self.step_key}/${{rank}}.jsonl",
                                   compression=None, adapter=_reject_record)
        return self._writer

    def reject(self, doc_id: str, metadata: dict[str, Any], reason: str, detail: str = "") -> None:
        self.stat_update(f"drop/{reason}")
        meta = {k: metadata.get(k) for k in ("source", "repo", "path", "bytes")}
        self._writer.write(Document(text="", id=doc_id, metadata={**meta, "reason": reason, "detail": detail}),
                           self._rank)
