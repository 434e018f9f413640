"""`ocg average`: the mean of checkpoints' weights, tensor by tensor, the last one's config and tokenizer, and one
clear error for a checkpoint of another model."""

from __future__ import annotations

import json

import pytest
import torch

from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.model.average import average_checkpoints
from opencodegen.model.io import load_checkpoint
from serve_fixtures import write_checkpoint


def test_the_average_is_the_mean_of_each_tensor_and_keeps_the_last_tokenizer(tmp_path):
    a, b, c = (write_checkpoint(tmp_path / name, seed=i) for i, name in enumerate("abc"))
    assert main(["average", str(tmp_path / "avg"), str(a), str(b), str(c)]) == 0
    averaged, tok = load_checkpoint(tmp_path / "avg")
    states = [load_checkpoint(d, with_tokenizer=False)[0].state_dict() for d in (a, b, c)]
    for name, tensor in averaged.state_dict().items():
        expected = (states[0][name].float() + states[1][name].float() + states[2][name].float()) / 3
        assert torch.equal(tensor, expected), name
    assert (tmp_path / "avg" / "tokenizer.json").read_bytes() == (c / "tokenizer.json").read_bytes()
    assert tok.encode("def f(x):") == load_checkpoint(c)[1].encode("def f(x):")


def test_checkpoints_of_another_model_are_refused_by_name(tmp_path):
    a, b = write_checkpoint(tmp_path / "a"), write_checkpoint(tmp_path / "b", seed=1)
    config = json.loads((b / "config.json").read_text())
    config["n_layer"] += 1
    (b / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"a: another model than .*b \(n_layer differ\)"):
        average_checkpoints([a, b], tmp_path / "avg")
    with pytest.raises(UserError, match="at least two"):
        average_checkpoints([a], tmp_path / "avg")
    assert not (tmp_path / "avg").exists()
