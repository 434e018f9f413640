"""Likelihood measures: bits per byte on held-out code, and the CodeGen paper's prompt-perplexity analyses
(HumanEval prompts of problems passed vs failed; MTPB prompts given as one turn vs spread over several).

Bits per byte = total cross-entropy of the tokens (in bits) / UTF-8 bytes of the text they decode to, so models with
different tokenizers (and `xz -9`, see compression.py) are on one scale. Every document starts from the end-of-text
token, as in training, so its first token is scored too. A document longer than the context is scored in windows of
the context that start `stride` tokens apart, each scoring only the tokens the windows before it did not. The default
stride (context - 1) gives disjoint windows (each sees only itself: an upper bound, as nanoGPT and lm-eval-harness
score); a smaller stride gives every token at least context - stride tokens of context, at context / stride times the
compute (transformers' perplexity guide)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import UserError
from ..progress import log, progress_task
from .compression import xz_bits_per_byte
from .report import plot_bars, write_run

LN2 = math.log(2)


def _score_windows(model, windows: list[list[int]], first_scored: list[int], batch_size: int
                   ) -> list[tuple[float, int]]:
    """For each window of token ids, the summed NLL (nats) of tokens[first_scored:] and how many there are."""
    import torch  # here: read_text_files serves `ocg tokenizer train`, which must not wait for torch
    import torch.nn.functional as F
    device = next(model.parameters()).device
    out: list[tuple[float, int]] = [(0.0, 0)] * len(windows)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))  # similar lengths together: less padding
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            T = max(len(windows[i]) for i in chunk)
            idx = torch.zeros(len(chunk), T, dtype=torch.long)
            mask = torch.zeros(len(chunk), T - 1, dtype=torch.bool)
            for row, i in enumerate(chunk):
                ids = windows[i]
                idx[row, : len(ids)] = torch.tensor(ids)
                mask[row, max(first_scored[i], 1) - 1 : len(ids) - 1] = True  # target t is predicted at t-1
            logits = model(idx.to(device)).float()  # (B, T, V)
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), idx[:, 1:].to(device), reduction="none").cpu()
            for row, i in enumerate(chunk):
                m = mask[row]
                out[i] = (float(nll[row][m].sum()), int(m.sum()))
    return out


def _windows(ids: list[int], first_scored: int, context: int, stride: int | None = None
             ) -> tuple[list[list[int]], list[int]]:
    """Windows of at most `context` tokens starting `stride` apart (default context - 1: consecutive windows share
    one token) and, for each, the index of its first scored token: each window scores the tokens after the previous
    window's end, so every token from `first_scored` on is predicted exactly once."""
    stride = context - 1 if stride is None else stride
    if not 1 <= stride < context:
        raise UserError(f"the evaluation stride must be between 1 and the context - 1 ({context - 1}), not {stride}")
    if len(ids) <= context:
        return [ids], [first_scored]
    windows, starts, begin, scored_to = [], [], 0, first_scored
    while scored_to < len(ids):
        window = ids[begin:begin + context]
        windows.append(window)
        starts.append(max(scored_to - begin, 1))
        scored_to = begin + len(window)
        begin += stride
    return windows, starts


def sequence_nll(model, sequences: Sequence[list[int]], first_scored: Sequence[int], batch_size: int = 8,
                 stride: int | None = None) -> list[tuple[float, int]]:
    """(sum of NLL in nats, token count) of tokens[first_scored:] of each sequence, given the tokens before them."""
    context = model.config.block_size
    windows, starts, owner = [], [], []
    for i, (ids, first) in enumerate(zip(sequences, first_scored)):
        w, s = _windows(list(ids), first, context, stride)
        windows += w
        starts += s
        owner += [i] * len(w)
    totals = [[0.0, 0] for _ in sequences]
    for i, (nats, count) in zip(owner, _score_windows(model, windows, starts, batch_size)):
        totals[i][0] += nats
        totals[i][1] += count
    return [(t[0], t[1]) for t in totals]


def _with_bos(tokenizer, ids: list[int]) -> tuple[list[int], int]:
    eos = getattr(tokenizer, "eos_id", None)
    return ([eos] + ids, 1) if eos is not None else (ids, 1)


