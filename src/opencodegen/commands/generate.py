"""`ocg generate --model DIR "def fib(n):"`: sample completions from a checkpoint (ours or a HuggingFace directory).

The prompt comes from the argument, --file, or stdin. Completions go to stdout (several samples are separated by a
header line); a summary (tokens, speed, finish reason) goes to stderr so the output can be piped. Token healing
(healing.py) backs up the prompt's end and lets the model re-spell it; what it re-spells is not printed.

With --chat the prompt is a user message: it is rendered in the model's chat template (prompt_format.chat_pieces)
and the answer ends at <|im_end|>. Control tokens are never sampled inside a completion nor printed."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..device import device_arg
from ..errors import UserError
from .options import add_compile, unescape

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", nargs="?", help="prompt text (default: --file, or stdin)")
    parser.add_argument("--model", required=True, type=Path, help="checkpoint or HuggingFace model directory")
    parser.add_argument("--file", type=Path, help="read the prompt from this file")
    parser.add_argument("--max-new-tokens", type=int, default=128,
                        help="most tokens to generate per sample (fewer when prompt + completion reach the model's "
                             "context)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the most likely tokens "
                        "whose probabilities sum to this (1.0 keeps all)")
    parser.add_argument("--top-k", type=int, default=0, help="0 disables top-k")
    parser.add_argument("--n", type=int, default=1, help="samples for the prompt")
    parser.add_argument("--seed", type=int, default=None, help="random seed for sampling (default: a fresh one)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="stop string (repeatable; escapes such as \\n are interpreted)")
    parser.add_argument("--humaneval-stops", action="store_true",
                        help="add the HumanEval stop strings (\\nclass, \\ndef, \\n#, \\nif, \\nprint, \\n@, \\n```)")
    parser.add_argument("--stream", action="store_true", help="print text as it is generated (one sample)")
    parser.add_argument("--speculative", type=int, default=0, metavar="K",
                        help="speculative decoding: draft up to K tokens per step by prompt lookup (earlier text of "
                             "the same sequence) and verify them in one forward pass; same output, fewer passes. "
                             "0 (default) is off")
    add_compile(parser, "pays off for long completions")
    parser.add_argument("--chat", action="store_true",
                        help="the prompt is a user message to a chat model: render it in the model's chat template "
                             "(a post-trained model's, or an instruct model's) and print the assistant's answer")
    parser.add_argument("--system", default=None, metavar="TEXT",
                        help="with --chat: the system message (default: the chat template's own)")
    parser.add_argument("--no-token-healing", dest="token_healing", action="store_false",
                        help="take the prompt's tokens as they are (default: back up a prompt that ends inside a "
                             "token, e.g. mid-identifier, and let the model re-spell its end)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="weights and compute dtype (default: %(default)s)")
    parser.add_argument("--device", default="cpu", type=device_arg,
                        help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None and args.file is not None:
        raise UserError("give the prompt either as an argument or with --file, not both")
    if args.file is not None:
        try:
            return args.file.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{args.file}: cannot read the prompt ({e})") from None
    if args.prompt is not None:
        return args.prompt
    if sys.stdin.isatty():
        raise UserError("no prompt: pass it as an argument, with --file, or on stdin")
    return sys.stdin.read()


def run(args: argparse.Namespace) -> int:
    import torch

    from ..healing import heal
    from ..model.io import load_checkpoint
    from ..engine import generate
    from ..prompt_format import chat_prompt, require_chat_format
    from ..sampling import HUMANEVAL_STOP, SamplingParams

    prompt = read_prompt(args)
    if args.system is not None and not args.chat:
        raise UserError("--system is the system message of a chat: use it with --chat")
    stops = tuple(unescape(s) for s in args.stop) + (HUMANEVAL_STOP if args.humaneval_stops else ())
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, n=args.n, seed=args.seed, stop=stops,
                            speculative_tokens=args.speculative)
    if args.stream and args.n > 1:
        raise UserError("--stream prints one sample as it is generated; use --n 1 (or drop --stream)")
    model, tokenizer = load_checkpoint(args.model, device=args.device, dtype=getattr(torch, DTYPES[args.dtype]))
    if args.chat:
        fmt = require_chat_format(tokenizer)
        messages = ([{"role": "system", "content": args.system}] if args.system is not None else []) + [
            {"role": "user", "content": prompt}]
        ids = chat_prompt(tokenizer, fmt, messages)
        params = replace(params, stop_token_ids=(fmt.im_end,))
        prompt_ids = ids  # the prompt ends with the template's own tokens: nothing to heal
    else:
        ids = tokenizer.encode(prompt)
        prompt_ids = heal(tokenizer, ids) if args.token_healing else ids

    def on_token(_prompt_index: int, _sample_index: int, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    start = time.perf_counter()
    samples = generate(model, tokenizer, [prompt_ids], params, on_token=on_token if args.stream else None,
                       compile=args.compile)[0]
    seconds = time.perf_counter() - start
    if args.stream:
        sys.stdout.write("\n")
    else:
        for j, c in enumerate(samples):
            if len(samples) > 1:
                print(f"===== sample {j} ({c.finish_reason}) =====")
            print(c.text)
    n_tokens = sum(len(c.token_ids) for c in samples)
    reasons = ", ".join(sorted({c.finish_reason for c in samples}))
    summary = f"{n_tokens} tokens in {seconds:.2f}s ({n_tokens / max(seconds, 1e-9):.1f} tok/s), finish: {reasons}"
    if args.speculative:
        passes = sum(c.speculation.passes for c in samples)
        accepted = sum(c.speculation.accepted for c in samples)
        summary += f", {accepted} drafted tokens accepted in {passes} verify passes"
    print(summary, file=sys.stderr)
    short = [c for c in samples if c.finish_reason == "length" and len(c.token_ids) < args.max_new_tokens]
    if short:
        print(f"stopped after {len(short[0].token_ids)} new tokens, before --max-new-tokens {args.max_new_tokens}: the "
              f"prompt ({len(ids)} tokens) and the completion filled the model's context of "
              f"{model.config.block_size} tokens", file=sys.stderr)
    return 0
