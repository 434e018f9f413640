"""Corpus documents -> datatrove token shards: render (repository or file format, FIM per file), encode, EOS after
every document, hold out whole repositories for validation, shuffle globally with a seed.

Two datatrove stages:
  1. TokenizeDocs (N tasks): each task renders and encodes its share of corpus files into unshuffled per-task shards
     `work/tok/<split>/<rank>.ds` (+ `.ds.index`, + `.ids` with each document's id).
  2. ShuffleShards (one task per split): orders every document of the split by id, permutes them with the seed, and
     copies them into `<out>/<split>/<n>.ds` shards. Sorting by id first makes the output depend on the seed only,
     not on how many tasks produced the pieces.
Shards are datatrove's DocumentTokenizer format (written by its TokenizedFile): `.ds` little-endian uint16 ids (uint32
when the vocabulary exceeds 65536), `.ds.index` uint64 cumulative document ends, `.ds.metadata` tokenizer|width,
token count."""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.tokens.tokenizer import TokenizedFile

from ..prompt_format import (
    EOS,
    FILE_SEP,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    REPO_NAME,
    Piece,
    fim_ids,
    missing_tokens,
    repo_file,
    repo_head,
    repo_ids,
)
from ..tokenizer import CodeTokenizer
from .fim import FimConfig, fim_pieces
from .task_progress import ProgressWriter

SPLITS = ("train", "valid")


@dataclass
class TokenizeConfig:
    format: str = "repo"  # "repo": Qwen2.5-Coder repository documents; "file": one document per file
    fim: FimConfig = field(default_factory=FimConfig)
    seed: int = 0
    valid_fraction: float = 0.05  # of bytes, in whole repositories
    max_tokens_per_shard: int = 500_000_000
    batch_docs: int = 64

    def __post_init__(self) -> None:
        if self.format not in ("repo", "file"):
            raise ValueError(f"format must be 'repo' or 'file', not {self.format!r}")


def token_width(vocab_size: int) -> int:
    return 2 if vocab_size <= 1 << 16 else 4


def choose_valid_repos(repos: list[dict], fraction: float, seed: int) -> set[str]:
    """Whole repositories, in a seeded order, until `fraction` of the bytes: no repository is in both splits.
    At least one repository is held out whenever there are two or more (so a small corpus still gets a valid split)."""
    if fraction <= 0 or len(repos) < 2:
        return set()
    total = sum(r["bytes"] for r in repos)
    target = fraction * total
    chosen: set[str] = set()
    used = 0
    for r in sorted(repos, key=lambda r: (zlib.crc32(f"{seed}:{r['repo']}".encode()), r["repo"])):
        if used + r["bytes"] <= target:
            chosen.add(r["repo"])
            used += r["bytes"]
    if not chosen:
        chosen.add(min(repos, key=lambda r: (r["bytes"], r["repo"]))["repo"])
    return chosen


class Renderer:
    """Turns a corpus document into (language, pieces) segments, one per file; pieces are special ids or text."""

    def __init__(self, tokenizer, cfg: TokenizeConfig):
        self.cfg = cfg
        self.eos = tokenizer.eos_id
        need = [EOS] if self.eos is None else []
        self.repo = repo_ids(tokenizer) if cfg.format == "repo" else None
        if cfg.format == "repo" and self.repo is None:
            need += missing_tokens(tokenizer, (REPO_NAME, FILE_SEP))
        self.fim = fim_ids(tokenizer) if cfg.fim.rate > 0 else None
        if cfg.fim.rate > 0 and self.fim is None:
            need += missing_tokens(tokenizer, (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX))
        if need:
            raise ValueError(f"the tokenizer has no {', '.join(need)} token (needed for format={cfg.format!r}"
                             f"{' and FIM' if cfg.fim.rate > 0 else ''})")

    def documents(self, doc) -> list[tuple[str, list[tuple[str, list[Piece]]]]]:
        """[(document id, [(lang, pieces), ...])]: one entry for a repo document, one per file in file format."""
        files, offset = [], 0
        for path, lang, n in doc.metadata["files"]:
            files.append((path, lang or "unknown", doc.text[offset: offset + n]))
            offset += n
        rng = random.Random(f"{self.cfg.seed}:{doc.id}")
        if self.cfg.format == "file":
            return [(f"{doc.metadata['repo']}/{path}", [(lang, [*fim_pieces(text, rng, self.cfg.fim, self.fim),
                                                               self.eos])])
                    for path, lang, text in files]
        segs: list[tuple[str, list[Piece]]] = []
        for k, (path, lang, text) in enumerate(files):
            last = k + 1 == len(files)
            pieces: list[Piece] = repo_head(self.repo, doc.metadata["repo"]) if k == 0 else []
            pieces += repo_file(self.repo, path, fim_pieces(text, rng, self.cfg.fim, self.fim), last=last)
            if last:
                pieces.append(self.eos)
            segs.append((lang, pieces))
        return [(doc.id, segs)]


