"""Serving: `ocg serve` in a subprocess on loopback, tiny-30m preset (random weights, a BPE trained here on Python's
standard library), driven by asyncio HTTP clients streaming /v1/completions.

1. Latency: a 64-token completion (greedy) from a ~1000-token prompt (distinct stdlib files, so nothing is shared
   between requests), with 1, 4 and 16 concurrent clients: time to first token and full latency, p50 and p95.
2. Throughput: the same 16 requests served one at a time (the baseline: concurrency 1, same server, same run)
   against 16 at once (continuous batching). Goal: >= 3x at 16 clients.
3. Load: 500 requests from 16 concurrent clients, 10% of requests (seeded) disconnect after their first chunks.
   Zero 5xx, every slot freed at the end (/health), server RSS after warm-up vs at the end.
4. Editor: 16 clients, each completing again and again at a cursor that moves forward through its own ~1000-token
   file (the prompt is the file up to the cursor, so each request shares all but the last few dozen tokens with
   that client's previous one). The same requests one at a time without the prefix cache (the baseline), 16 clients
   without it, and both again with it (`--prefix-cache-mb`, each on a fresh server); the greedy texts must agree.

Rows 1-3 run on a server started with --prefix-cache-mb 0 (rows 1-2 repeat their prompts, which the cache would
answer); each editor row runs on a fresh server, with or without the cache (`--editor-requests 0` skips them).

    python benchmarks/bench_serve.py [--requests 500] [--prompt-tokens 1000] [--load-prompt-tokens 200]
    python benchmarks/bench_serve.py --quick   # every row at toy sizes, a couple of minutes; prints, writes nothing
    python benchmarks/bench_serve.py --big     # the Qwen2.5-Coder-0.5B shape instead (fewer requests), its own file
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import httpx
import torch

from opencodegen.model.config import ModelConfig
from opencodegen.model.io import save_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.prefix_cache import DEFAULT_BLOCK
from opencodegen.tokenizer import train_tokenizer

RESULTS = Path(__file__).parent / "results"
SHORT_PROMPT = 64
EDITOR_CLIENTS = 16


def stdlib_texts(limit_bytes: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(errors="replace")
        texts.append(text)
        total += len(text)
        if total > limit_bytes:
            break
    return texts


def write_checkpoint(directory: Path, texts: list[str], preset: str, block_size: int) -> tuple[Path, object, int]:
    tok = train_tokenizer(texts, vocab_size=8192)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset(preset, block_size=block_size, eos_token_id=tok.eos_id))
    if model.config.vocab_size > tok.vocab_size:
        # The 0.5B shape keeps Qwen's 151936-wide (tied) embedding, so the output matmul costs what the real one
        # does; rows past our tokenizer's ids are zeroed, so their logits are 0 and greedy picks decodable tokens.
        with torch.no_grad():
            model.wte.weight[tok.vocab_size:] = 0
    return save_checkpoint(model, tok, directory), tok, model.num_params()


def prompts_of(tok, texts: list[str], n: int, length: int) -> list[list[int]]:
    """n distinct prompts of exactly `length` token ids, cut from different files (or parts of them)."""
    out = []
    for text in texts:
        ids = tok.encode(text)
        for start in range(0, len(ids) - length, length):
            out.append(ids[start:start + length])
            if len(out) == n:
                return out
    raise SystemExit(f"not enough text for {n} prompts of {length} tokens")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def one_request(client: httpx.AsyncClient, prompt: list[int], max_tokens: int,
                      disconnect_after: int | None = None) -> dict:
    """Streams one completion. Returns status, ttft, latency, tokens and cached tokens (from usage), text, or
    disconnected=True."""
    body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    ttft, tokens, cached, chunks, text = None, 0, 0, 0, []
    async with client.stream("POST", "/v1/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code, "body": r.text[:200]}
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                return {"status": 500, "body": line[:200]}
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
                cached = event["usage"]["prompt_tokens_details"]["cached_tokens"]
            if event["choices"] and event["choices"][0]["text"]:
                chunks += 1
                text.append(event["choices"][0]["text"])
                if ttft is None:
                    ttft = time.perf_counter() - start
            if disconnect_after is not None and chunks >= disconnect_after:
                return {"status": 200, "disconnected": True}  # leaving the block closes the connection
    return {"status": 200, "ttft": ttft, "latency": time.perf_counter() - start, "tokens": tokens, "cached": cached,
            "text": "".join(text)}


async def run_clients(url: str, prompts: list[list[int]], concurrency: int, max_tokens: int,
                      disconnect: set[int] = frozenset()) -> tuple[list[dict], float]:
    """`concurrency` clients take requests from one list until it is empty. Returns results and wall seconds."""
    queue = list(enumerate(prompts))[::-1]
    results: list[dict] = [None] * len(prompts)
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=url, timeout=3600, limits=limits) as client:
        async def worker():
            while queue:
                i, prompt = queue.pop()
                results[i] = await one_request(client, prompt, max_tokens, 2 if i in disconnect else None)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results, time.perf_counter() - start


async def run_editors(url: str, sessions: list[list[list[int]]], max_tokens: int,
                      together: bool) -> tuple[list[list[dict]], float]:
    """Each session is one editor's prompts in order; an editor sends its next request when the last one is
    answered. together: all editors at once; otherwise one request at a time, the editors taking turns."""
    results: list[list[dict]] = [[None] * len(s) for s in sessions]
    async with httpx.AsyncClient(base_url=url, timeout=3600,
                                 limits=httpx.Limits(max_connections=len(sessions) + 2)) as client:
        async def editor(e: int):
            for i, prompt in enumerate(sessions[e]):
                results[e][i] = await one_request(client, prompt, max_tokens)

        start = time.perf_counter()
        if together:
            await asyncio.gather(*(editor(e) for e in range(len(sessions))))
        else:
            for i in range(max(map(len, sessions))):
                for e, prompts in enumerate(sessions):
                    if i < len(prompts):
                        results[e][i] = await one_request(client, prompts[i], max_tokens)
        return results, time.perf_counter() - start


def summarize(results: list[dict], seconds: float) -> dict:
    done = [r for r in results if r["status"] == 200 and not r.get("disconnected")]
    tokens = sum(r["tokens"] for r in done)
    return {
        "requests": len(results), "seconds": round(seconds, 2), "completion_tokens": tokens,
        "throughput_tok_s": round(tokens / seconds, 1), "requests_per_s": round(len(done) / seconds, 2),
        "ttft_p50_s": round(percentile([r["ttft"] for r in done], 0.5), 3),
        "ttft_p95_s": round(percentile([r["ttft"] for r in done], 0.95), 3),
        "latency_p50_s": round(percentile([r["latency"] for r in done], 0.5), 3),
        "latency_p95_s": round(percentile([r["latency"] for r in done], 0.95), 3),
    }


def check_ok(what: str, results: list[dict]) -> None:
    bad = [r for r in results if r["status"] != 200]
    if bad:
        raise SystemExit(f"{what}: failed requests {bad[:3]}")


def serve_all(url: str, prompts: list[list[int]], concurrency: int, new_tokens: int) -> dict:
    results, seconds = asyncio.run(run_clients(url, prompts, concurrency, new_tokens))
    check_ok(f"concurrency {concurrency}", results)
    return summarize(results, seconds)


class Server:
    """`ocg serve` in a subprocess, stopped with SIGTERM on leaving."""

    def __init__(self, ckpt: Path, args, max_context: int, prefix_cache_mb: float):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opencodegen.cli", "serve", "--model", str(ckpt), "--host", "127.0.0.1", "--port",
             str(port), "--model-name", "bench", "--slots", str(args.slots), "--queue", "256", "--timeout", "3600",
             "--max-context", str(max_context), "--prefix-cache-mb", str(prefix_cache_mb),
             *(["--threads", str(args.threads)] if args.threads else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"

    def health(self) -> dict:
        return httpx.get(self.url + "/health").json()

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit("ocg serve did not start")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


SIZES = {  # what --quick and --big change; the rest are the defaults of the flags
    "quick": dict(prompt_tokens=128, new_tokens=16, requests=32, load_prompt_tokens=64, editor_requests=2,
                  editor_step=16, concurrency=(1, 4, 16)),
    # The editor rows would take ~30 min more at this size on 2 cores: skipped.
    "big": dict(editor_requests=0, concurrency=(1, 16), latency_requests=8, requests=0),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--requests", type=int, default=500, help="load test requests (0 skips the load test)")
    ap.add_argument("--load-prompt-tokens", type=int, default=200, help="prompt length in the load test")
    ap.add_argument("--editor-requests", type=int, default=8, help="requests per editor client (0: no editor rows)")
    ap.add_argument("--editor-step", type=int, default=32, help="tokens the cursor moves between requests")
    ap.add_argument("--prefix-cache-mb", type=float, default=512, help="the prefix cache of the cached editor row")
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="the server's torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="toy sizes to check the script end to end; writes nothing")
    ap.add_argument("--big", action="store_true",
                    help="the Qwen2.5-Coder-0.5B shape (random weights) with fewer requests; writes serve_0.5b.json")
    args = ap.parse_args()
    args.concurrency, args.latency_requests = (1, 4, 16), 16
    for name in ("big", "quick"):  # --big --quick: the big model at toy sizes
        if getattr(args, name):
            vars(args).update(SIZES[name])
    preset = "qwen2.5-coder-0.5B" if args.big else "tiny-30m"

    texts = stdlib_texts(6_000_000)
    max_context = args.prompt_tokens + args.new_tokens
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, tok, params = write_checkpoint(Path(tmp) / preset, texts[:200], preset, max_context)
        result = measure(args, tok, texts, ckpt, max_context)
    result = {"benchmark": "ocg serve: streamed /v1/completions over loopback",
              "model": f"{preset} preset, random weights, BPE (8192) trained on the Python stdlib"
                       + (" (embedding rows past 8192 zeroed)" if args.big else ""),
              "params": params, **result}
    if args.quick:
        print(json.dumps(result, indent=2))
    else:
        out = RESULTS / ("serve_0.5b.json" if args.big else "serve.json")
        out.parent.mkdir(exist_ok=True)
        tmp_out = out.with_suffix(".json.tmp")
        tmp_out.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp_out, out)
    print_table(result)


def measure(args, tok, texts, ckpt: Path, max_context: int) -> dict:
    n = args.latency_requests
    prompts = prompts_of(tok, texts, n + 4, args.prompt_tokens)
    result = {
        "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "greedy": True, "slots": args.slots,
        "prefill_chunk": DEFAULT_BLOCK, "torch": torch.__version__, "server_threads": args.threads or torch.get_num_threads(),
        "cores": os.cpu_count(), "machine": platform.machine(), "load_average_at_start": os.getloadavg()[0],
        "baseline": f"the same {n} requests one at a time (concurrency 1) through the same server, same run",
        "goal": f"throughput at {max(args.concurrency)} clients >= 3x the one-at-a-time baseline",
    }
    with Server(ckpt, args, max_context, prefix_cache_mb=0) as server:
        # Warm-up (allocator, first-call kernels), not measured.
        asyncio.run(run_clients(server.url, prompts[n:], 4, 8))
        latency = {c: serve_all(server.url, prompts[:n], c, args.new_tokens) for c in args.concurrency}
        top = max(args.concurrency)
        speedup = latency[top]["throughput_tok_s"] / latency[1]["throughput_tok_s"]
        # Prefill is compute-bound and batching does not shrink it; only decode steps are shared. Even if decode
        # cost nothing at 16 clients, 16 requests would still take 16 prefills, so one-at-a-time time / prefill time
        # bounds the speedup (the prefill is measured as the time to first token of a lone request).
        ceiling = latency[1]["latency_p50_s"] / latency[1]["ttft_p50_s"]
        result.update({"latency": {str(c): v for c, v in latency.items()},
                       f"speedup_{top}_vs_1": round(speedup, 2), "speedup_ceiling_prefill_bound": round(ceiling, 2)})
        # The same comparison where decode dominates, as in editor completions with a short context.
        short = prompts_of(tok, texts, n, SHORT_PROMPT)
        short_rows = {c: serve_all(server.url, short, c, args.new_tokens) for c in (1, top)}
        result["short_prompt"] = {
            "prompt_tokens": SHORT_PROMPT, "rows": {str(c): v for c, v in short_rows.items()},
            f"speedup_{top}_vs_1": round(short_rows[top]["throughput_tok_s"] / short_rows[1]["throughput_tok_s"], 2)}
        if args.requests:
            result["load_test"] = load_test(args, tok, texts, server)
    if args.editor_requests:
        result["editor"] = editor_rows(args, tok, texts, ckpt, max_context, prompts[n:])
    return result


def editor_rows(args, tok, texts, ckpt: Path, max_context: int, warmup: list[list[int]]) -> dict:
    """Part 4: the editor workload one at a time and with 16 clients, each on a fresh server warmed up on unrelated
    prompts (`warmup`), without the prefix cache and with it."""
    editor_files = prompts_of(tok, texts[len(texts) // 2:], EDITOR_CLIENTS, args.prompt_tokens)
    first = args.prompt_tokens - (args.editor_requests - 1) * args.editor_step
    if first < 1:
        raise SystemExit("--editor-requests x --editor-step must leave a prompt shorter than --prompt-tokens")
    cursors = [first + i * args.editor_step for i in range(args.editor_requests)]
    sessions = [[f[:c] for c in cursors] for f in editor_files]
    editor, cache_stats = {}, None
    for name, together, cache_mb in (("one_at_a_time", False, 0), (f"{EDITOR_CLIENTS}_clients_no_cache", True, 0),
                                     ("one_at_a_time_prefix_cache", False, args.prefix_cache_mb),
                                     (f"{EDITOR_CLIENTS}_clients_prefix_cache", True, args.prefix_cache_mb)):
        with Server(ckpt, args, max_context, prefix_cache_mb=cache_mb) as server:  # an empty cache
            asyncio.run(run_clients(server.url, warmup, 4, 8))  # unrelated prompts: nothing to reuse
            editor[name] = editor_row(server, sessions, args.new_tokens, together=together)
            cache_stats = server.health()["prefix_cache"]
    texts_of = {name: row.pop("texts") for name, row in editor.items()}
    baseline = texts_of["one_at_a_time"]
    base_tok_s = editor["one_at_a_time"]["throughput_tok_s"]
    return {
        "clients": EDITOR_CLIENTS, "requests_per_client": args.editor_requests, "cursor_step_tokens": args.editor_step,
        "prompt_tokens_per_request": [cursors[0], cursors[-1]], "prefix_cache_mb": args.prefix_cache_mb,
        "baseline": "the same requests one at a time (editors taking turns), no prefix cache",
        "rows": editor,
        "speedup_vs_one_at_a_time": {name: round(row["throughput_tok_s"] / base_tok_s, 2)
                                     for name, row in editor.items()},
        "prefix_cache_speedup_at_16_clients": round(
            editor[f"{EDITOR_CLIENTS}_clients_prefix_cache"]["throughput_tok_s"]
            / editor[f"{EDITOR_CLIENTS}_clients_no_cache"]["throughput_tok_s"], 2),
        # Greedy: batching and the cache change no text (the cache is bit-exact; batching is exact up to float
        # rounding of batched decode steps, which on a random model almost never flips an argmax).
        "texts_equal_to_baseline": {name: sum(a == b for a, b in zip(t, baseline)) / len(baseline)
                                    for name, t in texts_of.items()},
        "prefix_cache_server_stats": cache_stats,  # after the 16-client row
    }


def editor_row(server: Server, sessions: list[list[list[int]]], new_tokens: int, together: bool) -> dict:
    before = server.health()["prefix_cache"]
    results, seconds = asyncio.run(run_editors(server.url, sessions, new_tokens, together))
    flat = [r for per_editor in results for r in per_editor]
    check_ok("editor", flat)
    after = server.health()["prefix_cache"]
    prompt_tokens = after["prompt_tokens"] - before["prompt_tokens"]
    return {**summarize(flat, seconds), "prompt_tokens": prompt_tokens,
            "cached_prompt_tokens": sum(r["cached"] for r in flat),
            "cached_fraction": round(sum(r["cached"] for r in flat) / prompt_tokens, 3),
            "texts": [r["text"] for r in flat]}


def load_test(args, tok, texts, server: Server) -> dict:
    load_prompts = prompts_of(tok, texts, args.requests, args.load_prompt_tokens)
    rng = random.Random(0)
    disconnect = set(rng.sample(range(args.requests), args.requests // 10))
    warm = 64
    asyncio.run(run_clients(server.url, load_prompts[:warm], 16, args.new_tokens))
    rss_before = rss_kb(server.proc.pid)
    health_before = server.health()
    results, seconds = asyncio.run(run_clients(server.url, load_prompts, 16, args.new_tokens, disconnect))
    time.sleep(1.0)  # the model thread drops disconnected requests at its next step
    health = server.health()
    rss_after = rss_kb(server.proc.pid)
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    return {
        "requests": args.requests, "concurrency": 16, "prompt_tokens": args.load_prompt_tokens,
        "max_tokens": args.new_tokens, "disconnecting_requests": len(disconnect),
        "statuses": statuses, "server_errors_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "seconds": round(seconds, 1),
        "cancelled_by_server": health["cancelled"] - health_before["cancelled"],
        "completed_by_server": health["completed"] - health_before["completed"],
        "slots_active_at_end": health["active_slots"], "waiting_at_end": health["waiting"],
        "server_rss_mb_after_warmup": round(rss_before / 1024, 1), "server_rss_mb_at_end": round(rss_after / 1024, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
    }


def print_table(result: dict) -> None:
    print(f"{'clients':>8} {'ttft p50':>9} {'ttft p95':>9} {'lat p50':>9} {'lat p95':>9} {'tok/s':>8}")
    for c, r in result["latency"].items():
        print(f"{c:>8} {r['ttft_p50_s']:>9.3f} {r['ttft_p95_s']:>9.3f} {r['latency_p50_s']:>9.3f} "
              f"{r['latency_p95_s']:>9.3f} {r['throughput_tok_s']:>8.1f}")
    top = max(result["latency"], key=int)
    print(f"throughput {top} clients vs one at a time: {result[f'speedup_{top}_vs_1']}x (goal >= 3x; prefill-bound "
          f"ceiling {result['speedup_ceiling_prefill_bound']}x)")
    short = result["short_prompt"]
    print(f"with {short['prompt_tokens']}-token prompts: " + ", ".join(
        f"{c} clients {r['throughput_tok_s']} tok/s" for c, r in short["rows"].items())
        + f" -> {short[f'speedup_{top}_vs_1']}x")
    if "load_test" in result:
        load = result["load_test"]
        print(f"load: {load['requests']} requests, statuses {load['statuses']}, 5xx {load['server_errors_5xx']}, "
              f"cancelled {load['cancelled_by_server']}, active slots at end {load['slots_active_at_end']}, "
              f"RSS {load['server_rss_mb_after_warmup']} -> {load['server_rss_mb_at_end']} MB")
    if "editor" not in result:
        return
    editor = result["editor"]
    print(f"editor: {editor['clients']} clients x {editor['requests_per_client']} requests, prompts "
          f"{editor['prompt_tokens_per_request'][0]}..{editor['prompt_tokens_per_request'][1]} tokens")
    for name, r in editor["rows"].items():
        print(f"  {name:>27}: {r['throughput_tok_s']:>7.1f} tok/s ({editor['speedup_vs_one_at_a_time'][name]}x), "
              f"ttft p50 {r['ttft_p50_s']:.3f} s p95 {r['ttft_p95_s']:.3f} s, cached {r['cached_fraction']:.0%} "
              f"of prompt tokens, texts equal to baseline {editor['texts_equal_to_baseline'][name]:.0%}")


if __name__ == "__main__":
    main()
