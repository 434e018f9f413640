"""The one checked load path (model.weights.load_weights) and checkpoint writing (model.io.save_checkpoint): a
missing, unexpected or mis-shaped tensor is an error naming it, wherever the weights come from (a checkpoint
directory, a state dict, the trainer's stage-to-stage hand-over); a tied head stays tied; ModelConfig is frozen and
a long-context stage's rotary change is a new config."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import tiny_recipe  # noqa: E402

from opencodegen.errors import UserError  # noqa: E402
from opencodegen.model.config import ModelConfig  # noqa: E402
from opencodegen.model.io import load_checkpoint, save_checkpoint  # noqa: E402
from opencodegen.model.rope import cos_sin_table  # noqa: E402
from opencodegen.model.transformer import GPT  # noqa: E402
from opencodegen.model.weights import WEIGHTS, load_weights  # noqa: E402
from opencodegen.train import recipe_from_dict, train  # noqa: E402


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig.from_preset("tiny-1m", vocab_size=64, n_layer=1, n_embd=32, n_head=4, **overrides))


def drop(directory: Path, name: str) -> None:
    sd = load_file(str(directory / WEIGHTS))
    del sd[name]
    save_file(sd, str(directory / WEIGHTS))


def test_round_trip_is_exact_and_the_tied_head_is_not_stored(tmp_path):
    model = tiny(tie_embeddings=True)
    ckpt = save_checkpoint(model, None, tmp_path / "ckpt")
    assert "lm_head.weight" not in load_file(str(ckpt / WEIGHTS))
    fresh = load_weights(tiny(tie_embeddings=True, init_std=0.5), ckpt)
    a, b = model.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert fresh.lm_head.weight is fresh.wte.weight  # still one tensor: training one trains the other


@pytest.mark.parametrize("assign", [False, True])
def test_tied_head_is_retied_after_loading(assign):
    src = tiny(tie_embeddings=True)
    if assign:
        with torch.device("meta"):
            model = GPT(src.config)
    else:
        model = tiny(tie_embeddings=True, init_std=0.5)
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    load_weights(model, sd, assign=assign)
    assert model.lm_head.weight is model.wte.weight and torch.equal(model.wte.weight, src.wte.weight)
    tokens = torch.randint(0, 64, (1, 8))
    torch.testing.assert_close(model(tokens), src(tokens))  # rope table rebuilt after a meta build, too


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path):
    model = tiny()
    sd = dict(model.state_dict())
    del sd["blocks.0.mlp.fc.bias"]
    sd["blocks.0.attn.extra"] = torch.zeros(1)
    sd["norm_f.weight"] = torch.ones(33)
    with pytest.raises(UserError) as e:
        load_weights(tiny(), sd, where="the test's tensors")
    message = str(e.value)
    assert message.startswith("the test's tensors: ")
    assert "missing tensors ['blocks.0.mlp.fc.bias']" in message
    assert "unexpected tensors ['blocks.0.attn.extra']" in message
    assert "norm_f.weight: file (33,) vs config (32,)" in message


def test_an_untied_head_must_be_in_the_file(tmp_path):
    ckpt = save_checkpoint(tiny(), None, tmp_path / "ckpt")
    drop(ckpt, "lm_head.weight")
    with pytest.raises(UserError, match=r"model\.safetensors: missing tensors \['lm_head\.weight'\]"):
        load_checkpoint(ckpt, with_tokenizer=False)


def test_unreadable_weights_name_the_file(tmp_path):
    ckpt = save_checkpoint(tiny(), None, tmp_path / "ckpt")
    (ckpt / WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match=r"model\.safetensors: cannot read weights"):
        load_weights(tiny(), ckpt)


def test_save_checkpoint_writes_extra_files_with_the_weights_or_nothing(tmp_path):
    model = tiny()
    tok = tmp_path / "tokenizer.json"
    tok.write_text('{"not": "checked here"}')

    def trainer_state(directory: Path) -> None:
        (directory / "trainer_state").mkdir()
        (directory / "trainer_state" / "state.json").write_text('{"step": 3}')

    ckpt = save_checkpoint(model, tok, tmp_path / "ckpt", write_extra=trainer_state)
    assert json.loads((ckpt / "trainer_state" / "state.json").read_text()) == {"step": 3}
    assert (ckpt / "tokenizer.json").read_text() == tok.read_text()
    gathered = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    before = sorted(p.name for p in tmp_path.iterdir())

    def fails(directory: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, None, ckpt, state_dict=gathered, write_extra=fails)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary left behind
    assert (ckpt / "trainer_state" / "state.json").is_file()  # the earlier checkpoint is intact
    save_checkpoint(model, None, ckpt, state_dict=gathered)
    assert all(not v.any() for v in load_file(str(ckpt / WEIGHTS)).values())  # the given state dict, not the model's


def test_stage_to_stage_load_with_a_missing_tensor_names_it(tmp_path):
    data = tiny_recipe(tmp_path)
    run = tmp_path / "run"
    train(recipe_from_dict({**data, "stages": data["stages"][:1]}), run, progress=False)
    drop(run / "stage-0-nl" / "checkpoint-4", "blocks.0.mlp.fc.weight")
    # The same run with both stages: stage 0 is done, so stage 1 starts from its last checkpoint.
    with pytest.raises(UserError, match=r"stage-0-nl/checkpoint-4/model\.safetensors: missing tensors "
                                        r"\['blocks\.0\.mlp\.fc\.weight'\]"):
        train(recipe_from_dict(data), run, progress=False)


def test_config_is_frozen_and_set_rope_makes_a_new_one():
    model = tiny()
    old = model.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        old.rope_base = 5e4
    model.set_rope(block_size=2048, rope_base=5e4)
    assert old.rope_base == 10000.0 and old.block_size == 1024  # whoever held the old config still sees it
    assert (model.config.rope_base, model.config.block_size, model.config.rope_scaling) == (5e4, 2048, None)
    c = model.config
    cos, _ = cos_sin_table(c.rotary_dim, 5e4, None, 2048, c.rope_interleaved)
    assert torch.equal(model.rope_cos, cos)


@pytest.mark.parametrize("field,value,message", [
    ("norm", "batchnorm", "norm='batchnorm' is not 'layernorm' or 'rmsnorm'"),
    ("mlp", "relu", "mlp='relu' is not 'gelu' or 'swiglu'"),
    ("rope_scaling", {"type": "ntk"}, "rope_scaling type 'ntk' is not 'linear' or 'yarn'"),
])
def test_config_strings_are_checked(field, value, message):
    with pytest.raises(UserError, match="model config 'tiny-1m': " + message):
        ModelConfig.from_preset("tiny-1m", **{field: value})
