"""`ocg quickstart`: the whole system on this machine's own files, as cached stages in one run directory.

  corpus-mono    the Python standard library -> corpus/mono (datatrove: filters, dedup, decontamination, PII, repos)
  heldout        Mono's validation repositories -> heldout/files/ (bits per byte is measured on them)
  corpus-multi   Java, C/C++, JavaScript, Python -> corpus/multi, decontaminated against heldout/ too
  corpus-nl      /usr/share/doc -> corpus/nl, likewise
  tokenizer      byte-level BPE on the parts' training repositories -> tokenizer/tokenizer.json
  tokens-<part>  repository-format documents with FIM -> tokens/<part>/{train,valid}
  exercises      synthetic and mined exercises, each kept only if it runs, decontaminated -> exercises/
  train-plan     steps per stage that fit the time budget, from a measured step time
  train          NL -> Multi -> Mono pretraining, then SFT and RL on the exercises (configs/quickstart.yaml)
                 -> train/stage-<i>-<name>/checkpoint-<step>
  eval-*         bits per byte beside xz -9, HumanEval (and the first checkpoint that reaches each published row),
                 MTPB, FIM, samples, ocg synth sessions -> eval/<name>/
then results.json, report.md and report.html. A part this machine lacks is skipped with a note."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import host
from ..data.decontam import DecontamConfig
from ..data.pipeline import BuildOptions, TokenizeOptions, build_corpus, tokenize_corpus
from ..data.system_corpus import PARTS, system_corpus
from ..data.tokenize import TokenizeConfig
from ..errors import UserError
from ..eval.mtpb import mini_path
from ..eval.report import write_json
from ..exercises import build as exercises_build
from ..exercises.pretraining import write_pretraining_tokens
from ..model.config import ModelConfig
from ..progress import log, progress_task
from ..tokenizer import train_tokenizer as train_bpe
from ..train import load_recipe, train
from ..train.recipe import SFTOptions
from ..train.checkpoint import checkpoint_dirs
from ..train.loop import model_config
from ..train.stage import stage_dir
from . import evaluation, heldout, train_plan, train_schedule
from .budget import Budget
from .report import write_report
from .runner import StageRunner, check_free_disk

# Stage order: Mono first, because the held-out files it yields decontaminate the other parts.
BUILD_ORDER = ("mono", "multi", "nl")
# Expected seconds of each stage on 2 cores (the overall progress row's ETA); training's comes from the budget. The
# stages after HumanEval's are also what its sampled pass leaves of the run's time goal (measured in fresh-clone runs
# on two hosts: MTPB 20-40 s at 5 samples and 77 s at 10, infill 4-8 s, repository completion 5-9 s, the rest about a
# second).
EXPECTED = {"corpus-mono": 40, "heldout": 5, "corpus-multi": 40, "corpus-nl": 25, "tokenizer": 30, "tokens-mono": 25,
            "tokens-multi": 15, "tokens-nl": 10, "exercises": 90, "tokens-exercises": 5, "train-plan": 60,
            "eval-bpb": 40, "eval-humaneval": 200, "eval-targets": 5, "eval-mtpb": 90, "eval-infill": 10,
            "eval-repo": 10, "eval-samples": 2, "eval-synth": 3}
AFTER_HUMANEVAL = ("eval-targets",)


def default_config() -> Path:
    """configs/quickstart.yaml of the source tree this package runs from (an editable install, as `make` makes)."""
    return Path(__file__).resolve().parents[3] / "configs" / "quickstart.yaml"


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) if path.exists() else 0


def _corpus_summary(stats: dict) -> dict:
    keep = ("files_in", "bytes_in", "files_kept", "bytes_kept", "drops", "repos", "documents")
    return {**{k: stats[k] for k in keep}, "decontaminated_files": stats["decontamination"]["files"]}


def build_part(part: str, run_dir: Path, budget: Budget, benchmark_files: list[str]) -> dict:
    sources, notes = system_corpus(part, budget.part_bytes(part))
    for note in notes:
        log(f"[yellow]{note}[/yellow]")
    if not sources:
        return {"skipped": True, "notes": notes}
    # NL and Multi sample whole repositories in a seeded order. The held-out choice walks the same hash order with
    # seed 0, so with seed 0 Multi's Python share would be mostly the held-out packages, all dropped as contaminated.
    opts = BuildOptions(workers=budget.workers, decontam=DecontamConfig(benchmark_files=benchmark_files),
                        seed=0 if part == "mono" else 1)
    stats = build_corpus(sources, run_dir / "corpus" / part, opts, print_summary=False)
    return {"skipped": False, "notes": notes, "sources": [s.label for s in sources], **_corpus_summary(stats)}


def train_tokenizer(run_dir: Path, parts: list[str], held_out: set[str], budget: Budget, vocab_size: int) -> dict:
    """On up to tokenizer_bytes_per_part of each part's documents, leaving out the held-out repositories; vocab_size
    is the recipe model's, so the two cannot disagree."""
    def texts():
        for part in parts:
            seen = 0
            for doc in heldout.documents(run_dir / "corpus" / part):
                if doc["metadata"]["repo"] in held_out:
                    continue
                yield doc["text"]
                seen += len(doc["text"].encode("utf-8"))
                if seen >= budget.tokenizer_bytes_per_part:
                    break

    tok = train_bpe(texts(), vocab_size)
    tok.save(run_dir / "tokenizer")
    return {"vocab_size": tok.vocab_size, "parts": parts}


