"""Exact resume: a run killed with SIGKILL and restarted logs the same losses, bit for bit, as an uninterrupted run
(stage 1 on AdamW, stage 2 on Muon + AdamW)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import recipe_file, tiny_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_train(recipe: Path, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "opencodegen.train", "--config", str(recipe), "--run-dir",
                             str(run_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finished(p: subprocess.Popen) -> None:
    """Waits for a run, reading its stderr until it ends (wait() alone could stall on a full pipe); on failure shows its end."""
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-2000:]


def losses(run_dir: Path) -> list[tuple[str, int, float, float | None]]:
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["stage"], r["step"], r["loss"], r.get("val_loss")) for r in recs]


def kill_after(recipe: Path, run: Path, markers: tuple[str, ...]) -> None:
    """Starts the run once per marker and SIGKILLs it just after that checkpoint appears: mid-step, mid-eval or
    mid-write."""
    for marker in markers:
        p = run_train(recipe, run)
        deadline = time.time() + 240
        while not (run / marker).exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        assert p.wait() == -signal.SIGKILL, "the run ended before it could be killed"
        assert not (run / "summary.json").exists()


def test_sigkill_anywhere_then_resume_is_bitwise_identical(tmp_path):
    data = tiny_recipe(tmp_path, save_every=3, eval_every=2)
    data["stages"][0]["steps"] = 7
    data["stages"][1]["steps"] = 7
    data["stages"][1]["optim"] = {"name": "muon"}  # both optimizers' states go through the kill and the resume
    recipe = recipe_file(tmp_path / "r.yaml", data)

    # The uninterrupted reference runs beside the killed run: each is one thread, and the two cores are otherwise idle.
    ref = tmp_path / "ref"
    ref_process = run_train(recipe, ref)
    # Killed inside stage 2 after its first checkpoint: the resumed run restores Muon's and AdamW's states there (the
    # post-training test below resumes AdamW inside a stage too).
    run = tmp_path / "killed"
    kill_after(recipe, run, ("stage-1-mono/checkpoint-3",))
    finished(ref_process)
    expected = losses(ref)
    assert [(s, n) for s, n, *_ in expected] == [("nl", i) for i in range(1, 8)] + [("mono", i) for i in range(1, 8)]
    finished(run_train(recipe, run))
    assert losses(run) == expected  # floats from JSON round-trip exactly: bitwise equality
    a = (ref / "stage-1-mono" / "checkpoint-7" / "model.safetensors").read_bytes()
    b = (run / "stage-1-mono" / "checkpoint-7" / "model.safetensors").read_bytes()
    assert a == b


def test_sigkill_inside_sft_and_rl_stages_then_resume_is_bitwise_identical(tmp_path):
    from posttrain_fixtures import toy_recipe

    data = toy_recipe(tmp_path, [{"name": "sft", "kind": "sft", "steps": 5},
                                 {"name": "rl", "kind": "rl", "steps": 5,
                                  # learnability: the draws depend on pass counts the checkpoint must keep
                                  "rl": {"exercises_per_step": 3, "group_size": 4, "max_new_tokens": 3,
                                         "curriculum": "learnability"}}],
                      save_every=2, eval_every=2)
    recipe = recipe_file(tmp_path / "r.yaml", data)
    ref = tmp_path / "ref"
    ref_process = run_train(recipe, ref)
    run = tmp_path / "killed"
    kill_after(recipe, run, ("stage-0-sft/checkpoint-2", "stage-1-rl/checkpoint-2"))
    finished(ref_process)
    expected = losses(ref)
    assert [(s, n) for s, n, *_ in expected] == [("sft", i) for i in range(1, 6)] + [("rl", i) for i in range(1, 6)]
    finished(run_train(recipe, run))
    assert losses(run) == expected
    a = (ref / "stage-1-rl" / "checkpoint-5" / "model.safetensors").read_bytes()
    assert a == (run / "stage-1-rl" / "checkpoint-5" / "model.safetensors").read_bytes()
    # the curriculum's pass counts went through the kill: equal draws alone could hide counts lost on resume
    ref_state, run_state = (json.loads((r / "stage-1-rl" / "checkpoint-5" / "trainer_state" / "state.json").read_text())
                            for r in (ref, run))
    assert sum(ref_state["objective"]["curriculum"]["samples"]) > 0
    assert run_state["objective"] == ref_state["objective"]
