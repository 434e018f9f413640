"""Recipe checking and the bad inputs the trainer must refuse before any compute."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import recipe_file, tiny_recipe, write_shard  # noqa: E402

from opencodegen.errors import UserError  # noqa: E402
from opencodegen.train import load_recipe, recipe_from_dict, train  # noqa: E402
from opencodegen.model.hf import ARCHITECTURES, hf_architecture  # noqa: E402
from opencodegen.train.loop import model_config, preflight  # noqa: E402
from opencodegen.train.optim import lr_at  # noqa: E402
from opencodegen.train.recipe import OptimConfig  # noqa: E402


SHIPPED = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_recipes_load_and_their_models_export_to_hf(path):
    # Every checkpoint must work with export-hf (and so vLLM): a shipped model outside the HF families would not.
    # Stages without data (configs/finetune.yaml) take it from the command line.
    empty = any(not s.get("data") for s in yaml.safe_load(path.read_text())["stages"])
    recipe = load_recipe(path, {"data": "tokens/mine"} if empty else {})
    assert hf_architecture(model_config(recipe)) in ARCHITECTURES


def test_overrides_and_types(tmp_path):
    data = tiny_recipe(tmp_path)
    path = recipe_file(tmp_path / "r.yaml", data)
    r = load_recipe(path, {"optim.lr": "1e-4", "batch.context_length": "64", "run.doc_mask": "true"})
    assert r.optim.lr == 1e-4 and r.batch.context_length == 64 and r.run.doc_mask is True
    assert r.stage_optim(1).lr == 1e-4 and r.stages[1].data  # stages inherit the global optimiser


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["optim"].update(lrr=1), "unknown key(s) ['lrr']"),
    (lambda d: d.update(stagez=[]), "unknown key(s) ['stagez']"),
    (lambda d: d["batch"].update(micro_batch="four"), "batch.micro_batch: expected int, got 'four'"),
    (lambda d: d["stages"][0].update(tokens=100), "give exactly one of steps or tokens"),
    (lambda d: d["run"].update(autocast="fp8"), "run.autocast='fp8'"),
    (lambda d: d["stages"][0].update(optim={"lr": -1.0}), "lr must be > 0"),
    (lambda d: d["optim"].update(name="sgd"), "optim.name='sgd' is not one of adamw, muon"),
    (lambda d: d["optim"].update(schedule="step"), "optim.schedule='step' is not one of cosine, wsd"),
    (lambda d: d["optim"].update(decay_fraction=0.0), "optim.decay_fraction must be in (0, 1]"),
    (lambda d: (d["optim"].update(name="muon"), d["run"].update(parallel="fsdp")), "needs whole matrices"),
    (lambda d: d["stages"][1].update(run={"seed": 3}), "['seed'] cannot differ by stage"),
    (lambda d: d["stages"][1].update(run={"keep_last": 0}), "stages[1] (mono): run.eval_every/save_every"),
])
def test_bad_recipe(tmp_path, mutate, message):
    data = tiny_recipe(tmp_path)
    mutate(data)
    with pytest.raises(UserError) as e:
        recipe_from_dict(data)
    assert message in str(e.value)


def test_preflight_catches_data_problems(tmp_path):
    data = tiny_recipe(tmp_path)
    data["stages"][1]["data"] = {str(tmp_path / "nowhere"): 1.0}
    with pytest.raises(UserError, match="nowhere has no train/ split"):
        preflight(recipe_from_dict(data), 1)

    data = tiny_recipe(tmp_path)
    data["batch"]["batch_tokens"] = 200  # not a multiple of 2 x 32
    with pytest.raises(UserError, match="batch_tokens=200 is not a multiple of micro_batch"):
        preflight(recipe_from_dict(data), 1)
    data["batch"]["batch_tokens"] = 64 * 3
    with pytest.raises(UserError, match=r"x processes \(2\) = 128"):
        preflight(recipe_from_dict(data), 2)

    data = tiny_recipe(tmp_path)  # shards written with a bigger vocabulary than the tokenizer/model
    write_shard(tmp_path / "big" / "train", [np.array([5, 300, 7] * 30)])
    data["stages"][0]["data"] = {str(tmp_path / "big"): 1.0}
    with pytest.raises(UserError, match="token id 300, outside the vocabulary of 256"):
        preflight(recipe_from_dict(data), 1)

    data = tiny_recipe(tmp_path)
    data["model"]["vocab_size"] = 128
    with pytest.raises(UserError, match="has 256 ids but the model's vocab_size is 128"):
        preflight(recipe_from_dict(data), 1)


def test_schedule_warmup_then_cosine():
    o = OptimConfig(lr=1.0, lr_end=0.1, warmup_steps=4)
    assert [lr_at(s, 14, o) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(9, 14, o) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(14, 14, o) == pytest.approx(0.1)


def test_schedule_warmup_stable_decay():
    # 4 warmup steps, then 10: held at 1.0 for the first 6, straight down to 0.1 over the last 4 (decay_fraction 0.4).
    o = OptimConfig(lr=1.0, lr_end=0.1, warmup_steps=4, schedule="wsd", decay_fraction=0.4)
    assert [lr_at(s, 14, o) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [lr_at(s, 14, o) for s in range(4, 11)] == [1.0] * 7
    assert [lr_at(s, 14, o) for s in range(11, 15)] == pytest.approx([0.775, 0.55, 0.325, 0.1])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from opencodegen.train import pretrain as loop

    data = tiny_recipe(tmp_path, save_every=1)
    data["stages"] = data["stages"][:1]
    data["stages"][0]["steps"] = 6
    real, calls = loop.loss_fn, []

    def poisoned(*args):  # the third optimiser step (micro batches 9..12) produces an inf loss
        calls.append(1)
        ce, loss = real(*args)
        return (ce * float("inf"), loss) if len(calls) > 8 else (ce, loss)

    monkeypatch.setattr(loop, "loss_fn", poisoned)
    with pytest.raises(UserError, match=r"step 2: loss is (inf|nan) \(diverged\).*checkpoint-2") as e:
        train(recipe_from_dict(data), tmp_path / "run", progress=False)
    good = Path(str(e.value).rsplit(" ", 1)[1])
    assert good.name == "checkpoint-2" and (good / "model.safetensors").is_file()
    assert not (good.parent / "checkpoint-3").exists()


def test_a_stage_keeps_its_own_checkpoints(tmp_path):
    """run.save_every/keep_last set on one stage apply to it alone; the other stage keeps the recipe's."""
    from opencodegen.train.checkpoint import checkpoint_dirs
    from opencodegen.train.stage import stage_dir

    data = tiny_recipe(tmp_path, save_every=2, keep_last=1)
    data["stages"][1]["run"] = {"save_every": 1, "keep_last": 4}
    recipe = recipe_from_dict(data)
    train(recipe, tmp_path / "run", progress=False)
    steps = [[n for n, _ in checkpoint_dirs(stage_dir(tmp_path / "run", i, s.name))]
             for i, s in enumerate(recipe.stages)]
    assert steps == [[4], [1, 2, 3, 4]]


