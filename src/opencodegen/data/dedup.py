"""Exact and near deduplication (StarCoder's recipe), as four datatrove steps.

Near dedup is MinHash LSH over 5-grams of *code* tokens: the text is split on [^A-Za-z_0-9] and nothing is
lowercased or normalised, so `Foo` and `foo` differ as they do in a program. datatrove's MinhashDedup* steps
were not reused because (1) their shingles come from a spaCy word tokenizer over lowercased, punctuation-stripped
text and (2) their cluster step keeps an arbitrary member (the union-find root), while we must keep the member a
documented priority chooses. The stages keep datatrove's layout: signatures per task, buckets per band, one
cluster task, then a filter in the next pass over the data.

  1. DedupSignature (every prepare task): 256 min-hashes + sha256 + priority key per document, written beside
     the data (`dedup/sigs/<rank>.sig.npy`, `<rank>.meta.jsonl`).
  2. DedupBuckets (one task per LSH band, 25 bands x 10 rows): documents whose 10 hashes in a band are equal are
     candidates; a candidate pair is kept only if its estimated Jaccard over all 256 hashes reaches the threshold
     (0.7), which removes most band-collision false positives at no extra I/O.
  3. DedupCluster (one task): union-find over the verified pairs plus identical sha256 contents; in each cluster
     the kept file is the one with the most stars, then the lexicographically smallest "repo/path", then the
     smallest sha256. Everything else is listed in `dedup/remove/<rank>.json` with the file it duplicates.
  4. DedupFilter (every clean task): drops the listed documents, rejecting them as exact_duplicate (same sha256
     as the kept file) or near_duplicate.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datatrove.pipeline.base import PipelineStep

from .rejects import RejectFilter

TOKEN_RE = re.compile(r"[A-Za-z_0-9]+")
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass
class DedupConfig:
    ngram: int = 5
    num_perm: int = 256
    bands: int = 25
    rows: int = 10
    threshold: float = 0.7  # Jaccard; verified on the full signature
    seed: int = 42
    near: bool = True  # False: exact dedup only

    def __post_init__(self) -> None:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")


def code_tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def shingles(text: str, n: int = 5, bits: int = 32) -> np.ndarray:
    """Distinct 32-bit (or 64-bit) hashes of the token n-grams of `text` (empty if it has fewer than n tokens).

    Tokens are hashed once each (crc32: fast and identical in every process, unlike Python's salted hash()), then an
    n-gram's hash is a polynomial in its token hashes, computed for all positions at once with numpy."""
    toks = TOKEN_RE.findall(text)
    if len(toks) < n:
        return np.empty(0, dtype=np.uint64)
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), dtype=np.int64, count=len(toks))
    tok_hash = np.fromiter((zlib.crc32(t.encode()) for t in vocab), dtype=np.uint64, count=len(vocab))[ids]
    h = np.zeros(len(toks) - n + 1, dtype=np.uint64)
    mult = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant; arithmetic wraps mod 2^64 on purpose
    for j in range(n):
        h = h * mult + tok_hash[j: len(toks) - n + 1 + j]
    return np.unique(h if bits == 64 else (h ^ (h >> np.uint64(32))) & _MASK32)


class MinHasher:
    """h_i(x) = ((a_i x + b_i) mod 2^64) >> 32 over 32-bit shingles, with random odd 64-bit a_i: multiply-add-shift
    hashing (Dietzfelbinger), a universal family that needs no division, so 256 hashes of every shingle cost three
    vectorised integer operations each."""

    def __init__(self, num_perm: int = 256, seed: int = 42):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 1 << 64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
        self.b = rng.integers(0, 1 << 64, size=num_perm, dtype=np.uint64, endpoint=False)
        self.num_perm = num_perm

    def signature(self, sh: np.ndarray, chunk: int = 2048) -> np.ndarray:
        sig = np.full(self.num_perm, 0xFFFFFFFF, dtype=np.uint32)
        shift = np.uint64(32)
        for s in range(0, len(sh), chunk):  # bounded memory for very long files
            x = sh[s: s + chunk, None]
            phv = ((x * self.a + self.b) >> shift).astype(np.uint32)  # wraps mod 2^64 on purpose
            np.minimum(sig, phv.min(axis=0), out=sig)
        return sig


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    def w(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)
    _write_atomic(path, w)


