"""The HuggingFace families we import and export, one adapter each; adding a family is adding its module here."""

from .base import HFFamily
from .codegen import CodeGen
from .llama import Llama
from .qwen2 import Qwen2
from .qwen3 import Qwen3

FAMILIES: dict[str, HFFamily] = {f.architecture: f for f in (CodeGen(), Qwen2(), Qwen3(), Llama())}
