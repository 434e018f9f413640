"""opencodegen: the CodeGen system end to end (corpus, staged pretraining, evaluation by execution, synthesis)."""

__version__ = "0.1.0"