def tokenize_part(part: str, run_dir: Path, budget: Budget, cfg: TokenizeConfig, held_out: list[str] | None) -> dict:
    out = run_dir / "tokens" / part
    stats = tokenize_corpus(run_dir / "corpus" / part, run_dir / "tokenizer" / "tokenizer.json", out,
                            TokenizeOptions(workers=budget.workers, config=cfg), print_summary=False)
    valid = json.loads((out / "work" / "valid_repos.json").read_text())
    if held_out is not None and sorted(valid) != sorted(held_out):
        # The bits-per-byte files must be exactly Mono's validation split, or trained-on files could be scored.
        raise RuntimeError(f"{out}: the validation repositories differ from the held-out set in "
                           f"{run_dir / 'heldout'}; rerun with --fresh")
    return {"train": stats["train"]["tokens"], "valid": stats["valid"]["tokens"], "valid_repos": len(valid)}


def build_exercises(run_dir: Path, budget: Budget, mono: bool) -> dict:
    """The post-training stages' data: synthetic exercises, and (with a Mono corpus) functions mined from its training
    repositories; stats.json and rejects/ account for every candidate."""
    options = exercises_build.BuildOptions(
        out=run_dir / "exercises", synthetic=budget.synthetic_exercises(), multi_turn=budget.exercises_multi_turn,
        seed=0, workers=budget.workers,
        mine_corpora=[run_dir / "corpus" / "mono"] if mono and budget.exercises_mine else [])
    stats = exercises_build.build(options)
    return {"exercises": stats["exercises"], "by_source": stats["by_source"], "sft_only": stats.get("sft_only", 0),
            "decontamination": stats["decontamination"], "sources": stats["sources"]}


def exercise_tokens(run_dir: Path, config: Path) -> dict:
    """The exercises as a pretraining token directory (tokens/exercises, which the recipe's Mono stage mixes in),
    holding out the rows the recipe's SFT stages validate on."""
    recipe = load_recipe(config, {"data_root": str(run_dir)})
    # held_out(e, f) holds for a subset of what it holds for at a larger f: the largest covers every SFT stage's rows
    fraction = max((s.sft.valid_fraction for s in recipe.stages if s.kind == "sft"),
                   default=SFTOptions().valid_fraction)
    return write_pretraining_tokens(run_dir / "exercises", run_dir / "tokenizer" / "tokenizer.json",
                                    run_dir / "tokens" / "exercises", fraction)


def _present(stage) -> dict[str, float]:
    """The stage's data this run has: token directories with a train/ split (pretraining), exercise files (the
    other kinds)."""
    has = (lambda d: (Path(d) / "train").is_dir()) if stage.kind == "pretrain" else (lambda d: Path(d).exists())
    return {d: w for d, w in stage.data.items() if has(d)}


def load_quickstart_recipe(config: Path, run_dir: Path, parts: list[str]):
    """The recipe with paths under the run directory, keeping the stages whose data this machine has. A pretraining
    mixture keeps the token directories this run built (no exercises: Mono is its corpus alone); another stage needs
    all of its data."""
    recipe = load_recipe(config, {"data_root": str(run_dir)})
    kept = []
    for s in recipe.stages:
        present = _present(s)
        if not present or (present != s.data and s.kind != "pretrain"):
            log(f"[yellow]training stage {s.name} skipped: its corpus is missing on this machine[/yellow]")
            continue
        if present != s.data:
            log(f"[yellow]training stage {s.name}: {', '.join(sorted(set(s.data) - set(present)))} not built "
                "in this run, left out of its mixture[/yellow]")
            s.data = present
        kept.append(s)
    if not kept:
        raise UserError(f"{config}: none of its stages has data: this machine has none of the system corpus parts "
                        f"({', '.join(parts) or 'nothing found'})")
    recipe.stages = kept
    return recipe


def recipe_vocab_size(config: Path, run_dir: Path) -> int:
    return model_config(load_recipe(config, {"data_root": str(run_dir)})).vocab_size


