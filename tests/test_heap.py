"""The heap setting: after keep_freed_memory(), a block the size of a small model's logits comes from the heap and
stays there when freed; without it glibc maps it fresh each time (measured with glibc's own mallinfo2)."""

import subprocess
import sys

import pytest

from opencodegen.heap import glibc

PROBE = r"""
import ctypes, ctypes.util, sys
from opencodegen.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
import torch
before = libc.mallinfo2()
x = torch.ones(16 << 20)  # 64 MiB of fp32
mapped = libc.mallinfo2().hblkhd - before.hblkhd
del x
kept = libc.mallinfo2().arena - before.arena
print(applied, mapped >> 20, kept >> 20)
"""


def _probe(mode: str) -> tuple[str, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1]), int(out[2])


@pytest.mark.skipif(not hasattr(glibc(), "mallinfo2"), reason="needs glibc 2.33 or later (mallinfo2)")
def test_a_freed_large_block_stays_in_the_heap():
    applied, mapped, kept = _probe("keep")
    assert applied == "True"
    assert mapped == 0  # not an mmap of its own
    assert kept >= 64  # but heap, still the process's after it was freed
    applied, mapped, kept = _probe("plain")
    assert applied == "False" and mapped >= 64  # glibc's default: mapped, and returned to the kernel on free
    assert kept == 0


def test_the_cli_sets_it_before_any_command_runs(monkeypatch):
    from opencodegen import cli
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    assert cli.main(["train", "--config", "/nonexistent/recipe.yaml"]) == 2
    assert calls == [1]