def priority_key(meta: dict) -> tuple:
    """Which member of a duplicate cluster is kept: most stars, then smallest "repo/path", then smallest sha256."""
    return (-int(meta.get("stars") or 0), f"{meta['repo']}/{meta['path']}", meta["sha"])


class DedupSignature(PipelineStep):
    """Pass-through step that records every document's signature (stage 1)."""

    type = "🫂 - DEDUP"
    name = "✍ signatures"

    def __init__(self, folder: str, config: DedupConfig | None = None):
        super().__init__()
        self.folder = folder
        self.config = config or DedupConfig()

    def run(self, data, rank: int = 0, world_size: int = 1):
        cfg = self.config
        hasher = MinHasher(cfg.num_perm, cfg.seed)
        sigs: list[np.ndarray] = []
        metas: list[dict] = []
        empty = np.full(cfg.num_perm, 0xFFFFFFFF, dtype=np.uint32)
        for doc in data:
            with self.track_time():
                sh = shingles(doc.text, cfg.ngram) if cfg.near else np.empty(0, dtype=np.uint64)
                sigs.append(hasher.signature(sh) if len(sh) else empty)
                m = doc.metadata
                metas.append({"id": doc.id, "repo": m["repo"], "path": m["path"], "stars": m.get("stars", 0),
                              "sha": hashlib.sha256(doc.text.encode("utf-8", "surrogatepass")).hexdigest(),
                              "has_sig": bool(len(sh))})
            yield doc
        out = Path(self.folder) / "sigs"
        _save_npy(out / f"{rank:05d}.sig.npy", np.stack(sigs) if sigs else np.empty((0, cfg.num_perm), np.uint32))
        _write_atomic(out / f"{rank:05d}.meta.jsonl",
                      lambda tmp: tmp.write_text("".join(json.dumps(m) + "\n" for m in metas)))


