"""`ocg train --config configs/X.yaml [--run-dir runs/X] [--optim.lr 3e-4 --batch.context_length 512 ...]`.
Rerunning the same command resumes from the run directory's last checkpoint. For several processes or nodes use
`torchrun ... -m opencodegen.train` with the same arguments (see opencodegen.train.distributed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.recipe import override_keys

    parser.add_argument("--config", type=Path, required=True, help="YAML recipe")
    parser.add_argument("--run-dir", type=Path, default=None, help="output directory (default: runs/<config name>)")
    group = parser.add_argument_group("recipe overrides (dotted keys of the YAML)")
    for key in override_keys():
        group.add_argument(f"--{key}", dest=f"override:{key}", default=argparse.SUPPRESS, metavar="VALUE")


def run(args: argparse.Namespace) -> int:
    from ..train import load_recipe, train

    overrides = {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("override:")}
    recipe = load_recipe(args.config, overrides)
    run_dir = args.run_dir or Path("runs") / args.config.stem
    train(recipe, run_dir)
    return 0
