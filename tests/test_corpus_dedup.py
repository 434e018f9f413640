"""Exact + near dedup: shingling against a plain-Python reference, MinHash estimates against exact Jaccard, the
kept-file priority, and the quality test on planted copies of real standard-library files."""

from __future__ import annotations

import itertools
import json
import random
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from datatrove.data import Document

from opencodegen.data.dedup import (DedupBuckets, DedupCluster, DedupConfig, DedupSignature, MinHasher, code_tokens,
                                    shingles)

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def ref_shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    toks = re.split(r"[^A-Za-z_0-9]+", text)
    toks = [t for t in toks if t]
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def test_code_tokens_keep_case_and_underscores():
    assert code_tokens("def Foo_bar(x1):\n  return x1+2") == ["def", "Foo_bar", "x1", "return", "x1", "2"]


def test_shingle_hashes_match_reference_ngrams():
    text = (STDLIB / "json" / "decoder.py").read_text()
    ref = ref_shingles(text)
    assert len(shingles(text)) == len(ref)  # one distinct hash per distinct 5-gram (no collisions here)
    assert len(shingles("a b c d")) == 0  # fewer than 5 tokens
    # case matters for code: Foo and foo are different tokens
    assert not set(shingles("Foo bar baz qux quux").tolist()) & set(shingles("foo bar baz qux quux").tolist())


def test_minhash_estimates_jaccard():
    base = (STDLIB / "argparse.py").read_text().splitlines(keepends=True)
    rng = random.Random(0)
    h = MinHasher(256, seed=1)
    for frac in (0.05, 0.2, 0.5):
        edited = [ln if rng.random() > frac else f"changed_{rng.random()} = {rng.random()}\n" for ln in base]
        a, b = "".join(base), "".join(edited)
        true = jaccard(ref_shingles(a), ref_shingles(b))
        est = float((h.signature(shingles(a)) == h.signature(shingles(b))).mean())
        assert abs(est - true) < 4 * np.sqrt(true * (1 - true) / 256) + 0.02, (frac, true, est)


def run_dedup(docs: list[Document], folder: Path, cfg: DedupConfig | None = None) -> dict[str, list]:
    """Stages 1-3 over `docs` as one prepare task; returns {position: [reason, kept id]}."""
    cfg = cfg or DedupConfig()
    list(DedupSignature(str(folder), cfg).run(iter(docs), 0, 1))
    list(DedupBuckets(str(folder), cfg).run(None, 0, 1))
    list(DedupCluster(str(folder)).run(None, 0, 1))
    return json.loads((folder / "remove" / "00000.json").read_text())


def doc(i: int, text: str, repo: str = "r", stars: int = 0, path: str | None = None) -> Document:
    return Document(text=text, id=f"d{i}", metadata={"repo": repo, "path": path or f"f{i}.py", "stars": stars})


def test_keep_priority_stars_then_path_then_hash(tmp_path):
    text = (STDLIB / "json" / "encoder.py").read_text()
    near = text.replace("def ", "def  ", 3)  # near duplicate (different sha), same tokens
    docs = [doc(0, text, "zz/low", 1, "a.py"), doc(1, text, "aa/high", 50, "z.py"), doc(2, near, "aa/high", 50, "b.py"),
            doc(3, "print('unrelated file with only a few tokens here')\n")]
    removed = run_dedup(docs, tmp_path)
    # most stars wins; between the two 50-star copies "aa/high/b.py" < "aa/high/z.py"; d0 and d1 differ from the
    # kept d2 by whitespace only, so they are near (not exact) duplicates of it
    assert removed == {"0": ["near_duplicate", "d2"], "1": ["near_duplicate", "d2"]}
    # equal stars and paths: the smaller sha256 is kept
    removed = run_dedup([doc(0, text, path="same.py"), doc(1, near, path="same.py")], tmp_path / "again")
    import hashlib
    kept = min((0, 1), key=lambda i: hashlib.sha256((text, near)[i].encode()).hexdigest())
    assert removed == {str(1 - kept): ["near_duplicate", f"d{kept}"]}


def test_exact_duplicates_without_shingles_are_found(tmp_path):
    docs = [doc(0, "x = 1\n"), doc(1, "x = 1\n"), doc(2, "y = 2\n")]
    assert run_dedup(docs, tmp_path) == {"1": ["exact_duplicate", "d0"]}


def _edit(lines: list[str], rng: random.Random, frac: float) -> str:
    out = []
    for ln in lines:
        r = rng.random()
        if r < frac / 3:
            continue  # delete
        if r < 2 * frac / 3:
            out.append(ln.replace("self", "this").replace("(", "( ", 1))  # change
        elif r < frac:
            out.append(ln)
            out.append(f"    tmp_{rng.randint(0, 10**6)} = None\n")  # insert
        else:
            out.append(ln)
    return "".join(out)


def test_near_dedup_quality_on_planted_copies(tmp_path):
    """Recall >= 0.95 on planted pairs with Jaccard >= 0.8; false positives <= 1% of distinct-file pairs."""
    rng = random.Random(1234)
    pool = sorted(p for pkg in ("email", "json", "logging", "concurrent", "xml", "http", "urllib", "importlib", "asyncio",
                                                     "multiprocessing", "unittest", "tomllib", "sqlite3", "wsgiref")
                  for p in (STDLIB / pkg).rglob("*.py") if 3_000 < p.stat().st_size < 60_000)
    bases = [p.read_text() for p in rng.sample(pool, 120)]
    docs = [doc(i, t) for i, t in enumerate(bases)]
    planted: list[tuple[int, int]] = []
    for k in range(160):
        src = rng.randrange(len(bases))
        text = bases[src] if k < 30 else _edit(bases[src].splitlines(keepends=True), rng, rng.uniform(0.01, 0.2))
        docs.append(doc(len(docs), text))
        planted.append((src, len(docs) - 1))
    removed = run_dedup(docs, tmp_path)
    cluster = {i: i for i in range(len(docs))}
    for pos, (_, kept) in removed.items():
        cluster[int(pos)] = int(kept[1:])
    ref = [ref_shingles(d.text) for d in docs]

    similar = [(a, b) for a, b in planted if jaccard(ref[a], ref[b]) >= 0.8]
    assert len(similar) >= 100  # the test must exercise enough high-similarity pairs
    recall = sum(cluster[a] == cluster[b] for a, b in similar) / len(similar)
    print(f"near-dedup: {len(similar)} similar pairs, recall {recall:.3f}")
    assert recall >= 0.95, recall

    distinct = [(a, b) for a, b in itertools.combinations(range(len(bases)), 2) if jaccard(ref[a], ref[b]) < 0.5]
    false_pos = sum(cluster[a] == cluster[b] for a, b in distinct) / len(distinct)
    print(f"near-dedup: {len(distinct)} distinct pairs, false positives {false_pos:.4f}")
    assert false_pos <= 0.01, false_pos


def test_band_rows_must_fit_permutations():
    with pytest.raises(ValueError):
        DedupConfig(num_perm=128, bands=25, rows=10)