def _load_sig_files(folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Memory-mapped signature matrices of every prepare task, and each task's offset in the global numbering."""
    files = sorted((folder / "sigs").glob("*.sig.npy"))
    ranks = [int(p.name.split(".")[0]) for p in files]
    if ranks != list(range(len(ranks))):
        raise RuntimeError(f"{folder / 'sigs'}: signature files missing for some tasks: {ranks}")
    mats = [np.load(p, mmap_mode="r") for p in files]
    offsets = np.cumsum([0] + [len(m) for m in mats])
    return mats, offsets


def _has_sig(folder: Path, n_ranks: int) -> np.ndarray:
    flags = []
    for r in range(n_ranks):
        with open(folder / "sigs" / f"{r:05d}.meta.jsonl") as f:
            flags += [json.loads(line)["has_sig"] for line in f]
    return np.array(flags, dtype=bool)


class DedupBuckets(PipelineStep):
    """One task per LSH band: verified candidate pairs of global document numbers (stage 2)."""

    type = "🫂 - DEDUP"
    name = "🪣 LSH bands"

    def __init__(self, folder: str, config: DedupConfig | None = None, max_checks: int = 32):
        super().__init__()
        self.folder = folder
        self.config = config or DedupConfig()
        self.max_checks = max_checks

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        cfg, folder = self.config, Path(self.folder)
        pairs: list[tuple[int, int]] = []
        with self.track_time():
            mats, offsets = _load_sig_files(folder)
            has = _has_sig(folder, len(mats))
            for band in range(rank, cfg.bands if cfg.near else 0, world_size):
                cols = slice(band * cfg.rows, (band + 1) * cfg.rows)
                if offsets[-1] == 0:
                    break
                block = np.concatenate([np.asarray(m[:, cols]) for m in mats])
                idx = np.flatnonzero(has)
                keys = np.ascontiguousarray(block[idx]).view(np.dtype((np.void, 4 * cfg.rows))).ravel()
                order = np.argsort(keys, kind="stable")
                sk = keys[order]
                starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
                ends = np.r_[starts[1:], len(sk)]
                for s, e in zip(starts, ends):
                    if e - s < 2:
                        continue
                    members = np.sort(idx[order[s:e]])
                    pairs += self._verify(members, mats, offsets)
                self.stat_update("dedup/candidate_groups", value=int(np.sum(ends - starts >= 2)))
        out = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        _save_npy(folder / "pairs" / f"{rank:05d}.npy", out)
        self.stat_update("dedup/verified_pairs", value=len(out))
        return
        yield  # a generator step with no output documents

    def _full_rows(self, members: np.ndarray, mats, offsets) -> np.ndarray:
        r = np.searchsorted(offsets, members, side="right") - 1
        return np.stack([np.asarray(mats[ri][g - offsets[ri]]) for ri, g in zip(r, members)])

    def _verify(self, members: np.ndarray, mats, offsets) -> list[tuple[int, int]]:
        """Link each member to an earlier one whose full-signature Jaccard estimate reaches the threshold."""
        rows = self._full_rows(members, mats, offsets)
        out = []
        for k in range(1, len(members)):
            lo = max(0, k - self.max_checks)
            sim = (rows[lo:k] == rows[k]).mean(axis=1)
            hit = np.flatnonzero(sim >= self.config.threshold)
            if len(hit):
                out.append((int(members[lo + hit[-1]]), int(members[k])))
        return out


class DedupCluster(PipelineStep):
    """Single task: clusters from verified pairs + identical contents; chooses the kept file (stage 3)."""

    type = "🫂 - DEDUP"
    name = "🔗 clusters"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        folder = Path(self.folder)
        with self.track_time():
            files = sorted((folder / "sigs").glob("*.meta.jsonl"))
            metas: list[dict] = []
            where: list[tuple[int, int]] = []  # (prepare task, position in its output)
            for r, p in enumerate(files):
                with open(p) as f:
                    for k, line in enumerate(f):
                        metas.append(json.loads(line))
                        where.append((r, k))
            parent = np.arange(len(metas))

            def find(x: int) -> int:
                root = x
                while parent[root] != root:
                    root = parent[root]
                while parent[x] != root:  # path compression
                    parent[x], x = root, parent[x]
                return root

            def union(a: int, b: int) -> None:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)

            by_sha: dict[str, int] = {}
            for i, m in enumerate(metas):
                j = by_sha.setdefault(m["sha"], i)
                if j != i:
                    union(j, i)
            for p in sorted((folder / "pairs").glob("*.npy")):
                for a, b in np.load(p):
                    union(int(a), int(b))

            clusters: dict[int, list[int]] = {}
            for i in range(len(metas)):
                clusters.setdefault(find(i), []).append(i)
            remove: list[dict[str, list[str]]] = [{} for _ in files]
            n_clusters = exact = near = 0
            for members in clusters.values():
                if len(members) < 2:
                    continue
                n_clusters += 1
                keep = min(members, key=lambda i: priority_key(metas[i]))
                for i in members:
                    if i == keep:
                        continue
                    reason = "exact_duplicate" if metas[i]["sha"] == metas[keep]["sha"] else "near_duplicate"
                    exact += reason == "exact_duplicate"
                    near += reason == "near_duplicate"
                    r, k = where[i]
                    remove[r][str(k)] = [reason, metas[keep]["id"]]
            for r, rm in enumerate(remove):
                _write_atomic(folder / "remove" / f"{r:05d}.json", lambda tmp, rm=rm: tmp.write_text(json.dumps(rm)))
        self.stat_update("dedup/clusters", value=n_clusters)
        self.stat_update("dedup/exact_removed", value=exact)
        self.stat_update("dedup/near_removed", value=near)
        return
        yield


class DedupFilter(RejectFilter):
    """Drops the documents stage 3 listed (stage 4). Documents are matched by their position in the prepare task's
    output, which this task reads back in the same order, so two inputs with the same id cannot be confused."""

    type = "🫂 - DEDUP"
    name = "🧹 drop duplicates"
    step_key = "dedup"

    def __init__(self, folder: str, rejects_dir: str):
        super().__init__(rejects_dir)
        self.folder = folder

    def run(self, data, rank: int = 0, world_size: int = 1):
        path = Path(self.folder) / "remove" / f"{rank:05d}.json"
        self._remove = json.loads(path.read_text()) if path.is_file() else {}
        self._position = -1  # BaseFilter filters one document at a time, in order
        yield from super().run(data, rank, world_size)

    def reject_reason(self, doc) -> tuple[str, str] | None:
        self._position += 1
        hit = self._remove.get(str(self._position))
        return None if hit is None else (hit[0], f"duplicate of {hit[1]}")
