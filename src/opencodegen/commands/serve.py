"""`ocg serve --model DIR`: the OpenAI-compatible HTTP server (completions with FIM, llama.cpp /infill, multi-turn
synthesis sessions, the playground page) with continuous batching. Binds to 127.0.0.1 unless told otherwise. It runs
no code unless started with --allow-code-execution (the sessions' Run, in the sandbox), which on an address other than
loopback also needs --api-key: then every API request needs `Authorization: Bearer KEY`."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
from pathlib import Path

from ..device import device_arg
from ..errors import UserError
from .generate import DTYPES
from .options import add_compile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="checkpoint or HuggingFace model directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: %(default)s)")
    parser.add_argument("--model-name", help="the name clients ask for (default: the directory's name)")
    parser.add_argument("--slots", type=int, default=16, help="sequences decoded together in one batch")
    parser.add_argument("--queue", type=int, default=64, help="requests that may wait for a slot before 503")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a request may take in all")
    parser.add_argument("--max-context", type=int, default=None,
                        help="positions per slot (default: the model's block_size); bounds the KV-cache memory")
    parser.add_argument("--prefix-cache-mb", type=float, default=None,
                        help="memory for the keys and values of earlier prompts, so a prompt that starts like one "
                             "before it prefills only the rest (default: 512; 0 disables)")
    parser.add_argument("--prefill-chunk", type=int, default=None,
                        help="prompts prefill in chunks of this many tokens on a grid from position 0, which is also "
                             "the prefix cache's block (default: 128). Smaller reuses more of an edited prompt, but "
                             "prefills a cold prompt more slowly")
    parser.add_argument("--prefill-budget", type=int, default=None,
                        help="prompt tokens prefilled between two decode steps (default: 512): running streams wait "
                             "at most this long for their next token while a long prompt prefills; larger admits "
                             "queued prompts sooner")
    parser.add_argument("--speculative", type=int, default=0, metavar="K",
                        help="speculative decoding for requests that do not set speculative_tokens: draft up to K "
                             "tokens per step by prompt lookup and verify them in one forward pass; same output, "
                             "fewer passes. 0 (default) is off")
    add_compile(parser, "the first requests at one and at several rows wait for it")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core); on a machine shared with other "
                             "busy processes fewer threads can be much faster")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="weights and compute dtype (default: %(default)s)")
    parser.add_argument("--device", default="cpu", type=device_arg,
                        help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")
    parser.add_argument("--allow-code-execution", action="store_true",
                        help="let /v1/synth/sessions/{id}/run (the playground's Run) execute programs in the sandbox; "
                             "on an address other than loopback this needs --api-key")
    parser.add_argument("--api-key", default=os.environ.get("OCG_API_KEY"),
                        help="require `Authorization: Bearer KEY` on every API request (default: $OCG_API_KEY)")
    parser.add_argument("--unsafe-no-isolation", action="store_true",
                        help="with --allow-code-execution: run programs even where the sandbox cannot isolate them "
                             "(no root and no user namespaces)")


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from ..model.io import load_checkpoint
    from ..progress import log
    from ..serve.app import create_app

    if args.slots < 1 or args.queue < 1 or args.timeout <= 0:
        raise UserError(f"--slots {args.slots} and --queue {args.queue} must be >= 1, --timeout {args.timeout} > 0")
    if args.max_context is not None and args.max_context < 2:
        raise UserError(f"--max-context {args.max_context} must be >= 2")
    if args.prefix_cache_mb is not None and not args.prefix_cache_mb >= 0:
        raise UserError(f"--prefix-cache-mb {args.prefix_cache_mb} must be >= 0 (0 disables the prefix cache)")
    for flag in ("prefill_chunk", "prefill_budget"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must be >= 1")
    if args.allow_code_execution and not args.api_key and not is_loopback(args.host):
        raise UserError(f"--allow-code-execution on {args.host} (not a loopback address) lets anyone who reaches the "
                        "port run code here: also give --api-key KEY (or set OCG_API_KEY)")
    if args.api_key is not None and not args.api_key.strip():
        raise UserError("--api-key is empty")
    if args.speculative < 0:
        raise UserError(f"--speculative {args.speculative} must be >= 0 (0 is off)")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads} must be >= 1")
        torch.set_num_threads(args.threads)
    sock = bind(args.host, args.port)  # before the model loads: a busy port is known at once, and it stays ours
    with sock:
        model, tokenizer = load_checkpoint(args.model, device=args.device, dtype=getattr(torch, DTYPES[args.dtype]))
        name = args.model_name or args.model.resolve().name
        app = create_app(model, tokenizer, model_name=name, slots=args.slots, queue_size=args.queue,
                         timeout=args.timeout, max_len=args.max_context, allow_code_execution=args.allow_code_execution,
                         api_key=args.api_key, allow_unsafe=args.unsafe_no_isolation,
                         speculative_tokens=args.speculative, compile=args.compile,
                         **{flag: getattr(args, flag) for flag in ("prefix_cache_mb", "prefill_chunk", "prefill_budget")
                            if getattr(args, flag) is not None})  # unset flags keep create_app's defaults
        log(f"serving {name!r} on http://{args.host}:{args.port} (OpenAI base URL http://{args.host}:{args.port}/v1); "
            f"code execution {'on (sandboxed)' if args.allow_code_execution else 'off'}, "
            f"API key {'required' if args.api_key else 'not required'}")
        uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])
    return 0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one clear error when the port is taken or the address is not this
    machine's (uvicorn would report either only after the server said it was serving)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address this machine can listen on ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait TIME_WAIT
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (another server?); stop it or choose another "
                            "with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock
