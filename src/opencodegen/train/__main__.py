"""`torchrun --nproc_per_node N -m opencodegen.train --config X.yaml [--run-dir DIR] [--optim.lr 3e-4 ...]`:
the same entry point as `ocg train`, for launchers that run a module."""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
