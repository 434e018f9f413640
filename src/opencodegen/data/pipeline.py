"""The corpus builder and tokenizer as datatrove pipelines, and the Python API the CLI and the quickstart call:

    stats = build_corpus([Source("dir", "~/src/myrepo")], "corpus/mine", BuildOptions(workers=2))
    stats = tokenize_corpus("corpus/mine", "tokenizer.json", "tokens/mine", TokenizeOptions())

Build stages (each a datatrove executor; a rerun skips tasks that completed, by datatrove's completion markers):
  prepare  (T tasks)  read sources -> quality filters -> dedup signatures -> work/filtered/<rank>.jsonl
  bands    (<=25)     LSH bands -> verified near-duplicate pairs
  cluster  (1)        clusters, kept file per cluster
  clean    (T)        drop duplicates -> decontaminate -> redact PII -> work/buckets/<hash(repo)>/<rank>.jsonl
  pack     (B)        group by repository, dependency order, tests next to code -> data/<rank>.jsonl.gz
  report   (1)        stats.json, repos.jsonl
Tokenize stages: tokenize (T) -> shuffle (one task per split).

Layout of a corpus directory: data/ (the documents), stats.json, summary.png, repos.jsonl, rejects/<step>/ (every
dropped input with its reason), logs/<stage>/ (datatrove's console.log and per-task logs, per-task stats, completion
markers), work/ (intermediates).

Local stages run datatrove's LocalPipelineExecutor in a child process whose console output goes to console.log, so
it cannot tear through the progress display; only datatrove's public API is used."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import multiprocess
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers.jsonl import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from loguru import logger

from ..errors import UserError
from ..optional import require
from ..progress import log, progress_task
from ..tokenizer import CodeTokenizer
from .decontam import DecontamConfig, Decontaminate
from .dedup import DedupBuckets, DedupCluster, DedupConfig, DedupFilter, DedupSignature
from .filters import FilterConfig, QualityFilter
from .pii import RedactPII
from .rank_reader import RankFileReader
from .repo import AssignRepoBucket, RepoPacker
from .report import WriteCorpusReport, corpus_stats, summary_png, summary_table, token_stats, write_json_atomic
from .sources import Source, SourceReader, plan_inputs
from .system_corpus import system_corpus
from .task_progress import read_total
from .tokenize import Renderer, ShuffleShards, TokenizeConfig, TokenizeDocs, choose_valid_repos, token_width


@dataclass
class BuildOptions:
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    tasks: int | None = None  # prepare/clean tasks; default: workers
    repo_buckets: int | None = None  # pack tasks; default: tasks
    executor: str = "local"  # "local" | "slurm" | "ray"
    filters: FilterConfig = field(default_factory=FilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    pii: bool = True
    max_file_bytes: int = 1_000_000
    max_doc_chars: int = 1_000_000
    seed: int = 0
    fresh: bool = False  # delete an earlier build in the output directory first
    slurm: dict[str, Any] = field(default_factory=dict)  # SlurmPipelineExecutor arguments (partition, time, ...)
    ray: dict[str, Any] = field(default_factory=dict)  # RayPipelineExecutor arguments


@dataclass
class TokenizeOptions:
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    tasks: int | None = None
    executor: str = "local"
    config: TokenizeConfig = field(default_factory=TokenizeConfig)
    fresh: bool = False
    slurm: dict[str, Any] = field(default_factory=dict)
    ray: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stage:
    name: str
    pipeline: list
    tasks: int
    # the progress bar: total items and the folder where tasks report their counts (None: count finished tasks)
    total: int | None = None
    progress_dir: Path | None = None
    unit: str = "tasks"


# --------------------------------------------------------------------------------------------------- executors
def _quiet_loguru() -> None:
    """datatrove logs at INFO to stderr, which would tear through the progress display; its per-task logs still go
    to logs/<stage>/logs/task_*.log."""
    logger.remove()
    logger.add(sys.stderr, level="ERROR")


def _run_local(ex: LocalPipelineExecutor, console_log: Path, conn) -> None:
    """The child process of a local stage: its stdout and stderr (datatrove's console log for each task and the
    merged stats, its pool workers' too) go to `console_log`, not to the terminal the progress display owns."""
    fd = os.open(console_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # This process has one thread, so fork is safe for datatrove's pool (start_method="fork" in make_executors) and
    # its Manager; a forkserver child would otherwise start yet another forkserver for each.
    multiprocess.set_start_method("fork", force=True)
    try:
        ex.run()
        conn.send(None)
    except BaseException as e:  # raised again in the parent
        try:
            conn.send(e)
        except Exception:  # not picklable: its text, with the traceback in console_log
            traceback.print_exc()
            conn.send(RuntimeError(f"{type(e).__name__}: {e} (traceback in {console_log})"))


def _start_local(ex: LocalPipelineExecutor, preload: list[str]):
    """Starts `ex.run()` in a child process; returns (process, pipe end that receives None or the exception).
    The child is forked from a forkserver that has imported `preload` (the modules of every stage's steps), which
    makes it cheap, and fork-safe: the parent has threads (the progress display), the forkserver has none."""
    ctx = multiprocess.get_context("forkserver")
    # Takes effect when the process's (one, shared) forkserver starts: for the first stage, unless something else in
    # this process started it before, and then each child imports the steps' modules itself (slower, same result).
    ctx.set_forkserver_preload(preload)
    console_log = Path(ex.logging_dir.path) / "console.log"
    console_log.parent.mkdir(parents=True, exist_ok=True)
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_run_local, args=(ex, console_log, send), name=f"datatrove {console_log.parent.name}")
    child.start()
    send.close()
    return child, receive


EXECUTORS = ("local", "slurm", "ray")


def check_executor(kind: str) -> None:
    """What an executor needs from this machine, checked before any work starts."""
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--executor slurm submits with `sbatch`, which is not on PATH: run this on a Slurm login "
                        "node, or use --executor local (this machine) or ray")
    if kind == "ray":
        require("ray", "ray", "--executor ray")
    if kind not in EXECUTORS:
        raise UserError(f"--executor {kind!r}: choose {', '.join(EXECUTORS)}")