def run_quickstart(run_dir: Path, budget: Budget, config: Path | None = None, fresh: bool = False) -> dict[str, Any]:
    """Runs (or resumes) every stage; returns the results dict (also run_dir/results.json) after writing the report."""
    # Absolute, so the paths its results record (checkpoints, data) still hold when it is resumed or read from
    # another directory.
    run_dir, config = Path(run_dir).resolve(), Path(config or default_config())
    if not config.is_file():
        raise UserError(f"{config}: recipe not found; pass --config configs/quickstart.yaml from the source tree")
    check_free_disk(run_dir, budget.disk_bytes - (0 if fresh else _dir_bytes(run_dir)))
    vocab = recipe_vocab_size(config, run_dir)  # also rejects a malformed recipe before any corpus work
    cfg = TokenizeConfig()  # repository format, FIM at rate 0.5, 5% of each part's repositories held out
    run_minutes = budget.run_minutes()
    # counted from this process's start: a resumed run has the whole goal again
    started = time.monotonic()
    humaneval_deadline = (None if run_minutes is None else
                          started + 60 * run_minutes - sum(EXPECTED[s] for s in AFTER_HUMANEVAL))
    training_deadline = None if run_minutes is None else started + 60 * (run_minutes - budget.evaluation_minutes)
    expected = {**EXPECTED, "train": 60 * (budget.train_minutes or 5)}
    total = float(sum(expected.values()))
    with progress_task("quickstart", total=total, unit="s") as overall:
        runner = StageRunner(run_dir, fresh, overall, total)
        stage = lambda name, fn: runner.run(name, fn, expected.get(name, 5))  # noqa: E731

        corpus: dict[str, dict] = {}
        held: dict | None = None
        decontam = [str(mini_path())]
        for part in BUILD_ORDER:
            corpus[part] = stage(f"corpus-{part}", lambda part=part: build_part(part, run_dir, budget, decontam))
            if part == "mono" and not corpus[part]["skipped"]:
                held = stage("heldout", lambda: heldout.build(run_dir / "heldout", run_dir / "corpus" / "mono", cfg))
                decontam = decontam + [str(run_dir / "heldout" / "decontaminate.jsonl")]
        parts = [p for p in PARTS if not corpus[p]["skipped"]]
        if not parts:
            raise UserError("none of the system corpus parts exists on this machine (no /usr/share/doc, no JDK, "
                            "headers, node_modules or Python standard library)")
        held_repos = set(held["repos"]) if held else set()
        tok = stage("tokenizer", lambda: train_tokenizer(run_dir, parts, held_repos, budget, vocab))
        tokens = {p: stage(f"tokens-{p}", lambda p=p: tokenize_part(p, run_dir, budget, cfg,
                                                                       held["repos"] if p == "mono" and held else None))
                  for p in parts}

        exercises = None
        if budget.exercises_synthetic or budget.exercises_multi_turn or (budget.exercises_mine and "mono" in parts):
            exercises = stage("exercises", lambda: build_exercises(run_dir, budget, "mono" in parts))
            exercises["pretraining_tokens"] = stage("tokens-exercises", lambda: exercise_tokens(run_dir, config))
        recipe = load_quickstart_recipe(config, run_dir, parts)
        if budget.train_minutes:
            def make_plan(minutes: float, calibration: float = 1.0, base=recipe, deadline=None) -> dict:
                return train_plan.plan(base, minutes, budget.tokens_per_param, budget.sft_max_epochs, calibration,
                                       deadline)

            plan = stage("train-plan", lambda: make_plan(budget.train_minutes, deadline=training_deadline))
        else:
            plan = None
        if plan:
            trained = stage("train", lambda: train_schedule.train_on_schedule(recipe, run_dir / "train", plan,
                                                                              make_plan))
            plan = trained.get("plan", plan)  # the plan made again after the first stage, when it was
            recipe = train_schedule.with_schedule(train_plan.apply(recipe, plan), trained["schedule"])
        else:
            trained = stage("train", lambda: train(recipe, run_dir / "train", progress=True))
        ckpt = Path(trained["final_checkpoint"])

        ev = run_dir / "eval"
        bpb = None
        if held:
            pre_ckpt, pre_context = last_pretraining(run_dir / "train", recipe)
            bpb = stage("eval-bpb", lambda: evaluation.bits_per_byte(pre_ckpt, run_dir / "heldout" / "files",
                                                                     ev / "bpb", budget, pre_context))
        mt = stage("eval-mtpb", lambda: evaluation.mtpb(ckpt, ev / "mtpb", budget))
        fim = stage("eval-infill", lambda: evaluation.infill(ckpt, ev / "infill", budget))
        repo = None
        if budget.repo_tasks and held:
            # the last pretraining (Mono) checkpoint: repository-level packing is a pretraining choice, and
            # post-training on exercises in another format is not what it should be judged by (as for bits per byte)
            repo = stage("eval-repo", lambda: evaluation.repository_completion(pre_ckpt, run_dir, ev / "repo",
                                                                              budget))
        samples = stage("eval-samples", lambda: evaluation.samples(ckpt, ev / "samples", budget))
        sessions = stage("eval-synth", lambda: evaluation.synth_sessions(ckpt, ev / "synth", budget))
        # HumanEval last: its sampled pass is the one evaluation that sizes itself to the time left, so every other
        # evaluation's own time (MTPB's took 66-132 s on one host) is already spent when it is sized
        he = stage("eval-humaneval", lambda: evaluation.humaneval(ckpt, ev / "humaneval", budget,
                                                                          humaneval_deadline))
        targets = stage("eval-targets", lambda: evaluation.time_to_target(run_dir, recipe, he, ev / "targets",
                                                                          budget))

    results = assemble(run_dir, runner.results, recipe, ckpt, corpus, held, tok, tokens, plan, trained, bpb, he, mt,
                       fim, samples)
    results["exercises"] = exercises
    results["train_schedule"] = trained.get("schedule")
    results["synth"] = sessions
    results["repo_completion"] = repo
    results["time_to_target"] = targets
    write_json(run_dir / "results.json", results)
    write_report(results, run_dir)
    return results


