"""Every command line in README.md's fenced shell blocks, run as written, adapted only by substituting a tiny local
model, small directories and short budgets for the paths and sizes it names. A README command that stops working
(a renamed flag, a recipe that no longer loads, a missing output the next command reads) fails here.

`make quickstart` and `make test` are the two exceptions: test_quickstart.py runs the quickstart on a small budget,
and the suite is `make test` itself. Commands that need what this machine lacks (Slurm, ray, a GPU) are in the README's
prose, not its command blocks; test_cli_missing.py checks what they say here."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from readme_commands import readme_commands  # noqa: E402
from serve_fixtures import write_checkpoint  # noqa: E402

from opencodegen.cli import main  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # 2 min on a quiet machine; 20 under a load of 8
ROOT = Path(__file__).parents[1]
NOT_RUN = {("make", "quickstart"), ("make", "test")}
# Short budgets: flag -> value, wherever the README gives the flag.
BUDGET = {"--n": "2", "--synthetic": "12", "--k": "2", "--stride": "64", "--max-new-tokens": "8",
          "--stages.0.steps": "2"}
# Flags added to a command (its first words -> flags), only to shorten it.
SHORTER = {
    ("eval", "humaneval"): ["--limit", "2", "--max-new-tokens", "8"],
    ("eval", "infill"): ["--limit", "2", "--max-new-tokens", "8"],
    ("eval", "mtpb"): ["--limit", "2"],
    ("eval", "bpb"): ["--limit", "2"],
    ("exercises", "build"): ["--max-new-tokens", "16", "--limit", "2"],
    ("train",): ["--batch.batch_tokens", "2048", "--batch.micro_batch", "2", "--batch.context_length", "128",
                 "--run.eval_tokens", "512", "--optim.warmup_steps", "1", "--stages.0.steps", "2"],
    # prompt + solution must fit a row (this tiny tokenizer spells ~2 characters a token); rl's micro_batch is 16
    ("train", "--config", "configs/posttrain.yaml"): ["--stages.1.steps", "1", "--batch.batch_tokens", "8192",
                                                      "--batch.context_length", "512"],
    ("train", "--config", "configs/finetune.yaml", "--init_from", "ckpt/qwen-0.5b", "--data", "exercises"): [
        "--batch.batch_tokens", "8192", "--batch.context_length", "512"],  # a chat turn repeats the prompt
}


def adapt(argv: list[str], paths: dict[str, str]) -> list[str]:
    out = [paths.get(a, a) for a in argv]
    for i, a in enumerate(out[:-1]):
        if a in BUDGET:
            out[i + 1] = BUDGET[a]
    for prefix, extra in SHORTER.items():
        if tuple(out[1:1 + len(prefix)]) == prefix:
            if prefix == ("exercises", "build") and "--self" not in out:
                continue  # --limit and --max-new-tokens are the self-generation round's
            out += [x for x in extra]
    return out


def small_repos(root: Path) -> Path:
    """Two repositories of documented standard-library modules: real code to build a corpus and mine exercises."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for repo, modules in (("textkit", ["textwrap.py", "colorsys.py"]), ("algos", ["bisect.py", "heapq.py"])):
        (root / repo).mkdir(parents=True)
        for m in modules:
            shutil.copy(stdlib / m, root / repo / m)
    return root


def serve(argv: list[str]) -> None:
    """`ocg serve`: a subprocess on a free port, asked for its models, then stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "opencodegen.cli", *argv[1:], "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "ocg serve did not come up"
                time.sleep(0.3)
        assert r.status_code == 200 and r.json()["data"][0]["id"]
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200  # the playground
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_every_readme_command_runs(tmp_path, monkeypatch):
    home = tmp_path / "home"
    model = write_checkpoint(tmp_path / "download" / "ours")
    assert main(["export-hf", str(model), str(home / "models" / "Qwen2.5-Coder-0.5B")]) == 0  # a "downloaded" HF dir
    repos = small_repos(home / "src" / "my-repos")
    held_out = home / "src" / "held-out"
    held_out.mkdir(parents=True)
    shutil.copy(repos / "algos" / "bisect.py", held_out / "bisect.py")
    paths = {
        "~/models/Qwen2.5-Coder-0.5B": str(home / "models" / "Qwen2.5-Coder-0.5B"),
        "~/src/my-repos": str(repos),
        "~/src/held-out": str(held_out),
        "~/data/mtpb.jsonl": str(ROOT / "src" / "opencodegen" / "eval" / "data" / "mtpb_mini.jsonl"),
        "runs/X/checkpoint": "ckpt/qwen-0.5b",  # "your model": the imported one
        "ckpt/my-model": "ckpt/qwen-0.5b",
        "runs/post/stage-1-rl/checkpoint-200": "runs/post/stage-1-rl/checkpoint-1",
        "runs/chat/stage-0-finetune/checkpoint-100": "runs/chat/stage-0-finetune/checkpoint-2",
    }
    work = tmp_path / "work"
    work.mkdir()
    (work / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(work)
    commands = readme_commands()
    ran = []
    for argv in commands:
        if tuple(argv) in NOT_RUN:
            continue
        assert argv[0] == "ocg", f"a README command this test does not know how to run: {argv}"
        args = adapt(argv, paths)
        if args[1] == "exercises" and "--mine-corpus" in args and not Path("runs/quickstart/corpus/mono").exists():
            Path("runs/quickstart/corpus").mkdir(parents=True, exist_ok=True)
            os.symlink(work / "corpus" / "mine", "runs/quickstart/corpus/mono")  # the corpus built above
        if args[1] == "serve":
            serve(args)
        elif args[1] == "synth":
            monkeypatch.setattr("sys.stdin", io.StringIO("Let x be 3.\n:run\n:quit\n"))
            assert main(args[1:]) == 0, args
        else:
            assert main(args[1:]) == 0, args
        ran.append(args[1:3])
    assert len(ran) == len(commands) - len(NOT_RUN & {tuple(c) for c in commands})
    assert Path("runs/mine/summary.json").is_file() and Path("results/he/summary.json").is_file()
