"""Held-out bits per byte of the quickstart's model on Python stdlib files it never trained on, against `xz -9` on
the concatenation of those same files (measured in the same run). Interim data path: a byte-level BPE trained here
with HF tokenizers and shards written with datatrove's TokenizedFile, until `ocg corpus tokenize` and
`opencodegen.tokenizer` are wired into the quickstart. Writes benchmarks/results/bench_quickstart_bpb.json.

    .venv/bin/python benchmarks/bench_quickstart_bpb.py [--minutes 7] [--overrides optim.lr=2e-3 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from train_fixtures import write_shard  # noqa: E402


def stdlib_files() -> list[Path]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in lib.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts
                  and p.stat().st_size < 200_000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--overrides", nargs="*", default=[])
    args = ap.parse_args()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from opencodegen.train import load_recipe, train

    files = stdlib_files()
    texts = {p: p.read_text(errors="replace") for p in files}
    valid = [p for p in files if int(hashlib.sha256(str(p.name).encode()).hexdigest(), 16) % 20 == 0]
    train_files = [p for p in files if p not in valid]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator((texts[p] for p in train_files), trainers.BpeTrainer(
            vocab_size=args.vocab, special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        (work / "tokenizer").mkdir()
        tok.save(str(work / "tokenizer" / "tokenizer.json"))
        eos = tok.token_to_id("<|endoftext|>")
        for split, group in (("train", train_files), ("valid", valid)):
            docs = [np.array(e.ids + [eos]) for e in tok.encode_batch([texts[p] for p in group])]
            write_shard(work / "tokens" / "mono" / split, docs)
        held_out = "".join(texts[p] for p in valid).encode()
        xz_bpb = len(lzma.compress(held_out, preset=9 | lzma.PRESET_EXTREME)) * 8 / len(held_out)
        xz_each = sum(len(lzma.compress(texts[p].encode(), preset=9 | lzma.PRESET_EXTREME)) for p in valid) * 8 \
            / len(held_out)
        overrides = dict(o.split("=", 1) for o in args.overrides)
        recipe = load_recipe(ROOT / "configs" / "quickstart.yaml", {"data_root": str(work), **overrides,
                                                                     "run.eval_tokens": "10000000"})
        recipe.stages = [s for s in recipe.stages if s.name == "mono"]
        # Length: as many steps as fit the time budget, from a measured step time.
        probe = load_recipe(ROOT / "configs" / "quickstart.yaml", {"data_root": str(work), **overrides})
        probe.stages = recipe.stages[:1]
        probe.stages[0].steps = 3
        t = time.perf_counter()
        train(probe, work / "probe", progress=False)
        per_step = (time.perf_counter() - t) / 3
        recipe.stages[0].steps = max(10, int(args.minutes * 60 / per_step))
        recipe.run.eval_every = max(1, recipe.stages[0].steps // 4)
        t = time.perf_counter()
        summary = train(recipe, work / "run", progress=True)
        elapsed = time.perf_counter() - t
        curve = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
        png = ROOT / "benchmarks" / "results" / "bench_quickstart_bpb.png"
        (work / "run" / "loss-0-mono.png").replace(png)
    stage = summary["stages"][-1]
    result = {"held_out_files": len(valid), "held_out_bytes": len(held_out), "train_files": len(train_files),
              "xz9_concat_bpb": xz_bpb, "xz9_per_file_bpb": xz_each, "model_bpb": stage.get("val_bpb"),
              "beats_xz": (stage.get("val_bpb") or 9) < xz_bpb, "steps": stage["steps"], "seconds": elapsed,
              "tokens": stage["tokens"], "overrides": overrides, "recipe": recipe.to_dict(),
              "val_curve": [(r["step"], r.get("val_bpb")) for r in curve if "val_bpb" in r], "loss_curve_png": str(png)}
    out = ROOT / "benchmarks" / "results" / "bench_quickstart_bpb.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("xz9_concat_bpb", "xz9_per_file_bpb", "model_bpb", "steps", "seconds")}))


if __name__ == "__main__":
    main()
