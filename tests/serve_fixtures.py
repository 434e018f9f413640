"""A tiny random checkpoint (real CodeTokenizer with the FIM and repository tokens, tiny-1m weights) and a real
uvicorn server over it on a loopback port, for the serve tests."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import torch

from opencodegen.model.config import ModelConfig
from opencodegen.model.io import load_checkpoint, save_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.serve.app import create_app
from opencodegen.serve.background import ServerThread
from opencodegen.tokenizer import train_tokenizer

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "import os\nimport sys\n\n\nclass Reader:\n    def __init__(self, path):\n        self.path = path\n",
    "for i in range(10):\n    print(i, i * i)\n\n# done\n",
    "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n    return a + b\n",
]
BLOCK_SIZE = 256


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Import into a test module to run it with one intra-op thread: a tiny model gains nothing from two, and on a
    machine shared with other jobs OpenMP's spinning made each step 10-20x slower (measured: 6 s vs 0.3 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_checkpoint(directory: Path, seed: int = 0) -> Path:
    tok = train_tokenizer(CODE * 20, vocab_size=384)
    torch.manual_seed(seed)
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=tok.vocab_size, block_size=BLOCK_SIZE,
                                        eos_token_id=tok.eos_id))
    return save_checkpoint(model, tok, directory)


@contextlib.contextmanager
def running_server(checkpoint: Path, **options):
    """(server, model, tokenizer): the model object is the one the server runs (tests may wrap its forward)."""
    model, tok = load_checkpoint(checkpoint)
    app = create_app(model, tok, model_name="tiny", **{"slots": 4, "queue_size": 8, "timeout": 60.0, **options})
    with ServerThread(app) as server:
        yield server, model, tok


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def health(server) -> dict:
    return httpx.get(server.url + "/health").json()


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class SlowForward:
    """Wraps model.forward: each call sleeps `delay` seconds, so a generation lasts long enough to interrupt; `gate`
    (when set up) holds the first call until released. Counts calls and records the batch size of decode steps."""

    def __init__(self, model, delay: float = 0.0, gate: bool = False):
        self.model, self.delay = model, delay
        self.original = model.forward
        self.calls = 0
        self.decode_batches: list[int] = []
        self.gate = threading.Event()
        if not gate:
            self.gate.set()

    def __enter__(self) -> "SlowForward":
        def forward(idx, **kw):
            self.gate.wait()
            self.calls += 1
            if idx.shape[1] == 1:
                self.decode_batches.append(idx.shape[0])
            time.sleep(self.delay)
            return self.original(idx, **kw)

        self.model.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        self.gate.set()
        del self.model.forward
