"""Nothing lost: every step that drops an input counts it and writes a record saying why.

Filters are datatrove `BaseFilter`s whose exclusion writer is `reject_writer`: a dropped document becomes a line of
`rejects/<step>/<rank>.jsonl` with its identity, reason and detail (not its text). Each drop is also counted as the
stat `drop/<reason>` of its step (the report sums those across tasks), so the count and the list never disagree. The
source reader, which drops inputs before they are documents, writes the same records through the same writer."""

from __future__ import annotations

from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.jsonl import JsonlWriter

REASON = "filter_reason"  # where BaseFilter puts the reason a filter returned
DETAIL = "reject_detail"


def _reject_record(self, doc: Document) -> dict[str, Any]:
    m = doc.metadata
    return {"id": doc.id, "source": m.get("source"), "repo": m.get("repo"), "path": m.get("path"),
            "bytes": m.get("bytes", 0), "reason": m[REASON], "detail": m.get(DETAIL, "")}


def reject_writer(rejects_dir: str, step_key: str) -> JsonlWriter:
    """rejects/<step_key>/<rank>.jsonl, one slim record per dropped input."""
    return JsonlWriter(rejects_dir, output_filename=f"{step_key}/${{rank}}.jsonl", compression=None,
                       adapter=_reject_record)


def rejected(doc_id: str, metadata: dict[str, Any], reason: str, detail: str = "") -> Document:
    """The record of an input dropped before it became a document (the reader's drops)."""
    meta = {k: metadata.get(k) for k in ("source", "repo", "path", "bytes")}
    return Document(text="", id=doc_id, metadata={**meta, REASON: reason, DETAIL: detail})


class RejectFilter(BaseFilter):
    """A BaseFilter whose subclasses say why a document goes: `reject_reason(doc)` returns (reason, detail), or
    None to keep it."""

    step_key: str = "step"  # names the rejects/<step_key>/ folder

    def __init__(self, rejects_dir: str):
        super().__init__(exclusion_writer=reject_writer(rejects_dir, self.step_key))

    def reject_reason(self, doc: Document) -> tuple[str, str] | None:
        raise NotImplementedError

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        why = self.reject_reason(doc)
        if why is None:
            return True
        reason, detail = why
        self.stat_update(f"drop/{reason}")
        doc.metadata[DETAIL] = detail
        return False, reason
