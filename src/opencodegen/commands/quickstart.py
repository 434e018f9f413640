"""`ocg quickstart`: build a corpus from this machine's own sources, train a tiny CodeGen model NL -> Multi -> Mono,
evaluate it by execution and write a report, all in one run directory (about 20 minutes on 2 CPU cores).

    ocg quickstart                       # runs/quickstart; a rerun skips finished stages and resumes training
    ocg quickstart --fresh --minutes 5   # start over with a shorter training budget
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..quickstart.budget import Budget
from ..quickstart.published import PAPERS_TEMPERATURES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / "quickstart",
                        help="where everything goes (default: runs/quickstart)")
    parser.add_argument("--fresh", action="store_true", help="delete the run directory's earlier results first")
    parser.add_argument("--minutes", type=float, default=Budget().train_minutes,
                        help=f"training time for all the stages together, in minutes (default "
                             f"{Budget().train_minutes:g}; fixed when a run starts: a resumed run keeps its plan). 0 "
                             "trains the recipe's steps as written")
    parser.add_argument("--config", type=Path, default=None,
                        help="training recipe (default: configs/quickstart.yaml of the source tree)")
    parser.add_argument("--humaneval-n", type=int, default=None,
                        help="HumanEval samples per task at temperature 0.8, besides one greedy (default: as many "
                             "as fit in 25 s per training minute at the rate a pilot measured, and in what the "
                             "run's time goal (training minutes + 8, or + two thirds of them) leaves, 20 to 100)")
    parser.add_argument("--papers-protocol", action="store_true",
                        help="also sample HumanEval at temperatures 0.2 and 0.6 (same n) and report each k's best "
                             "temperature, as the Codex and CodeGen papers do (each temperature adds a sampled pass)")
    parser.add_argument("--workers", type=int, default=None, help="processes for corpus building and the sandbox")


def run(args: argparse.Namespace) -> int:
    from ..progress import console
    from ..quickstart.pipeline import run_quickstart
    from ..quickstart.report import print_results

    if args.minutes < 0:
        raise UserError(f"--minutes must be >= 0, not {args.minutes}")
    if args.humaneval_n is not None and args.humaneval_n < 1:
        raise UserError(f"--humaneval-n must be >= 1, not {args.humaneval_n}")
    budget = Budget(train_minutes=args.minutes or None, humaneval_n=args.humaneval_n,
                    humaneval_other_temperatures=PAPERS_TEMPERATURES if args.papers_protocol else ())
    if args.workers is not None:
        if args.workers < 1:
            raise UserError(f"--workers must be >= 1, not {args.workers}")
        budget.workers = args.workers
    try:
        results = run_quickstart(args.run_dir, budget, args.config, args.fresh)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: finished stages are kept; run the same command again to resume "
                      "(or add --fresh to start over)[/yellow]")
        return 130
    print_results(results)
    return 0
