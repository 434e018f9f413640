"""`ocg train --config configs/X.yaml [--run-dir runs/X] [--optim.lr 3e-4 --stages.0.data tokens/mine ...]`.
Rerunning the same command resumes from the run directory's last checkpoint. For several processes or nodes use
`torchrun ... -m opencodegen.train` with the same arguments (see opencodegen.train.distributed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.recipe import MAX_STAGES, STAGE_OVERRIDE_KEYS, override_help, stage_override_keys

    parser.add_argument("--config", type=Path, required=True,
                        help="YAML recipe (configs/finetune.yaml: continue training a checkpoint on your own data)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="output directory; rerunning the same command resumes there (default: runs/<config name>)")
    group = parser.add_argument_group(
        "recipe overrides", "keys of the YAML recipe as dotted names; values are read as YAML "
        f"(--optim.lr 3e-4, --data '{{tokens/a: 0.7, tokens/b: 0.3}}'). Per stage: --stages.N.KEY VALUE with N the "
        f"stage's index from 0 (up to {MAX_STAGES - 1}) and KEY one of {', '.join(STAGE_OVERRIDE_KEYS)}; a stage's "
        "steps replaces its tokens and the other way round")
    for key, help_text in override_help().items():
        group.add_argument(f"--{key}", dest=f"override:{key}", default=argparse.SUPPRESS, metavar="VALUE",
                           help=help_text)
    for key in stage_override_keys():  # described once in the group's text above
        group.add_argument(f"--{key}", dest=f"override:{key}", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from ..train import load_recipe, train

    overrides = {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("override:")}
    recipe = load_recipe(args.config, overrides)
    run_dir = args.run_dir or Path("runs") / args.config.stem
    train(recipe, run_dir)
    return 0
