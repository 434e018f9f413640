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
point (inductor otherwise keeps fused intermediates in fp32), and the matmuls, attention and LayerNorm are ATen's own
calls. Inductor would decompose LayerNorm into a fused loop that sums in another order than ATen's kernel, rounding
about 1% of bf16 rows an ulp apart, which flipped a greedy token where two logits nearly tied (one row of 16 in the
batch-16 benchmark); so the step is compiled with inductor's decompositions less LayerNorm's, and CodeGen-family
steps are bit for bit eager's (tests/test_compiled_decode.py compares logits at the benchmark model's width). RMSNorm
(the Qwen family) is still fused: on a CPU it is eager's pow, mean and rsqrt, not one kernel, and inductor's mean sums
in its own order, so a bf16 Qwen step's logits can still differ by an ulp in a few rows. Where compile cannot run (no
C++ compiler, an unsupported platform), the first step notes why and decoding goes on eagerly."""

from __future__ import annotations

import logging

import torch
import torch._dynamo
from torch._inductor.compile_fx import compile_fx
from torch._inductor.decomposition import select_decomp_table
from torch._inductor.lowering import lowerings, make_fallback, tag_to_layout_constraint
from torch._library.utils import get_layout_constraint_tag

from ..progress import log

# emulate_precision_casts: round fused bf16/fp16 intermediates where eager rounds them (inductor otherwise keeps them in
# fp32, which moves low-precision logits by a few ulp and flips greedy near-ties). cpp_wrapper: the graph's calls run
# from C++, not from a generated Python function (a few hundred microseconds a step).
INDUCTOR_OPTIONS = {"emulate_precision_casts": True, "cpp_wrapper": True}
# Operators left to ATen's kernels: LayerNorm, whose fused decomposition sums in another order than eager's kernel.
KEPT_AS_ATEN = (torch.ops.aten.native_layer_norm.default,)
# Compiled artifacts are cached on disk by a key that does not include the decomposition table: the tag keeps a
# step compiled with LayerNorm decomposed (an earlier version, or a plain torch.compile) from being reused for ours.
CACHE_TAG = "opencodegen-decode-aten-layer-norm"


class _NoShimNote(logging.Filter):
    """Inductor warns that the kept LayerNorm has no C shim and is called through its proxy executor: that is the
    intended call, not a problem to show each user on each compile."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "missing a c-shim implementation" not in record.getMessage()


def _register_kept_ops() -> None:
    """Give each kept operator the ATen-call lowering that inductor would otherwise create on first sight. Inductor's
    own implicit fallback refuses an operator that has a decomposition when the CI environment variable is set (its
    check that its own fallbacks list has none); registered here, with the layout constraint its implicit path would
    choose, the generated code is the same with or without that variable. Other compiles are unaffected: they
    decompose LayerNorm before lowering, so the lowering is never reached."""
    for op in KEPT_AS_ATEN:
        if op not in lowerings:
            constraint = tag_to_layout_constraint(get_layout_constraint_tag(op, with_default=True))
            make_fallback(op, layout_constraint=constraint, warn=False, override_decomp=True)


def inductor_keeping_layer_norm(graph, example_inputs):
    """torch.compile's inductor backend with LayerNorm kept as ATen's call."""
    _register_kept_ops()
    table = {op: fn for op, fn in select_decomp_table().items() if op not in KEPT_AS_ATEN}
    note, quiet = logging.getLogger("torch._inductor.ir"), _NoShimNote()
    note.addFilter(quiet)
    try:
        with torch.compiler.config.patch(cache_key_tag=CACHE_TAG):
            return compile_fx(graph, example_inputs, decompositions=table, config_patches=INDUCTOR_OPTIONS)
    finally:
        note.removeFilter(quiet)


# Compiled code is kept per code object: every model a process compiles adds its own entries (one row, several rows)
# to GPT.layers', and at dynamo's default limit of 8 the fifth model would go back to eager.
torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)


class CompiledDecode:
    """GPT.decode_step compiled; `step` runs it, or the eager method for good once compiling has failed."""

    def __init__(self, model):
        self.model = model
        # The function, not the bound method: a deep copy of the model (DPO's and RL's reference) then gets a
        # CompiledDecode that runs the copy, not the original.
        self.compiled = torch.compile(type(model).decode_step, dynamic=True, fullgraph=True,
                                      backend=inductor_keeping_layer_norm)
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