def bits_per_byte(model, tokenizer, documents: Iterable[str] | Iterable[list[int]], batch_size: int = 8,
                  progress: str | None = "bits per byte", stride: int | None = None) -> dict:
    """Bits per byte over documents given as text or as token ids (a tokenized held-out split). "per_document"
    holds (nats, tokens, bytes) of each non-empty document, in order."""
    seqs, firsts, sizes = [], [], []
    for doc in documents:
        if isinstance(doc, str):
            ids, text = tokenizer.encode(doc), doc
        else:
            eos = getattr(tokenizer, "eos_id", None)
            ids = [int(t) for t in doc if t != eos]
            text = tokenizer.decode(ids)
        if not ids:
            continue
        s, f = _with_bos(tokenizer, ids)
        seqs.append(s)
        firsts.append(f)
        sizes.append(len(text.encode("utf-8")))
    if not seqs or sum(sizes) == 0:
        raise UserError("no text to measure bits per byte on")
    scores: list[tuple[float, int]] = []
    chunk = max(1, batch_size * 4)
    if progress:
        with progress_task(progress, total=len(seqs), unit="doc") as task:
            for start in range(0, len(seqs), chunk):
                scores += sequence_nll(model, seqs[start:start + chunk], firsts[start:start + chunk], batch_size,
                                       stride)
                task.advance(len(seqs[start:start + chunk]))
    else:
        scores = sequence_nll(model, seqs, firsts, batch_size, stride)
    nats, tokens, n_bytes = sum(n for n, _ in scores), sum(c for _, c in scores), sum(sizes)
    return {"bits_per_byte": nats / LN2 / n_bytes, "bits_per_token": nats / LN2 / tokens,
            "nats_per_token": nats / tokens, "tokens": int(tokens), "bytes": n_bytes, "documents": len(seqs),
            "per_document": [(n, c, b) for (n, c), b in zip(scores, sizes)]}


def conditional_perplexity(model, tokenizer, contexts: Sequence[str], targets: Sequence[str], batch_size: int = 8
                           ) -> list[float]:
    """exp(mean NLL per token) of each target given its context. Context and target are encoded separately and
    joined as ids, so the target's tokens are exactly those of the target text."""
    seqs, firsts = [], []
    for context, target in zip(contexts, targets):
        ctx, _ = _with_bos(tokenizer, tokenizer.encode(context))
        tgt = tokenizer.encode(target)
        if not tgt:
            raise UserError(f"empty target text to measure perplexity on (context {context[:40]!r})")
        seqs.append(ctx + tgt)
        firsts.append(len(ctx))
    return [math.exp(n / c) for n, c in sequence_nll(model, seqs, firsts, batch_size)]


def humaneval_prompt_perplexity(model, tokenizer, problems: dict[str, dict], per_task: dict[str, dict]) -> dict:
    """Mean prompt perplexity of problems with at least one passing sample vs none (the paper's comparison)."""
    tasks = [t for t in per_task if t in problems]
    ppl = dict(zip(tasks, conditional_perplexity(model, tokenizer, [""] * len(tasks),
                                                 [problems[t]["prompt"] for t in tasks])))
    passed = [ppl[t] for t in tasks if per_task[t]["correct"] > 0]
    failed = [ppl[t] for t in tasks if per_task[t]["correct"] == 0]
    return {"passed": {"mean_ppl": float(np.mean(passed)) if passed else None, "tasks": len(passed)},
            "failed": {"mean_ppl": float(np.mean(failed)) if failed else None, "tasks": len(failed)},
            "per_task": ppl}


def mtpb_prompt_perplexity(model, tokenizer, problems, histories: dict[tuple[int, int], list[str]]) -> dict:
    """Mean prompt perplexity with the instructions given in one turn vs spread over turns.

    Single-turn: all turn prompts together, after the preamble. Multi-turn: each turn prompt after the history
    (preamble + previous prompts + the code written for them: `histories[(problem id, case)]`, e.g. the model's
    own completions or the reference solution), averaged over turns."""
    from .mtpb import PREAMBLE, multi_turn_program, single_turn_prompt, turn_prompt  # here: mtpb imports this module
    single_ctx, single_tgt, multi_ctx, multi_tgt, multi_owner = [], [], [], [], []
    for p in problems:
        for case in range(len(p.inputs)):
            if (p.id, case) not in histories:
                continue
            single_ctx.append(PREAMBLE)
            single_tgt.append(single_turn_prompt(p, case)[len(PREAMBLE):])
            code = histories[(p.id, case)]
            for turn, text in enumerate(p.turns(case)):
                multi_ctx.append(multi_turn_program(p, case, code[:turn]))
                multi_tgt.append(turn_prompt(text))
                multi_owner.append((p.id, case))
    if not single_tgt:
        raise UserError("no MTPB histories to measure prompt perplexity on")
    single = conditional_perplexity(model, tokenizer, single_ctx, single_tgt)
    per_turn = conditional_perplexity(model, tokenizer, multi_ctx, multi_tgt)
    by_case: dict = {}
    for owner, v in zip(multi_owner, per_turn):
        by_case.setdefault(owner, []).append(v)
    multi = [float(np.mean(v)) for v in by_case.values()]
    return {"single_turn_mean_ppl": float(np.mean(single)), "multi_turn_mean_ppl": float(np.mean(multi)),
            "cases": len(single)}