def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    from opencodegen.train import checkpoint as ckpt

    data = tiny_recipe(tmp_path)
    data["stages"] = data["stages"][:1]
    run = tmp_path / "run"
    train(recipe_from_dict(data), run, progress=False)
    final = run / "stage-0-nl" / "checkpoint-4"
    before = (final / "model.safetensors").read_bytes()
    from opencodegen.model.io import load_checkpoint

    model, _ = load_checkpoint(final, with_tokenizer=False)  # also proves the checkpoint loads as a model
    # Byte tokenizer over ASCII shards: one token is one byte, so bits per byte is the loss in bits.
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_bpb"] == pytest.approx(last["val_loss"] / math.log(2), rel=1e-12)

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("opencodegen.model.io.save_file", full_disk)
    with pytest.raises(OSError):
        ckpt.save(final, model.state_dict(), model, None, None, {})  # same target: the failed write must not touch it
    assert (final / "model.safetensors").read_bytes() == before
    assert not [p for p in final.parent.iterdir() if ".tmp-" in p.name]
    state = json.loads((final / "trainer_state" / "state.json").read_text())
    assert state["step"] == 4


def test_autocast_auto_follows_the_hardware(monkeypatch):
    from opencodegen.train import precision

    assert precision.resolve_autocast("fp32", "cpu") == "fp32" and precision.resolve_autocast("bf16", "cpu") == "bf16"
    flags = Path("/proc/cpuinfo").read_text()
    assert precision.cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert precision.resolve_autocast("auto", "cpu") == expected
    assert recipe_from_dict({**tiny_recipe(Path("/nonexistent")), "run": {}}).run.autocast == "auto"
