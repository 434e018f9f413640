"""`ocg exercises build`: candidates from each source -> decontamination -> validation by execution -> a directory.

    OUT/exercises.jsonl     the kept exercises (records.py has the format)
    OUT/stats.json          per source: candidates, kept, rejected per reason, kept fraction, seconds; what each
                            benchmark removed; for self-generation, each round's acceptance rate
    OUT/rejects/<source>.jsonl   every rejected candidate with its reason and detail
Every candidate is either kept or rejected with a reason: `accounted` in stats.json checks it."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..data.report import write_json_atomic
from ..errors import UserError
from ..progress import log, progress_task
from .decontaminate import Benchmarks
from .judge import DEFAULT_TIMEOUT, Judge
from .records import SOURCES, Exercise, write_jsonl_atomic
from .validate import Candidate, Outcome, validate

BATCH = 256  # candidates decontaminated and validated together (one judge batch)
MIN_KEPT_FRACTION = 0.05  # the least share of synthetic candidates a batch is sized for (50% are kept, typically)


@dataclass
class SourceReport:
    candidates: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "kept": self.kept, "rejected": dict(sorted(self.rejected.items())),
                "kept_fraction": round(self.kept / self.candidates, 4) if self.candidates else None,
                "seconds": round(self.seconds, 2),
                "per_minute": round(60 * self.kept / self.seconds, 1) if self.seconds else None, **self.extra}


@dataclass
class Collected:
    """What a build has so far: kept exercises, rejects, counts per source and per benchmark."""
    exercises: list[Exercise] = field(default_factory=list)
    rejects: dict[str, list[dict]] = field(default_factory=dict)
    sources: dict[str, SourceReport] = field(default_factory=dict)
    removed: dict[str, Counter] = field(default_factory=dict)  # benchmark -> rule -> count

    def report(self, source: str) -> SourceReport:
        return self.sources.setdefault(source, SourceReport())


def decontaminate(cands: list[Candidate], benchmarks: Benchmarks, collected: Collected) -> tuple[list[Candidate],
                                                                                             Outcome]:
    """(the clean candidates, an outcome holding the contaminated ones as rejects)."""
    clean, out = [], Outcome()
    for c in cands:
        prompt = c.prompt if c.prompt is not None else f'{c.header}\n    """{c.doc}"""\n'
        m = benchmarks.match(prompt, c.solution, c.entry_point)
        if m is None:
            clean.append(c)
            continue
        out.reject(c, "contaminated", m.detail())
        collected.removed.setdefault(m.benchmark, Counter())[m.rule] += 1
    return clean, out


def _record(source: str, cands: list[Candidate], outcomes: list[Outcome], collected: Collected) -> None:
    rep = collected.report(source)
    rep.candidates += len(cands)
    kept = [e for o in outcomes for e in o.kept]
    rep.kept += len(kept)
    for o in outcomes:
        rep.rejected.update(r["reason"] for r in o.rejected)
        collected.rejects.setdefault(source, []).extend(o.rejected)
    collected.exercises.extend(kept)


def process(source: str, batches: Iterable[list[Candidate]], judge: Judge, benchmarks: Benchmarks,
            collected: Collected, seen_behaviour: dict | None = None, task=None, target: int = 0) -> None:
    """Every candidate of every batch ends kept or rejected; `task` (a progress row) shows the kept exercises, up to
    `target`."""
    for cands in batches:
        t0 = time.perf_counter()
        clean, contaminated = decontaminate(cands, benchmarks, collected)
        outcome = validate(judge, clean, seen_behaviour)
        _record(source, cands, [contaminated, outcome], collected)
        collected.report(source).seconds += time.perf_counter() - t0
        if task is not None:  # the synthetic batch that passes the target is trimmed later: show at most the target
            task.update(completed=min(collected.report(source).kept, target))


def synthetic_batches(n: int, seed: int, collected: Collected, max_candidates: int) -> Iterator[list[Candidate]]:
    """Batches from the seeded stream until n exercises are kept (or max_candidates were tried). The batch that
    passes the target is cut after its n-th kept exercise (by a second look at the stream), so the same seed and n
    always give the same exercises and the counts cover exactly the candidates looked at."""
    from .synthetic import candidates

    stream = candidates(seed)
    tried = 0
    report = collected.report("synthetic")
    while report.kept < n and tried < max_candidates:
        # Ask for what the kept fraction so far says the rest needs (a few spare), not a whole BATCH: with n = 12 a
        # whole batch validated 21 times the candidates kept. Batching changes no exercise, only the work done.
        fraction = max(report.kept / report.candidates if report.candidates else 0.5, MIN_KEPT_FRACTION)
        size = min(BATCH, math.ceil((n - report.kept) / fraction) + 8, max_candidates - tried)
        batch = list(islice(stream, size))
        tried += len(batch)
        yield batch


def trim_synthetic(n: int, collected: Collected) -> None:
    """Drop what the last batch made beyond the n-th kept exercise: the exercises, and the rejects and counts of the
    candidates after it (as if the stream had stopped there)."""
    kept = [e for e in collected.exercises if e.source == "synthetic"]
    if len(kept) <= n:
        return
    cutoff = kept[n - 1].meta["index"]
    rep = collected.report("synthetic")
    index_of = lambda row: row["meta"]["index"]  # noqa: E731
    dropped_rejects = [r for r in collected.rejects.get("synthetic", []) if index_of(r) > cutoff]
    for r in dropped_rejects:
        rep.rejected[r["reason"]] -= 1
        if r["reason"] == "contaminated":
            bench, _, rule = r["detail"].partition(":")
            collected.removed[bench][rule.rsplit("(", 1)[1].rstrip(")")] -= 1
    rep.rejected = +rep.rejected  # drop zero counts
    collected.rejects["synthetic"] = [r for r in collected.rejects.get("synthetic", []) if index_of(r) <= cutoff]
    collected.exercises = [e for e in collected.exercises if e.source != "synthetic" or e.meta["index"] <= cutoff]
    rep.kept = n
    rep.candidates = cutoff + 1


def multi_turn_programs(n: int, seed: int, judge: Judge, benchmarks: Benchmarks, collected: Collected,
                        max_candidates: int) -> None:
    """n multi-turn programs from the seeded stream, each decontaminated (its instructions and code against every
    benchmark) and run; a kept program adds its turn rows (multi_turn.Program.rows) to the exercises."""
    from .multi_turn import SOURCE, programs, validate_programs

    started, rep, stream, seen = time.perf_counter(), collected.report(SOURCE), programs(seed), set()
    with progress_task("multi-turn programs", total=n, unit="prog") as task:
        while rep.kept < n and rep.candidates < max_candidates:
            batch = list(islice(stream, min(BATCH, n - rep.kept, max_candidates - rep.candidates)))
            clean, rejects = [], []
            for p in batch:
                prompt = p.single_turn_prompt()  # every instruction, as the decontaminator reads comments
                m = benchmarks.match(prompt, p.code(), "")
                if m is None:
                    clean.append(p)
                    continue
                rejects.append({"id": p.id, "source": SOURCE, "reason": "contaminated", "detail": m.detail(),
                                "prompt": prompt, "solution": p.code(), "meta": p.meta})
                collected.removed.setdefault(m.benchmark, Counter())[m.rule] += 1
            kept, failed = validate_programs(judge, clean, seen)
            rejects += failed
            rep.candidates += len(batch)
            rep.kept += len(kept)
            rep.rejected.update(r["reason"] for r in rejects)
            collected.rejects.setdefault(SOURCE, []).extend(rejects)
            collected.exercises.extend(row for p in kept for row in p.rows())
            task.update(completed=rep.kept)
    rep.extra["rows"] = sum(e.source == SOURCE for e in collected.exercises)
    rep.seconds = time.perf_counter() - started


@dataclass
class BuildOptions:
    out: Path
    synthetic: int = 0
    multi_turn: int = 0  # programs in the multi-turn synthesis format (each gives one row per turn + one)
    seed: int = 0
    mine_dirs: list[Path] = field(default_factory=list)
    mine_corpora: list[Path] = field(default_factory=list)
    max_body_lines: int = 15
    hypothesis_examples: int = 6
    humaneval: bool = True
    mtpb: bool = True
    benchmark_files: list[str] = field(default_factory=list)
    ngram: int = 10
    workers: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_candidates_factor: int = 20  # synthetic: give up after this many candidates per wanted exercise
    self_gen: dict[str, Any] | None = None  # {"model", "tokenizer", "exercises", "k", "params", "round"}


def build(opts: BuildOptions) -> dict[str, Any]:
    if not (opts.synthetic or opts.multi_turn or opts.mine_dirs or opts.mine_corpora or opts.self_gen):
        raise UserError("nothing to build: give --synthetic N, --multi-turn N, --mine-dir/--mine-corpus, or --self")
    for flag, value in (("--synthetic", opts.synthetic), ("--multi-turn", opts.multi_turn)):
        if value < 0:
            raise UserError(f"{flag} {value}: must be a number >= 0")
    t0 = time.perf_counter()
    benchmarks = Benchmarks(opts.humaneval, opts.mtpb, opts.benchmark_files, opts.ngram)
    collected = Collected()
    with Judge(workers=opts.workers, timeout=opts.timeout) as judge:
        if opts.mine_dirs or opts.mine_corpora:
            from .mine import mine_candidates
            started = time.perf_counter()
            cands, notes = mine_candidates(opts.mine_dirs, opts.mine_corpora, opts.max_body_lines,
                                           opts.hypothesis_examples, opts.seed, collected, opts.workers)
            for note in notes:
                log(f"[yellow]{note}[/yellow]")
            with progress_task("mined exercises", total=len(cands), unit="fn") as task:
                for i in range(0, len(cands), BATCH):
                    before = collected.report("mined").candidates
                    process("mined", [cands[i:i + BATCH]], judge, benchmarks, collected)
                    task.advance(collected.report("mined").candidates - before)
            sft_only_pairs(collected, benchmarks)
            collected.report("mined").seconds = time.perf_counter() - started
        if opts.synthetic:
            with progress_task("synthetic exercises", total=opts.synthetic, unit="ex") as task:
                process("synthetic", synthetic_batches(opts.synthetic, opts.seed, collected,
                                                       opts.max_candidates_factor * opts.synthetic + BATCH),
                        judge, benchmarks, collected, seen_behaviour={}, task=task, target=opts.synthetic)
            trim_synthetic(opts.synthetic, collected)
            if collected.report("synthetic").kept < opts.synthetic:
                log(f"[yellow]synthetic: {collected.report('synthetic').kept} of {opts.synthetic} exercises after "
                    f"{collected.report('synthetic').candidates} candidates (the generator ran out of new "
                    "behaviours)[/yellow]")
        if opts.multi_turn:
            multi_turn_programs(opts.multi_turn, opts.seed, judge, benchmarks, collected,
                                opts.max_candidates_factor * opts.multi_turn + BATCH)
        if opts.self_gen:
            from .self_generate import self_round
            started = time.perf_counter()
            self_round(judge, benchmarks, collected, **opts.self_gen)
            collected.report("self").seconds = time.perf_counter() - started
    stats = write_outputs(opts, collected, benchmarks, time.perf_counter() - t0)
    return stats


def sft_only_pairs(collected: Collected, benchmarks: Benchmarks) -> None:
    """Mined functions rejected only for lack of a runnable test are still prompt/solution pairs: once
    decontaminated like the others, they are kept as SFT-only exercises (tests "", meta.sft_only)."""
    rep = collected.report("mined")
    keep, rest = [], []
    for r in collected.rejects.get("mined", []):
        if r["reason"] in ("no_runnable_call", "no_test_inputs") and r["meta"].get("sft_eligible"):
            m = benchmarks.match(r["prompt"], r["solution"], r["entry_point"])
            if m is None:
                keep.append(r)
                continue
            rep.rejected[r["reason"]] -= 1
            rep.rejected["contaminated"] += 1
            collected.removed.setdefault(m.benchmark, Counter())[m.rule] += 1
            r = {**r, "reason": "contaminated", "detail": m.detail()}
        rest.append(r)
    for r in keep:
        rep.rejected[r["reason"]] -= 1
        collected.exercises.append(Exercise(r["id"], "mined", r["prompt"], r["entry_point"], r["solution"], "",
                                            {**r["meta"], "n_asserts": 0, "sft_only": True, "why": r["reason"]}))
    rep.rejected = +rep.rejected
    rep.kept += len(keep)
    rep.extra["sft_only"] = len(keep)
    collected.rejects["mined"] = rest


def write_outputs(opts: BuildOptions, collected: Collected, benchmarks: Benchmarks, seconds: float) -> dict:
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    n = write_jsonl_atomic(out / "exercises.jsonl", (e.to_dict() for e in collected.exercises))
    for source in SOURCES:  # a rejects file left by an earlier build into the same directory would mislead
        rows = collected.rejects.get(source)
        if rows:
            write_jsonl_atomic(out / "rejects" / f"{source}.jsonl", rows)
        else:
            (out / "rejects" / f"{source}.jsonl").unlink(missing_ok=True)
    sources = {k: v.to_dict() for k, v in collected.sources.items()}
    accounted = all(v.candidates == v.kept + sum(v.rejected.values()) for v in collected.sources.values())
    stats = {
        "exercises": n,
        "by_source": dict(Counter(e.source for e in collected.exercises)),
        "sft_only": sum(e.sft_only for e in collected.exercises),
        "sources": sources,
        "decontamination": {**benchmarks.describe(),
                            "removed": {b: dict(c) for b, c in sorted(collected.removed.items()) if +c},
                            "removed_total": sum(sum(c.values()) for c in collected.removed.values())},
        "accounted": accounted,
        "seed": opts.seed,
        "seconds": round(seconds, 2),
    }
    write_json_atomic(out / "stats.json", stats)
    return stats


def summary_table(stats: dict):
    """One row per source, then one row per rejection reason (as the corpus builder's summary lists its drops)."""
    from rich.table import Table

    t = Table(title="exercises")
    for col in ("", "candidates", "kept", "kept %", "kept / min"):
        t.add_column(col, justify="right" if col else "left")
    for name, s in stats["sources"].items():
        t.add_row(name, f"{s['candidates']:,}", f"{s['kept']:,}",
                  f"{100 * s['kept_fraction']:.1f}" if s["kept_fraction"] is not None else "-",
                  f"{s['per_minute']:,.0f}" if s["per_minute"] else "-")
        for reason, n in sorted(s["rejected"].items(), key=lambda kv: -kv[1]):
            t.add_row(f"  rejected: {reason}", f"{n:,}", "", "", "")
        for r in s.get("rounds", []):
            t.add_row(f"  round {r['round']}: acceptance", f"{r['samples']:,}", f"{r['passed']:,}",
                      f"{100 * r['acceptance_rate']:.1f}" if r["acceptance_rate"] is not None else "-", "")
    d = stats["decontamination"]
    for bench, rules in d["removed"].items():
        t.add_row(f"decontaminated: {bench}", ", ".join(f"{r} {n}" for r, n in rules.items()), "", "", "")
    t.add_row("accounted (candidates = kept + rejected)", "yes" if stats["accounted"] else "NO", "", "", "")
    return t


def check_directory(source: Path, out: Path, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """`ocg exercises check`: re-judge exercises written earlier (or anywhere, in the same format) and write the
    ones that still hold, with the others in rejects/check.jsonl."""
    from .records import read_exercises
    from .validate import check_exercises

    t0 = time.perf_counter()
    exercises = read_exercises(source)
    with Judge(workers=workers, timeout=timeout) as judge:
        outcome = check_exercises(judge, exercises)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "exercises.jsonl", (e.to_dict() for e in outcome.kept))
    write_jsonl_atomic(out / "rejects" / "check.jsonl", outcome.rejected)
    stats = {"checked": len(exercises), "kept": len(outcome.kept),
             "rejected": dict(Counter(r["reason"] for r in outcome.rejected)),
             "accounted": len(exercises) == len(outcome.kept) + len(outcome.rejected),
             "seconds": round(time.perf_counter() - t0, 2)}
    write_json_atomic(out / "stats.json", stats)
    return stats
