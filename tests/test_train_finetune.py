"""The fine-tune flow of the README: configs/finetune.yaml takes its data and length from the command line, refuses a
device this torch cannot use, shows progress inside a step, and writes files other users can read."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from serve_fixtures import write_checkpoint  # noqa: E402
from train_fixtures import make_tokens, tiny_recipe  # noqa: E402

from opencodegen.cli import main  # noqa: E402
from opencodegen.errors import UserError  # noqa: E402
from opencodegen.train import load_recipe, recipe_from_dict  # noqa: E402
from opencodegen import progress  # noqa: E402
from opencodegen.train.recipe import apply_overrides  # noqa: E402

FINETUNE = Path(__file__).parents[1] / "configs" / "finetune.yaml"
SMALL = ["--batch.batch_tokens", "256", "--batch.micro_batch", "2", "--batch.context_length", "32",
         "--run.eval_tokens", "256", "--optim.warmup_steps", "1"]  # 4 micro-batches a step


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(root: Path) -> set[tuple[str, int]]:
    """{('d', 0o755), ('f', 0o644)}: the kinds and permission bits of root and everything under it."""
    out = {("d", stat.S_IMODE(root.stat().st_mode))}
    for p in root.rglob("*"):
        out.add(("d" if p.is_dir() else "f", stat.S_IMODE(p.stat().st_mode)))
    return out


def test_finetune_recipe_from_the_command_line_then_export(tmp_path, capsys, monkeypatch, umask_022):
    ckpt = write_checkpoint(tmp_path / "ckpt")
    tokens = make_tokens(tmp_path / "tokens", "mine", seed=3)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)  # every micro-batch gets its line
    run_dir = tmp_path / "runs" / "mine"
    args = ["train", "--config", str(FINETUNE), "--init_from", str(ckpt), "--data", str(tokens),
            "--run-dir", str(run_dir), "--stages.0.steps", "2", *SMALL]
    assert main(args) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(s["stage"], s["steps"], s["tokens"]) for s in summary["stages"]] == [("finetune", 2, 512)]
    final = Path(summary["final_checkpoint"])
    assert final.name == "checkpoint-2" and (final / "tokenizer.json").is_file()  # init_from's tokenizer, carried
    err = capsys.readouterr().err
    # pytest's stderr is not a terminal: the progress inside each step comes as plain lines
    for done in ("0.25", "0.5", "0.75", "1", "1.25", "1.5", "1.75"):
        assert f"pretrain finetune: {done}/2 (" in err
    for m in (1, 2, 3):
        assert f"micro-batch {m}/4" in err
    assert "tok/s, step eta" in err and "pretrain finetune: 2/2 (100%)" in err and "· loss" in err
    assert modes(final) == {("d", 0o755), ("f", 0o644)}  # a mkdtemp directory renamed into place was 0700 / 0600

    # A rerun of the finished command says so instead of returning silently.
    assert main(args) == 0
    assert "already trained" in capsys.readouterr().err

    out = tmp_path / "out" / "model"
    assert main(["export-hf", str(final), str(out)]) == 0
    assert modes(out) == {("d", 0o755), ("f", 0o644)}


def test_files_follow_a_stricter_umask(tmp_path):
    from opencodegen.filemodes import as_if_created

    old = os.umask(0o077)
    try:
        d = tmp_path / "x"
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_text("")
        os.chmod(d, 0o755)
        as_if_created(d)
        assert modes(d) == {("d", 0o700), ("f", 0o600)}
    finally:
        os.umask(old)


def test_stage_overrides(tmp_path):
    data = tiny_recipe(tmp_path)
    data["stages"][1] = {"name": "mono", "data": {"a": 1.0}, "tokens": 1000}
    out = apply_overrides(data, {"stages.1.steps": "7", "stages.0.data": "['x', 'y']"})
    assert out["stages"][1] == {"name": "mono", "data": {"a": 1.0}, "steps": 7}  # steps replaces tokens
    assert recipe_from_dict(out).stages[0].data == {"x": 1.0, "y": 1.0}  # a list: weight 1.0 each
    with pytest.raises(UserError, match=r"has 2 stage\(s\) \(0 to 1\)"):
        apply_overrides(data, {"stages.2.data": "x"})
    with pytest.raises(UserError, match="every stage of this one names its data; use --stages.N.data"):
        apply_overrides(data, {"data": "x"})
    recipe = load_recipe(FINETUNE, {"init_from": str(tmp_path), "data": "{t/a: 0.7, t/b: 0.3}"})
    assert recipe.stages[0].data == {"t/a": 0.7, "t/b": 0.3}
    with pytest.raises(UserError, match=r"no data; give it with --data PATH .* or --stages.0.data PATH"):
        load_recipe(FINETUNE)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("device, message", [
    ("cuda", "run.device 'cuda': this torch was built without CUDA"),
    ("cuda:1", "run.device 'cuda:1'"),
    ("gpu", "run.device 'gpu' is not a device torch knows (use auto, cpu, cuda or cuda:N)"),
])
def test_recipe_refuses_a_device_this_torch_cannot_use(tmp_path, device, message):
    if torch.version.cuda is not None:
        message = message.replace("this torch was built without CUDA", "no CUDA GPU is visible")
    data = tiny_recipe(tmp_path, device=device)
    with pytest.raises(UserError) as e:
        recipe_from_dict(data)
    assert message in str(e.value)
    assert recipe_from_dict(tiny_recipe(tmp_path, device="auto")).run.device == "cpu"
    assert recipe_from_dict({**tiny_recipe(tmp_path), "run": {}}).run.device == "cpu"  # auto is the default