def make_executors(stages: list[Stage], logs_dir: Path, kind: str, workers: int, slurm: dict | None = None,
                   ray: dict | None = None) -> list:
    """One datatrove executor per stage, each depending on the previous one (Slurm/Ray chain them; locally they are
    run in order). Building them needs nothing of the cluster; the commands that run them call check_executor first."""
    if kind not in EXECUTORS:
        raise UserError(f"--executor {kind!r}: choose {', '.join(EXECUTORS)}")
    executors: list = []
    for st in stages:
        common = dict(pipeline=st.pipeline, tasks=st.tasks, logging_dir=str(logs_dir / st.name))
        if kind == "local":
            # fork: the executor runs in _run_local's single-threaded child, where forking is safe and cheapest
            ex = LocalPipelineExecutor(**common, workers=min(workers, st.tasks), start_method="fork")
        elif kind == "slurm":
            from datatrove.executor import SlurmPipelineExecutor  # here: the cluster executors are optional

            opts = {"time": "12:00:00", "partition": "cpu", "cpus_per_task": 1, "job_name": f"ocg-{st.name}",
                    "venv_path": str(Path(sys.prefix) / "bin" / "activate"), **(slurm or {})}
            ex = SlurmPipelineExecutor(**common, depends=executors[-1] if executors else None, **opts)
        elif kind == "ray":
            from datatrove.executor import RayPipelineExecutor

            ex = RayPipelineExecutor(**common, workers=workers, depends=executors[-1] if executors else None,
                                     **(ray or {}))
        executors.append(ex)
    return executors


