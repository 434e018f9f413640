"""`ocg serve` as a user runs it: a subprocess on a checkpoint directory, answering the openai client, shutting down
cleanly on SIGTERM; and its refusal of a directory that is not a checkpoint."""

from __future__ import annotations

import pytest

import signal
import socket
import subprocess
import sys
import time

import httpx

from opencodegen.cli import main
from serve_fixtures import client, write_checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ocg_serve_answers_the_openai_client_and_stops_on_sigterm(tmp_path):
    ckpt = write_checkpoint(tmp_path / "my-model")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "opencodegen.cli", "serve", "--model", str(ckpt), "--port",
                             str(port), "--slots", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ocg serve did not come up"
            time.sleep(0.2)
        server = type("S", (), {"url": url})
        assert [m.id for m in client(server).models.list().data] == ["my-model"]  # named after the directory
        r = client(server).completions.create(model="my-model", prompt="def f():", max_tokens=5, temperature=0)
        assert r.usage.prompt_tokens > 0 and r.choices[0].finish_reason in ("stop", "length")
        assert httpx.get(url + "/health").json()["slots"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully (lifespan: the scheduler's thread is joined), then re-raises the signal.
    assert "Application shutdown complete" in out and proc.returncode in (0, -signal.SIGTERM), out


def test_ocg_serve_names_a_directory_that_is_not_a_checkpoint(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "config.json" in err


@pytest.mark.parametrize("flag, value", [("--prefix-cache-mb", "-1"), ("--prefill-chunk", "0"),
                                         ("--prefill-budget", "0"), ("--speculative", "-1")])
def test_ocg_serve_refuses_bad_cache_settings(tmp_path, capsys, flag, value):
    assert main(["serve", "--model", str(tmp_path), flag, value]) == 2
    assert f"{flag} {value}" in capsys.readouterr().err


def test_ocg_serve_on_a_busy_port_says_so_before_anything_else(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "my-model")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(ckpt), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert f"ocg serve: error: port {port} on 127.0.0.1 is already in use" in captured.err
    assert "--port" in captured.err and "serving" not in captured.err + captured.out
