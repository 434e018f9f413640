"""Reads back the file a task of the previous stage wrote (`<folder>/<rank>.jsonl`), in order.

datatrove's JsonlReader shards a folder's files by position in the sorted listing, so a task that wrote nothing
(no file) would shift every later task onto the wrong file; this reader names the file by rank instead."""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.jsonl import JsonlReader


class RankFileReader(PipelineStep):
    type = "📖 - READER"
    name = "📄 previous stage"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        name = f"{rank:05d}.jsonl"
        if (Path(self.folder) / name).is_file():
            yield from JsonlReader(self.folder, compression=None).read_files_shard([name])
