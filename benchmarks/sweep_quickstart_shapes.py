"""The sweep behind the quickstart's shape rule: every candidate shape (quickstart/shape_plan.py) pretrained NL ->
Multi -> Mono for the same minutes on a finished quickstart run's token shards, then held-out bits per byte on the
run's held-out files. The winner's tokens per parameter is the ratio the rule uses (Chinchilla's method: at a fixed
budget, the best model size fixes the tokens-per-parameter ratio).

    .venv/bin/python benchmarks/sweep_quickstart_shapes.py --run-dir runs/quickstart --minutes 4

Writes benchmarks/results/quickstart_shapes.json and quickstart_shapes.png; states the host and its load."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from opencodegen.eval.report import write_json
from opencodegen.quickstart import evaluation, shape_plan, train_plan
from opencodegen.quickstart.budget import Budget
from opencodegen.quickstart.pipeline import last_pretraining, load_quickstart_recipe
from opencodegen.train import train
from opencodegen import host

ROOT = Path(__file__).resolve().parents[1]


def run_shape(run_dir: Path, config: Path, n_layer: int, n_embd: int, minutes: float, files: int) -> dict:
    recipe = load_quickstart_recipe(config, run_dir, ["nl", "multi", "mono"])
    recipe.stages = [s for s in recipe.stages if s.kind == "pretrain"]
    recipe = shape_plan.with_shape(recipe, n_layer, n_embd)
    plan = train_plan.plan(recipe, minutes)
    recipe = train_plan.apply(recipe, plan)
    out = run_dir / "sweep" / f"{n_layer}x{n_embd}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    trained = train(recipe, out, progress=True)
    seconds = time.perf_counter() - t0
    ckpt, context = last_pretraining(out, recipe)
    bpb = evaluation.bits_per_byte(ckpt, run_dir / "heldout" / "files", out / "bpb", Budget(bpb_max_files=files),
                                   context)
    params = shape_plan.parameter_count(recipe)
    tokens = sum(s["tokens"] for s in trained["stages"])
    return {"shape": f"{n_layer}x{n_embd}", "params": params, "steps": plan["steps"], "tokens": tokens,
            "tokens_per_param": tokens / params, "train_seconds": round(seconds, 1),
            "bits_per_byte": bpb["model"], "xz9_concat": bpb["xz_concat"], "files": bpb["files"]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["tokens_per_param"] for r in rows], [r["bits_per_byte"] for r in rows], "o-")
    for r in rows:
        ax.annotate(r["shape"], (r["tokens_per_param"], r["bits_per_byte"]))
    ax.set_xscale("log")
    ax.set_xlabel("pretraining tokens per parameter")
    ax.set_ylabel("held-out bits per byte")
    ax.set_title("same pretraining minutes, several shapes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "quickstart")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    ap.add_argument("--minutes", type=float, default=4.0, help="pretraining minutes per shape")
    ap.add_argument("--shapes", default=",".join(f"{n}x{w}" for n, w in shape_plan.CANDIDATES[:5]))
    ap.add_argument("--files", type=int, default=50, help="held-out files scored")
    ap.add_argument("--merge", action="store_true", help="keep the rows of other shapes from the results file")
    args = ap.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    out = ROOT / "benchmarks" / "results"
    path = out / "quickstart_shapes.json"
    rows = []
    if args.merge and path.is_file():  # earlier shapes at the same minutes (one run per shape is 5+ minutes)
        earlier = json.loads(path.read_text())
        if earlier["minutes_per_shape"] == args.minutes:
            rows = [r for r in earlier["rows"] if r["shape"] not in {f"{n}x{w}" for n, w in shapes}]
    for n_layer, n_embd in shapes:
        load = os.getloadavg()[0]
        row = run_shape(args.run_dir, args.config, n_layer, n_embd, args.minutes, args.files)
        row.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   load_average_1min={"start": load, "end": os.getloadavg()[0]})
        rows = sorted(rows + [row], key=lambda r: r["params"])
        print(row, flush=True)
        best = min(rows, key=lambda r: r["bits_per_byte"])
        # written after every shape: an interrupted sweep keeps what it measured
        write_json(path, {"benchmark": "quickstart shapes at equal pretraining time: held-out bits per byte",
                          "host": host.describe(),
                          "minutes_per_shape": args.minutes, "rows": rows, "best": best["shape"],
                          "tokens_per_param_of_best": best["tokens_per_param"]})
    plot(rows, out / "quickstart_shapes.png")
    for r in rows:
        print(f"{r['shape']:>8} {r['params'] / 1e6:6.2f}M params {r['tokens'] / 1e6:6.2f}M tokens "
              f"{r['tokens_per_param']:6.3f} tok/param  {r['bits_per_byte']:.3f} bits/byte")
    print(f"best: {best['shape']} at {best['tokens_per_param']:.3f} tokens per parameter")


if __name__ == "__main__":
    main()
