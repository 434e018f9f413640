"""Mining throughput: exercises.mine.mine_candidates (parse every Python file, collect each repository's literal call
sites, turn documented functions into candidates with doctest, call-site and hypothesis inputs) on this machine's
standard library (its .py files without site-packages, copied to a temporary directory; each top-level package
or module a repository, as the quickstart's Mono corpus has it), against
the same function of another git revision (--against REF, default HEAD) in the same run. Both revisions run in
their own subprocess on the same files, alternately, best of --repeats; the candidate lists are compared too.

    python benchmarks/bench_mine.py [--against REF] [--repeats 2] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from bench_eval_sampling import ROOT, source_of

OUT = Path(__file__).parent / "results" / "mine.json"


def stdlib_copy(into: Path) -> Path:
    """This interpreter's standard library .py files, site-packages left out, under `into`/stdlib."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in stdlib.rglob("*.py"):
        rel = path.relative_to(stdlib)
        if rel.parts[0] != "site-packages" and path.is_file():
            (into / "stdlib" / rel).parent.mkdir(parents=True, exist_ok=True)
            (into / "stdlib" / rel).write_bytes(path.read_bytes())
    return into / "stdlib"


def measure(files: Path, workers: int | None) -> dict:
    """One timed run of this interpreter's opencodegen (whichever revision PYTHONPATH points at)."""
    import inspect

    from opencodegen.exercises.build import Collected
    from opencodegen.exercises.mine import mine_candidates

    collected = Collected()
    # Revisions before the parallel miner had no workers argument (one process).
    extra = {"workers": workers} if "workers" in inspect.signature(mine_candidates).parameters else {}
    start = time.perf_counter()
    cands, _ = mine_candidates([files], [], 15, 6, 0, collected, **extra)
    seconds = time.perf_counter() - start
    rejects = collected.rejects.get("mined", [])
    return {"seconds": seconds, "candidates": len(cands), "rejected_early": len(rejects),
            "listing": [[c.id, c.solution, repr(c.calls)] for c in cands]}


def run_child(src: Path, files: Path, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    workers = ["--workers", str(args.workers)] if args.workers else []
    out = subprocess.run([sys.executable, __file__, "--child", str(files), *workers], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="HEAD", help="git revision of the baseline miner (default HEAD)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="processes for ours (default: one per core)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.workers)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = stdlib_copy(Path(tmp))
        sources = {"ours": ROOT / "src", "baseline": source_of(args.against, Path(tmp) / "baseline")}
        runs: dict[str, list[dict]] = {name: [] for name in sources}
        for _ in range(args.repeats):  # alternate, so a change of load hits both alike
            for name, src in sources.items():
                runs[name].append(run_child(src, files, args))
                print(name, f"{runs[name][-1]['seconds']:.1f} s", flush=True)
    # imported here, not at the top: the measuring child (this script too) must import the revision under test
    from opencodegen import host
    from opencodegen.eval.report import write_json
    best = {name: min(r, key=lambda x: x["seconds"]) for name, r in runs.items()}
    ours, base = best["ours"]["listing"], best["baseline"]["listing"]
    result = {
        "benchmark": "mining candidates from this machine's standard library (mine_candidates), best of repeats",
        "files": f"{sysconfig.get_paths()['stdlib']} without site-packages",
        "ours": "the working tree", "baseline": f"git {args.against} " + subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", args.against], capture_output=True,
            text=True).stdout.strip(),
        "ours_s": best["ours"]["seconds"], "baseline_s": best["baseline"]["seconds"],
        "speedup": best["baseline"]["seconds"] / best["ours"]["seconds"],
        "all_runs_s": {name: [r["seconds"] for r in rs] for name, rs in runs.items()},
        "candidates": {name: best[name]["candidates"] for name in best},
        "rejected_early": {name: best[name]["rejected_early"] for name in best},
        "same_candidates": f"{sum(a == b for a, b in zip(ours, base))}/{max(len(ours), len(base))}",
        "host": host.describe(), "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
