"""Stages chain weights (fresh optimiser), init_from an existing checkpoint, long-context RoPE stages, and the
options that must not change the maths (activation checkpointing) or must (document masking)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import tiny_recipe  # noqa: E402

from opencodegen.model.io import load_checkpoint  # noqa: E402
from opencodegen.train import recipe_from_dict, train  # noqa: E402
from opencodegen.train.data import BatchPlan  # noqa: E402
from opencodegen.train.pretrain import loss_fn  # noqa: E402


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def first_loss_from(checkpoint: Path, recipe, stage: int, doc_mask: bool = False) -> float:
    """The loss the stage's first step must report if it starts from `checkpoint`'s weights."""
    model, _ = load_checkpoint(checkpoint, with_tokenizer=False)
    b = recipe.stage_batch(stage)
    accum = b.batch_tokens // (b.micro_batch * b.context_length)
    plan = BatchPlan(recipe.stages[stage].data, b.context_length, recipe.run.seed, stage)
    total = 0.0
    with torch.no_grad():
        for m in range(accum):
            t, d = plan.rows(0, m * b.micro_batch, b.micro_batch, b.micro_batch * accum)
            ce, _ = loss_fn(model.train(), t[:, :-1], t[:, 1:], d[:, :-1] if doc_mask else None, 0.0)
            total += float(ce) / accum
    return total


def test_stages_chain_and_init_from(tmp_path):
    data = tiny_recipe(tmp_path)
    data["stages"][1].update(rope_base=50000.0, batch={"context_length": 64, "micro_batch": 1},
                             steps=2)
    recipe = recipe_from_dict(data)
    run = tmp_path / "run"
    summary = train(recipe, run, progress=False)
    recs = metrics(run)
    nl_end = run / "stage-0-nl" / "checkpoint-4"
    mono1 = [r for r in recs if r["stage"] == "mono"][0]
    # rel 1e-5: the training step and this no-grad recomputation may take different attention kernels (float32
    # rounding, ~1e-6 here); starting from any other weights moves the loss by orders of magnitude more.
    assert mono1["loss"] == pytest.approx(first_loss_from(nl_end, recipe, 1), rel=1e-5)
    assert mono1["lr"] == pytest.approx(recipe.optim.lr / recipe.optim.warmup_steps)  # fresh schedule and optimiser
    cfg = json.loads((run / "stage-1-mono" / "checkpoint-2" / "config.json").read_text())
    assert cfg["rope_base"] == 50000.0 and cfg["block_size"] >= 64
    assert summary["final_checkpoint"].endswith("stage-1-mono/checkpoint-2")
    assert (run / "loss-1-mono.png").stat().st_size > 0 and list((run / "tensorboard").iterdir())

    # Continued pretraining from an existing checkpoint directory.
    data2 = tiny_recipe(tmp_path)
    data2["stages"] = data2["stages"][1:]
    data2["init_from"] = str(nl_end)
    recipe2 = recipe_from_dict(data2)
    train(recipe2, tmp_path / "cont", progress=False)
    assert metrics(tmp_path / "cont")[0]["loss"] == pytest.approx(first_loss_from(nl_end, recipe2, 0), rel=1e-5)


def test_activation_checkpointing_same_losses_doc_mask_differs(tmp_path):
    base = tiny_recipe(tmp_path)
    base["stages"] = base["stages"][:1]
    base["stages"][0]["steps"] = 3
    runs = {}
    for name, opts in {"plain": {}, "ckpt": {"activation_checkpointing": True}, "docmask": {"doc_mask": True}}.items():
        d = {**base, "run": {**base["run"], **opts}}
        train(recipe_from_dict(d), tmp_path / name, progress=False)
        runs[name] = [r["loss"] for r in metrics(tmp_path / name)]
    assert runs["ckpt"] == pytest.approx(runs["plain"], rel=1e-6)
    assert runs["docmask"][0] != pytest.approx(runs["plain"][0], rel=1e-6)
    # and the masked loss is what a doc-masked forward of the initial weights gives
    recipe = recipe_from_dict({**base, "run": {**base["run"], "doc_mask": True}})
    torch.manual_seed(recipe.run.seed)
    from opencodegen.train.loop import build_model
    from opencodegen.model.io import save_checkpoint

    init = save_checkpoint(build_model(recipe), None, tmp_path / "init")
    assert runs["docmask"][0] == pytest.approx(first_loss_from(init, recipe, 0, doc_mask=True), rel=1e-5)


def test_a_stage_ends_where_it_is_when_its_max_seconds_run_out(tmp_path):
    """run.max_seconds 0: the first stage stops after its first step with a checkpoint there, reports the step it
    reached, and the next stage starts from that checkpoint's weights."""
    data = tiny_recipe(tmp_path)
    data["stages"][0]["run"] = {"max_seconds": 0.0}
    recipe = recipe_from_dict(data)
    run = tmp_path / "run"
    summary = train(recipe, run, progress=False)
    assert sorted(p.name for p in (run / "stage-0-nl").glob("checkpoint-*")) == ["checkpoint-1"]
    assert [s["steps"] for s in summary["stages"]] == [1, 4]
    mono1 = [r for r in metrics(run) if r["stage"] == "mono"][0]
    assert mono1["loss"] == pytest.approx(first_loss_from(run / "stage-0-nl" / "checkpoint-1", recipe, 1), rel=1e-5)
    assert summary["final_checkpoint"].endswith("stage-1-mono/checkpoint-4")
