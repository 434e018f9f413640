"""A toy post-training world: a word-level tokenizer whose tokens are whole lines of code, and exercises whose answer
is one of those lines, so that a randomly initialised model already passes some samples (RL has a signal) and the
right answers are easy to learn."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

EOS = "<|endoftext|>"
ANSWERS = {"f": 1, "g": 2, "h": 3}
LINES = [EOS, "<unk>"] + [f"def {name}():\n" for name in ANSWERS] + [f"    return {k}\n" for k in range(4)]


def line_tokenizer(path: Path) -> Path:
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(LINES)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[^\n]*\n"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([EOS])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def exercise(name: str, value: int) -> dict:
    return {"id": f"toy/{name}", "source": "synthetic", "prompt": f"def {name}():\n", "entry_point": name,
            "solution": f"    return {value}\n", "tests": f"def check(candidate):\n    assert candidate() == {value}\n",
            "meta": {"recipe": f"{name}/toy"}}  # one family per function (train/curriculum.py)


def write_exercises(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def toy_recipe(root: Path, stages: list[dict], **run) -> dict:
    """A recipe over the toy exercises; `stages` are given whole (kind, steps, options)."""
    data = write_exercises(root / "exercises" / "exercises.jsonl",
                           [exercise(n, v) for n, v in ANSWERS.items()])
    for s in stages:
        s.setdefault("data", {str(data): 1.0})
    return {
        "model": {"preset": "tiny-1m", "vocab_size": len(LINES), "n_layer": 1, "n_embd": 32, "n_head": 2,
                  "block_size": 32},
        "tokenizer": str(line_tokenizer(root / "tok" / "tokenizer.json")),
        "optim": {"lr": 1e-2, "warmup_steps": 1, "lr_end": 1e-2},
        "batch": {"batch_tokens": 64, "micro_batch": 4, "context_length": 16},
        "run": {"eval_every": 2, "save_every": 2, "autocast": "fp32", **run},
        "stages": stages,
    }