def run_stages(stages: list[Stage], executors: list, kind: str) -> dict[str, float]:
    """Run locally (with a progress bar per stage, wall seconds returned) or submit to Slurm/Ray."""
    if kind == "slurm":
        executors[-1].run()  # submits the whole chain through `depends`
        log(f"submitted {len(executors)} Slurm jobs; stats.json appears when the last one finishes")
        return {}
    if kind == "ray":
        import ray  # optional: only the Ray executor needs it

        if not ray.is_initialized():
            ray.init(num_cpus=executors[0].workers, include_dashboard=False, log_to_driver=False)
    preload = sorted({__name__} | {type(step).__module__ for st in stages for step in st.pipeline})
    walls: dict[str, float] = {}
    for st, ex in zip(stages, executors):
        start = time.perf_counter()
        completions = Path(ex.logging_dir.path) / "completions"
        with progress_task(st.name, total=st.total if st.total is not None else st.tasks, unit=st.unit) as task:
            with _running(ex, kind, preload) as finished:
                while not finished(0.25):
                    task.update(completed=(read_total(st.progress_dir) if st.progress_dir
                                           else len(list(completions.glob("*"))) if completions.is_dir() else 0))
            task.update(completed=read_total(st.progress_dir) if st.progress_dir else st.tasks)
        walls[st.name] = round(time.perf_counter() - start, 3)
    return walls


@contextlib.contextmanager
def _running(ex, kind: str, preload: list[str]):
    """Runs `ex` in the background: a local stage in a child process (_start_local), a Ray driver in a thread with
    loguru quieted. Yields `finished(timeout) -> bool`; on leaving, an error of the stage is raised here, and an
    interrupted stage's child is stopped."""
    if kind == "local":
        child, receive = _start_local(ex, preload)

        def finished(timeout: float) -> bool:
            child.join(timeout)
            # The child sends its result once the stage's work is done; its pool can be slow to wind down after a
            # failed task (a CI run once waited 600 s on such a child), so the result alone means finished.
            return not child.is_alive() or receive.poll()

        try:
            yield finished
        finally:
            if child.is_alive():
                child.join(0 if not receive.poll() else 2)  # interrupted: stop it now; done: let it exit first
            if child.is_alive():
                child.terminate()
                child.join()
        error = receive.recv() if receive.poll() else RuntimeError(
            f"datatrove stage exited with code {child.exitcode}; see {Path(ex.logging_dir.path) / 'console.log'}")
        receive.close()
    else:
        _quiet_loguru()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                ex.run()
            except BaseException as e:  # re-raised in the main thread
                errors.append(e)

        th = threading.Thread(target=target, daemon=True)
        th.start()

        def finished(timeout: float) -> bool:
            th.join(timeout)
            return not th.is_alive()

        yield finished
        error = errors[0] if errors else None
    if error is not None:
        raise error


