"""torchrun with 2 CPU processes (gloo): DDP and FSDP2 give the same losses as one process with the same global
batch, and their checkpoints hold the full model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import recipe_file, tiny_recipe  # noqa: E402

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[1]


def launch(recipe: Path, run_dir: Path, nproc: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "opencodegen.train", "--config", str(recipe), "--run-dir", str(run_dir)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    data = tiny_recipe(root, save_every=3, eval_every=3)
    data["stages"][0]["steps"] = 3
    data["stages"][1]["steps"] = 3
    single = launch(recipe_file(root / "r.yaml", data), root / "single", 1)
    return root, data, single


# DDP runs stage 1 on Muon (stage 0 stays on AdamW), so one pair of runs covers both optimizers; FSDP2 runs AdamW in
# both (Muon needs whole matrices on each rank).
@pytest.mark.parametrize("mode", ["ddp-muon", "fsdp"])
def test_two_processes_match_one(setup, mode):
    root, data, single = setup
    parallel, _, optimizer = mode.partition("-")
    data = {**data, "run": {**data["run"], "parallel": parallel}}
    if optimizer:  # its own one-process reference on the same optimizers
        data["stages"] = [data["stages"][0], {**data["stages"][1], "optim": {"name": optimizer}}]
        single = launch(recipe_file(root / f"{mode}-single.yaml", data), root / f"{mode}-single", 1)
    multi = launch(recipe_file(root / f"{mode}.yaml", data), root / mode, 2)
    assert [(r["stage"], r["step"]) for r in multi] == [(r["stage"], r["step"]) for r in single]
    for a, b in zip(single, multi):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        if "val_loss" in a:
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
    from opencodegen.model.io import load_checkpoint

    m1, _ = load_checkpoint(root / ("single" if not optimizer else f"{mode}-single") / "stage-1-mono" / "checkpoint-3",
                            with_tokenizer=False)
    m2, _ = load_checkpoint(root / mode / "stage-1-mono" / "checkpoint-3", with_tokenizer=False)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert v2.shape == v1.shape and (v2 - v1).abs().max() < 1e-4, k


def test_sft_and_rl_stages_on_two_processes_match_one(tmp_path):
    from posttrain_fixtures import toy_recipe

    data = toy_recipe(tmp_path, [{"name": "sft", "kind": "sft", "steps": 2},
                                 {"name": "rl", "kind": "rl", "steps": 2,
                                  "rl": {"exercises_per_step": 4, "group_size": 4, "max_new_tokens": 3}}],
                      save_every=2, eval_every=2)
    data["batch"]["micro_batch"] = 2  # 64 tokens = 2 processes x 2 rows x 16 tokens
    single = launch(recipe_file(tmp_path / "r.yaml", data), tmp_path / "single", 1)
    multi = launch(recipe_file(tmp_path / "r.yaml", data), tmp_path / "multi", 2)
    assert [(r["stage"], r["step"]) for r in multi] == [(r["stage"], r["step"]) for r in single]
    for a, b in zip(single, multi):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6), (a, b)
        for key in ("reward", "pass_rate", "trained_samples"):
            assert b.get(key) == a.get(key), key