def evaluate_bpb(out: Path, model, tokenizer, *, tokens_dir: str | Path | None = None,
                 files_dir: str | Path | None = None, suffixes: Sequence[str] = (".py",), limit: int | None = None,
                 batch_size: int = 8, stride: int | None = None) -> dict:
    """The whole `ocg eval bpb`: the model's bits per byte on a held-out split or a directory of files, beside
    `xz -9` on the same text in the same run; `stride` as in `_windows`."""
    if (tokens_dir is None) == (files_dir is None):
        raise UserError("give exactly one of --tokens DIR (a tokenized split) or --files DIR")
    if tokens_dir is not None:
        docs: list = read_token_split(tokens_dir)[:limit] if limit else read_token_split(tokens_dir)
        names = [f"{Path(tokens_dir).name}#{i}" for i in range(len(docs))]
        texts = [tokenizer.decode([t for t in d if t != getattr(tokenizer, "eos_id", None)]) for d in docs]
    else:
        pairs = read_text_files(files_dir, suffixes)
        pairs = pairs[:limit] if limit else pairs
        names, docs = [n for n, _ in pairs], [t for _, t in pairs]
        texts = docs
    context = model.config.block_size
    measured = bits_per_byte(model, tokenizer, docs, batch_size=batch_size, stride=stride)
    kept = [(name, text) for name, text in zip(names, texts) if text]
    xz = xz_bits_per_byte([t for _, t in kept])
    per_doc = [{"document": name, "bits_per_byte": n / LN2 / b if b else None, "tokens": c, "bytes": b}
               for (name, _), (n, c, b) in zip(kept, measured["per_document"])]
    summary = {"benchmark": "bpb", "source": str(tokens_dir or files_dir),
               **{k: v for k, v in measured.items() if k != "per_document"}, "context": context,
               "stride": stride or context - 1, "xz_bits_per_byte": xz,
               "beats_xz": measured["bits_per_byte"] < xz}
    report = "\n".join([
        "# Bits per byte", "", f"Source: `{summary['source']}` ({summary['documents']} documents, "
        f"{summary['bytes']} bytes, {summary['tokens']} tokens).", "",
        "| measure | bits per byte |", "|---|---|", f"| model | {summary['bits_per_byte']:.4f} |",
        f"| xz -9 (same text, one stream) | {xz:.4f} |", "",
        f"Bits per token {summary['bits_per_token']:.4f}. Every document is scored from the end-of-text token; "
        f"documents longer than the context ({context} tokens) are scored in windows {summary['stride']} tokens "
        "apart."]) + "\n"
    write_run(out, samples=[{"document": d["document"], "bytes": d["bytes"], "tokens": d["tokens"]} for d in per_doc],
              results=per_doc, summary=summary, report=report)
    plot_bars(out / "bits_per_byte.png", {"bits per byte": {"model": summary["bits_per_byte"], "xz -9": xz}},
              "Bits per byte (lower is better)", "bits per byte", percent=False)
    return summary


# ------------------------------------------------------------------------------------------------ inputs
def read_token_split(directory: str | Path) -> list[list[int]]:
    """Documents of a tokenized split (datatrove DocumentTokenizer shards: *.ds little-endian ids, *.ds.index uint64
    cumulative document ends)."""
    directory = Path(directory)
    shards = sorted(directory.glob("*.ds"))
    if not shards:
        raise UserError(f"{directory}: no *.ds token shards")
    docs = []
    for shard in shards:
        index = shard.with_name(shard.name + ".index")
        if not index.is_file():
            raise UserError(f"{shard}: no {index.name} beside it")
        ends = np.fromfile(index, dtype="<u8")
        size = shard.stat().st_size
        if len(ends) == 0:
            continue
        width = size // int(ends[-1]) if ends[-1] else 0
        if width not in (2, 4) or width * int(ends[-1]) != size:
            raise UserError(f"{shard}: {size} bytes do not hold {int(ends[-1])} uint16 or uint32 tokens")
        tokens = np.fromfile(shard, dtype="<u2" if width == 2 else "<u4")
        begin = 0
        for end in ends:
            docs.append(tokens[begin:int(end)].tolist())
            begin = int(end)
    return docs


def read_text_files(directory: str | Path, suffixes: Sequence[str] = (".py",)) -> list[tuple[str, str]]:
    """(relative path, text) of every file with one of the suffixes (all files if none); others are skipped with a
    note."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    texts = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and (not suffixes or path.suffix in suffixes):
            try:
                texts.append((str(path.relative_to(directory)), path.read_text(encoding="utf-8")))
            except (UnicodeDecodeError, OSError) as e:
                log(f"skipped {path} ({type(e).__name__}: not readable UTF-8 text)")
    if not texts:
        raise UserError(f"{directory}: no readable {'/'.join(suffixes) or ''} files")
    return texts