def last_pretraining(train_dir: Path, recipe) -> tuple[Path, int]:
    """The last pretraining stage's final checkpoint and context: what held-out bits per byte measures (post-training
    teaches exercises, not the held-out code's distribution)."""
    i = max(k for k, s in enumerate(recipe.stages) if s.kind == "pretrain")
    return checkpoint_dirs(stage_dir(train_dir, i, recipe.stages[i].name))[-1][1], recipe.stage_batch(i).context_length


def next_commands(run_dir: Path, ckpt: Path) -> list[str]:
    return [f'ocg generate --model {ckpt} "def fibonacci(n):"',
            f"ocg synth --model {ckpt}",
            f"ocg serve --model {ckpt}",
            f"ocg eval bpb --model {ckpt} --files {run_dir / 'heldout' / 'files'}"]


def assemble(run_dir: Path, stages: dict, recipe, ckpt: Path, corpus: dict, held: dict | None, tok: dict,
             tokens: dict, plan: dict | None, trained: dict, bpb: dict | None, he: dict, mt: dict, fim: dict,
             samples: dict) -> dict[str, Any]:
    model = ModelConfig.from_file(ckpt / "config.json")
    train_stages = {}
    for i, s in enumerate(trained["stages"]):
        png = run_dir / "train" / f"loss-{i}-{s['stage']}.png"
        train_stages[s["stage"]] = {"kind": s.get("kind", "pretrain"), "steps": s["steps"], "tokens": s["tokens"],
                                    "final_loss": s.get("final_loss"), "val_loss": s.get("val_loss"),
                                    "valid_bpb": s.get("val_bpb"), "seconds": s["seconds"],
                                    "tokens_per_s": s.get("tokens_per_s"),
                                    "loss_png": str(png) if png.is_file() else None}
    corpus_out = {}
    for part in PARTS:
        c = corpus[part]
        if not c["skipped"]:
            corpus_out[part] = {**{k: v for k, v in c.items() if k not in ("skipped", "notes")},
                                "tokens_train": tokens[part]["train"], "tokens_valid": tokens[part]["valid"]}
    loads = [s["load_1min"] for s in stages.values() if "load_1min" in s]  # in run order
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": host.one_line(),
        "cores": os.cpu_count(),
        # Other processes share the cores: a 1-minute load above the core count means timings are pessimistic.
        "load_average_1min": {"start": loads[0][0] if loads else None, "end": loads[-1][1] if loads else None},
        "run_dir": str(run_dir),
        "model": {"preset": model.name, "params": model.n_params(), "n_layer": model.n_layer,
                  "n_embd": model.n_embd, "n_head": model.n_head, "block_size": model.block_size,
                  "vocab_size": model.vocab_size, "checkpoint": str(ckpt)},
        "total_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
        "stages": stages,
        "corpus": corpus_out,
        "corpus_notes": [n for part in PARTS for n in corpus[part]["notes"]],
        "heldout": held,
        "tokenizer": tok,
        "train_plan": plan,
        "train": train_stages,
        "recipe": recipe.to_dict(),
        "bpb": bpb,
        "humaneval": he,
        "mtpb": mt,
        "fim": fim,
        "samples": samples["samples"],
        "next_commands": next_commands(run_dir, ckpt),
    }
