"""What this machine lacks is one message that says what to install or use instead, before any work starts: Slurm's
sbatch, the ray extra, a CUDA device."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from opencodegen.cli import main


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("def f(x):\n    return x + 1\n")
    return tmp_path / "repo"


def test_slurm_without_sbatch(tmp_path, repo, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "corpus"
    assert main(["corpus", "build", "--dir", str(repo), "--out", str(out), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "ocg corpus: error: --executor slurm submits with `sbatch`, which is not on PATH" in err
    assert "Traceback" not in err and not out.exists()  # refused before anything was written


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed here")
def test_ray_without_the_extra(tmp_path, repo, capsys):
    out = tmp_path / "corpus"
    assert main(["corpus", "build", "--dir", str(repo), "--out", str(out), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "--executor ray needs the Python package 'ray', which is not installed: pip install 'opencodegen[ray]'" \
        in err
    assert not out.exists()
    extras = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert "\nray = [" in extras  # the extra the message names is declared


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_device_this_torch_cannot_use(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", str(tmp_path), "--device", "cuda", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --device: device 'cuda':" in err and "use --device cpu or auto" in err