def encode_pieces(tokenizer, docs: list[list[tuple[str, list[Piece]]]]) -> list[list[tuple[str, list[int]]]]:
    """Encode every text piece of a batch in one encode_batch call, then splice the special ids back in."""
    texts = [p for segs in docs for _, pieces in segs for p in pieces if isinstance(p, str) and p]
    encoded = iter(tokenizer.encode_batch(texts) if texts else [])
    out = []
    for segs in docs:
        doc_out = []
        for lang, pieces in segs:
            ids: list[int] = []
            for p in pieces:
                if isinstance(p, int):
                    ids.append(p)
                elif p:
                    ids.extend(next(encoded))
            doc_out.append((lang, ids))
        out.append(doc_out)
    return out


class TokenizeDocs(PipelineStep):
    type = "🔢 - TOKENIZER"
    name = "✂ render + encode"

    def __init__(self, tokenizer_path: str, work_dir: str, valid_repos_file: str, config: TokenizeConfig,
                 progress_dir: str | None = None):
        super().__init__()
        self.tokenizer_path = tokenizer_path
        self.work_dir = work_dir
        self.valid_repos_file = valid_repos_file
        self.config = config
        self.progress_dir = progress_dir

    def run(self, data, rank: int = 0, world_size: int = 1):
        tok = CodeTokenizer.load(self.tokenizer_path)
        renderer = Renderer(tok, self.config)
        valid = set(json.loads(Path(self.valid_repos_file).read_text()))
        width = token_width(tok.vocab_size)
        dtype = np.dtype("<u2" if width == 2 else "<u4")
        work = Path(self.work_dir)
        outs = {s: TokenizedFile(str(work / s), f"{rank:05d}.ds", token_size=width) for s in SPLITS}
        ids_files = {s: open(work / s / f"{rank:05d}.ids", "w") for s in SPLITS}
        progress = ProgressWriter(self.progress_dir, rank)

        def flush(batch: list) -> None:
            rendered = [r for _, r in batch]
            with self.track_time():
                encoded = encode_pieces(tok, [segs for _, segs in rendered])
            for (split, (doc_id, _)), segs in zip(batch, encoded):
                arr = np.concatenate([np.asarray(ids, dtype=dtype) for _, ids in segs])
                outs[split].write_bytes(arr.tobytes())
                ids_files[split].write(json.dumps(doc_id) + "\n")
                self.stat_update(f"docs/{split}")
                for lang, ids in segs:
                    self.stat_update(f"tokens/{split}/{lang}", value=len(ids))

        batch: list = []
        for doc in data:
            split = "valid" if doc.metadata["repo"] in valid else "train"
            with self.track_time():
                for rendered in renderer.documents(doc):
                    batch.append((split, rendered))
            progress.advance()
            if len(batch) >= self.config.batch_docs:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        for s in SPLITS:
            outs[s].close()
            ids_files[s].close()
        progress.close()
        return
        yield


class ShuffleShards(PipelineStep):
    """Rank r shuffles split SPLITS[r] of every TokenizeDocs task into the final shards."""

    type = "🔢 - TOKENIZER"
    name = "🔀 global shuffle"

    def __init__(self, work_dir: str, out_dir: str, tokenizer_name: str, width: int, seed: int,
                 max_tokens_per_shard: int):
        super().__init__()
        self.work_dir, self.out_dir = work_dir, out_dir
        self.tokenizer_name, self.width, self.seed = tokenizer_name, width, seed
        self.max_tokens_per_shard = max_tokens_per_shard

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        split = SPLITS[rank]
        src = Path(self.work_dir) / split
        dtype = np.dtype("<u2" if self.width == 2 else "<u4")
        arrays, spans, keys = [], [], []
        with self.track_time():
            for f, shard in enumerate(sorted(src.glob("*.ds"))):
                ends = np.fromfile(f"{shard}.index", dtype="<u8").astype(np.int64)
                ids = [json.loads(line) for line in shard.with_suffix(".ids").read_text().splitlines()]
                arrays.append(np.memmap(shard, dtype=dtype, mode="r") if shard.stat().st_size else
                              np.empty(0, dtype))
                starts = np.r_[0, ends[:-1]]
                spans += [(f, int(s), int(e)) for s, e in zip(starts, ends)]
                keys += ids
            order = sorted(range(len(spans)), key=lambda i: (keys[i], i))
            perm = np.random.default_rng([self.seed, rank]).permutation(len(order))
            out_dir = Path(self.out_dir) / split
            for old in out_dir.glob("*.ds*"):  # a rerun replaces earlier shards
                old.unlink()
            shard_no, written = 0, 0
            out = None
            for j in perm:
                f, s, e = spans[order[j]]
                if out is None or (written and written + (e - s) > self.max_tokens_per_shard):
                    if out is not None:
                        out.close()
                    out = TokenizedFile(str(out_dir), f"{shard_no:05d}.ds", token_size=self.width,
                                        tokenizer_name_or_path=self.tokenizer_name, save_final_metadata=True)
                    shard_no, written = shard_no + 1, 0
                out.write_bytes(np.asarray(arrays[f][s:e]).tobytes())
                written += e - s
            if out is not None:
                out.close()
            self.stat_update(f"shuffle/{split}_docs", value=len(spans))
        return
        yield
