"""The compiled decode step: torch.compile (inductor) of GPT.decode_step, one token for each row over a KV cache.

Batch-1 decoding of a small model is bound by the number of operators, not by arithmetic: an eager step dispatches
about 35 of them per layer (views, casts, the rotary's products, cache writes), each costing microseconds of Python and
dispatch whatever its size. Inductor fuses the elementwise ones into a few C++ loops around the matmuls and SDPA, which
stay the ATen calls eager makes, called from a generated C++ function rather than Python. The whole step is one call:
the positions, the rotary rows, the cache writes and lengths, the layers and the vocabulary projection, so that only
the span's read and the sampling run eagerly. Shapes are dynamic (batch rows, the cache's positions, the attended
span), so a model compiles once for one row and once for several, not once per step; prefills and speculative verify
passes (several tokens per row) stay eager.

Eager numerics are kept: `emulate_precision_casts` rounds every intermediate that eager rounds to bf16/fp16 at the same
point (inductor otherwise keeps fused intermediates in fp32), and the matmuls and attention are ATen's own calls, so
greedy decoding gives the same tokens with and without compile (tests/test_compiled_decode.py checks fp32 and bf16).
Not bit for bit everywhere: inductor's fused LayerNorm/RMSNorm reduces in another order than ATen's kernel, which
rounds about 1% of bf16 rows one ulp apart, so a bf16 step's logits can differ by an ulp and a greedy token flips
only where two logits tie that closely. Where compile cannot run (no C++ compiler, an
unsupported platform), the first step notes why and decoding goes on eagerly."""

from __future__ import annotations

import torch
import torch._dynamo

from ..progress import log

# Compiled code is kept per code object: every model a process compiles adds its own entries (one row, several rows)
# to GPT.layers', and at dynamo's default limit of 8 the fifth model would go back to eager.
torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)


class CompiledDecode:
    """GPT.decode_step compiled; `step` runs it, or the eager method for good once compiling has failed."""

    def __init__(self, model):
        self.model = model
        # emulate_precision_casts: round fused bf16/fp16 intermediates where eager rounds them (inductor otherwise keeps
        # them in fp32, which moves low-precision logits by a few ulp and flips greedy near-ties). cpp_wrapper: the
        # graph's calls run from C++, not from a generated Python function (a few hundred microseconds a step).
        # The function, not the bound method: a deep copy of the model (DPO's and RL's reference) then gets a
        # CompiledDecode that runs the copy, not the original.
        self.compiled = torch.compile(type(model).decode_step, dynamic=True, fullgraph=True,
                                      options={"emulate_precision_casts": True, "cpp_wrapper": True})
        self.failed: str | None = None

    def step(self, *args) -> torch.Tensor:
        if self.failed is None:
            try:
                return self.compiled(self.model, *args)
            except torch._dynamo.exc.TorchDynamoException as e:  # compiling failed (tracing or the C++ build)
                cause = getattr(e, "inner_exception", e)  # a backend's failure: the compiler's own error
                self.failed = f"{type(cause).__name__}: {(str(cause).strip() or '?').splitlines()[0]}"
                log(f"note: torch.compile of the decode step failed, decoding eagerly ({self.failed})")
        return self.model.decode_step(*args)