# ----------------------------------------------------------------------------------------------- build_corpus
def _fingerprint(sources: list[Source], opts: BuildOptions) -> str:
    keep = {k: v for k, v in dataclasses.asdict(opts).items() if k not in ("workers", "fresh", "slurm", "ray",
                                                                          "executor")}
    data = json.dumps({"sources": [dataclasses.asdict(s) for s in sources], "options": keep}, sort_keys=True,
                      default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def _prepare_dir(out: Path, fingerprint: str, fresh: bool, what: str) -> None:
    """An output directory belongs to one set of inputs and options: reruns resume it, anything else must start
    fresh, because completed tasks would otherwise be skipped with stale results."""
    marker = out / "work" / "fingerprint"
    if fresh and out.exists():
        shutil.rmtree(out)
    if marker.is_file() and marker.read_text() != fingerprint:
        raise UserError(f"{out}: holds a {what} built from other inputs or options; pass --fresh to rebuild it, "
                        "or choose another output directory")
    if not marker.is_file() and out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not a {what} of ours; choose an empty or new directory")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)


def corpus_stages(sources: list[Source], out: Path, opts: BuildOptions, n_inputs: int) -> list[Stage]:
    work, rejects = out / "work", str(out / "rejects")
    tasks = opts.tasks or max(1, opts.workers)
    buckets = opts.repo_buckets or tasks
    band_tasks = opts.dedup.bands if opts.executor != "local" else min(opts.dedup.bands, max(1, opts.workers))
    clean = [RankFileReader(str(work / "filtered")), DedupFilter(str(work / "dedup"), rejects)]
    if opts.decontam.humaneval or opts.decontam.benchmark_files:
        clean.append(Decontaminate(rejects, opts.decontam))
    if opts.pii:
        clean.append(RedactPII())
    clean += [AssignRepoBucket(buckets),
              JsonlWriter(str(work / "buckets"), output_filename="${repo_bucket}/${rank}.jsonl", compression=None)]
    return [
        Stage("prepare", [SourceReader(str(work / "manifest.jsonl"), rejects, opts.max_file_bytes,
                                       str(work / "progress" / "prepare")),
                          QualityFilter(rejects, opts.filters),
                          DedupSignature(str(work / "dedup"), opts.dedup),
                          JsonlWriter(str(work / "filtered"), output_filename="${rank}.jsonl", compression=None)],
              tasks, total=n_inputs, progress_dir=work / "progress" / "prepare", unit="files"),
        Stage("bands", [DedupBuckets(str(work / "dedup"), opts.dedup)], band_tasks),
        Stage("cluster", [DedupCluster(str(work / "dedup"))], 1),
        Stage("clean", clean, tasks),
        Stage("pack", [RepoPacker(str(work / "buckets"), str(work / "repos"), opts.max_doc_chars),
                       JsonlWriter(str(out / "data"), output_filename="${rank}.jsonl.gz")], buckets),
        Stage("report", [WriteCorpusReport(str(out))], 1),
    ]


def build_corpus(sources: list[Source], out_dir: str | Path, options: BuildOptions | None = None,
                 print_summary: bool = True) -> dict[str, Any]:
    """Build (or resume) a corpus; returns stats.json's content (empty when submitted to Slurm)."""
    opts = options or BuildOptions()
    check_executor(opts.executor)
    out = Path(out_dir)
    if not sources:
        raise UserError("no sources given")
    _prepare_dir(out, _fingerprint(sources, opts), opts.fresh, "corpus")
    manifest = out / "work" / "manifest.jsonl"
    if not manifest.is_file():  # planned once: a rerun reads exactly the same inputs
        plan_inputs(sources, manifest, opts.seed)
    items = [json.loads(line) for line in manifest.read_text().splitlines()]
    n_inputs = len(items)
    for item in items:
        if item["kind"] == "missing":
            log(f"[yellow]source {item['path']} does not exist: counted as dropped (missing_source)[/yellow]")
    stages = corpus_stages(sources, out, opts, n_inputs)
    executors = make_executors(stages, out / "logs", opts.executor, opts.workers, opts.slurm, opts.ray)
    walls = run_stages(stages, executors, opts.executor)
    if opts.executor == "slurm":
        return {}
    stats = corpus_stats(out)
    for name, s in walls.items():
        stats["stages"].setdefault(name, {})["wall_seconds"] = s
    write_json_atomic(out / "stats.json", stats)
    summary_png(stats, out / "summary.png")
    if print_summary:
        log(summary_table(stats, f"corpus {out}"))
    return stats


def build_system_corpus(out_dir: str | Path, parts: tuple[str, ...] = ("nl", "multi", "mono"),
                        max_bytes_per_part: int | None = None, options: BuildOptions | None = None,
                        print_summary: bool = True) -> dict[str, dict[str, Any]]:
    """The three CodeGen stages from this machine's own files: `out_dir/<part>/` for each part; returns
    {part: stats} (stats["notes"] says what this machine lacks). A part with nothing found is skipped, not an error."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        sources, notes = system_corpus(part, max_bytes_per_part)
        for note in notes:
            log(f"[yellow]{note}[/yellow]")
        if not sources:
            continue
        stats = build_corpus(sources, Path(out_dir) / part, options, print_summary)
        if stats:
            stats["notes"] = notes
            write_json_atomic(Path(out_dir) / part / "stats.json", stats)
        out[part] = stats
    return out


# -------------------------------------------------------------------------------------------- tokenize_corpus
def tokenize_corpus(corpus_dir: str | Path, tokenizer: Any, out_dir: str | Path,
                    options: TokenizeOptions | None = None, print_summary: bool = True) -> dict[str, Any]:
    """Corpus documents -> `out_dir/train/*.ds` and `out_dir/valid/*.ds`; returns the token stats (also written to
    `out_dir/stats.json` and, under "tokens", into the corpus's stats.json)."""
    opts = options or TokenizeOptions()
    check_executor(opts.executor)
    corpus, out = Path(corpus_dir), Path(out_dir)
    if not (corpus / "data").is_dir() or not (corpus / "repos.jsonl").is_file():
        raise UserError(f"{corpus}: not a built corpus (no data/ and repos.jsonl); run `ocg corpus build` first")
    tok = tokenizer if not isinstance(tokenizer, (str, Path)) else CodeTokenizer.load(tokenizer)
    cfg = opts.config
    with tempfile.TemporaryDirectory() as tmp:  # the tokenizer's bytes, so a different tokenizer is noticed
        tok.save(tmp)
        tok_sha = hashlib.sha256((Path(tmp) / "tokenizer.json").read_bytes()).hexdigest()
    corpus_sha = hashlib.sha256((corpus / "repos.jsonl").read_bytes()).hexdigest()
    fp = hashlib.sha256(json.dumps({"corpus": str(corpus.resolve()), "corpus_repos": corpus_sha, "tokenizer": tok_sha,
                                    "cfg": dataclasses.asdict(cfg)}, sort_keys=True, default=str).encode()).hexdigest()
    _prepare_dir(out, fp, opts.fresh, "token set")
    work = out / "work"
    tok.save(str(work / "tokenizer"))
    tok_path = str(work / "tokenizer")
    try:
        Renderer(tok, cfg)  # fail here, with the reason, rather than inside every task
    except ValueError as e:
        raise UserError(f"tokenizer: {e}") from None
    repos = [json.loads(line) for line in (corpus / "repos.jsonl").read_text().splitlines() if line.strip()]
    valid = sorted(choose_valid_repos(repos, cfg.valid_fraction, cfg.seed))
    if cfg.valid_fraction > 0 and not valid:
        log(f"[yellow]{corpus} has {len(repos)} repository: no validation split (it holds out whole "
            "repositories, so it needs at least two)[/yellow]")
    write_json_atomic(work / "valid_repos.json", valid)
    n_docs = sum(r["docs"] for r in repos)
    tasks = opts.tasks or max(1, opts.workers)
    width = token_width(tok.vocab_size)
    stages = [
        Stage("tokenize", [JsonlReader(str(corpus / "data"), glob_pattern="*.jsonl.gz"),
                           TokenizeDocs(tok_path, str(work / "tok"), str(work / "valid_repos.json"), cfg,
                                        str(work / "progress"))],
              tasks, total=n_docs, progress_dir=work / "progress", unit="docs"),
        Stage("shuffle", [ShuffleShards(str(work / "tok"), str(out), tok_path, width, cfg.seed,
                                        cfg.max_tokens_per_shard)], 2),
    ]
    executors = make_executors(stages, out / "logs", opts.executor, opts.workers, opts.slurm, opts.ray)
    walls = run_stages(stages, executors, opts.executor)
    if opts.executor == "slurm":
        return {}
    stats = token_stats(out / "logs")
    stats["valid_repos"] = len(valid)
    stats["repos"] = len(repos)
    stats["token_bytes"] = width
    stats["wall_seconds"] = walls
    write_json_atomic(out / "stats.json", stats)
    corpus_stats_path = corpus / "stats.json"
    if corpus_stats_path.is_file():
        cs = json.loads(corpus_stats_path.read_text())
        cs["tokens"] = {k: stats[k] for k in ("train", "valid")}
        cs["tokens_train"], cs["tokens_valid"] = stats["train"]["tokens"], stats["valid"]["tokens"]
        write_json_atomic(corpus_stats_path, cs)
        if print_summary:
            log(summary_table(cs, f"corpus {corpus} -> {out}"))
    return stats
