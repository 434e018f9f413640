"""A miniature `ocg quickstart` end to end: a fake standard library and a fake /usr/share/doc stand in for this
machine's sources (the JDK, headers and node_modules are made missing), a 1M-parameter model trains a few steps per
stage, and every evaluation runs on a few tasks. Checks the run directory's files, the report's sections, that no
held-out file reaches a training corpus, that a rerun skips every stage, that missing parts are notes and that a
too-small disk is refused before any work."""

from __future__ import annotations

import json
import os
import time
from collections import namedtuple
from pathlib import Path

import pytest
import yaml

from opencodegen.data import system_corpus
from opencodegen.data.sources import Source
from opencodegen.errors import UserError
from opencodegen.quickstart import runner
from opencodegen.quickstart.budget import Budget
from opencodegen.quickstart.pipeline import run_quickstart

pytest.importorskip("opencodegen.tokenizer")

PACKAGES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def _module(pkg: str, k: int) -> str:
    # the last module of each package uses the first one's function: held-out lines for `ocg eval repo`
    uses = (f"from .mod0 import count_{pkg}_0\n\n\ndef count_both_{pkg}(items):\n"
            f"    return count_{pkg}_0(items) + count_{pkg}_{k}(items)\n\n\n") if k == 2 else ""
    return (f'"""The {pkg} module number {k}: helpers for counting {pkg} things in lists and dictionaries."""\n\n\n'
            + uses + f"def count_{pkg}_{k}(items):\n    total = 0\n    for item in items:\n        if item == {k}:\n"
            f"            total += 1\n    return total\n\n\nclass {pkg.title()}{k}:\n    def __init__(self, size):\n"
            f"        self.size = size\n        self.values = [0] * size\n\n    def add(self, value):\n"
            f"        self.values.append(value * {k})\n        return len(self.values)\n")


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("machine")
    for pkg in PACKAGES:
        for k in range(3):
            path = root / "stdlib" / pkg / f"mod{k}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_module(pkg, k))
    for name in ("bash", "coreutils", "zlib"):
        doc = root / "doc" / name / "README"
        doc.parent.mkdir(parents=True)
        doc.write_text(f"The {name} package.\n\n" + f"This is the documentation of {name}, a program that does "
                       "useful things with files and text on this machine.\n" * 8)
    return root


@pytest.fixture(scope="module")
def machine(sources):
    """This machine as the tests see it: the fake stdlib and docs, and no JDK, headers or node_modules."""
    mp = pytest.MonkeyPatch()
    mp.setattr(system_corpus, "python_stdlib", lambda max_bytes: Source(
        "dir", str(sources / "stdlib"), name="python-stdlib", repo_depth=1, languages=["python"], max_bytes=max_bytes))
    mp.setattr(system_corpus, "english_docs", lambda max_bytes: Source(
        "dir", str(sources / "doc"), name="usr-share-doc", repo_depth=1, languages=["text"], max_bytes=max_bytes))
    for missing in ("jdk_sources", "c_headers", "node_modules"):
        mp.setattr(system_corpus, missing, lambda max_bytes: None)
    yield
    mp.undo()


def tiny_budget() -> Budget:
    return Budget(workers=1, tokenizer_bytes_per_part=200_000, train_minutes=None, exercises_synthetic=12,
                  exercises_multi_turn=4,
                  humaneval_tasks=2, humaneval_n=2, humaneval_temperature=0.8, humaneval_max_new_tokens=8,
                  humaneval_other_temperatures=(0.2,),
                  mtpb_problems=1, mtpb_n=2, fim_tasks=2, fim_max_new_tokens=4, sample_max_new_tokens=8,
                  disk_bytes=1 << 20,
                  repo_tasks=2, repo_max_new_tokens=4)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "quickstart.yaml"
    path.write_text(yaml.safe_dump({
        "tokenizer": "tokenizer/tokenizer.json",
        "model": {"preset": "tiny-1m", "vocab_size": 512, "block_size": 256},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "batch": {"batch_tokens": 256, "micro_batch": 4, "context_length": 64},
        "run": {"autocast": "fp32", "eval_every": 2, "eval_tokens": 128, "save_every": 2},
        "stages": [{"name": n, "data": {f"tokens/{n}": 1.0}, "steps": 2} for n in ("nl", "multi")] + [
            {"name": "mono", "data": {"tokens/mono": 0.5, "tokens/exercises": 0.5}, "steps": 2},  # as the shipped one
            {"name": "sft", "kind": "sft", "data": {"exercises": 1.0}, "steps": 2,
             "batch": {"batch_tokens": 512, "micro_batch": 2, "context_length": 256}},
            {"name": "rl", "kind": "rl", "data": {"exercises": 1.0}, "steps": 2,
             "rl": {"exercises_per_step": 2, "group_size": 2, "max_new_tokens": 8}}]}))
    return path


@pytest.fixture(scope="module")
def run(machine, recipe, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("qs") / "run"
    return run_dir, run_quickstart(run_dir, tiny_budget(), recipe)


def test_every_output_exists_and_the_report_has_each_section(run):
    run_dir, results = run
    for rel in ("report.md", "report.html", "results.json", "tokenizer/tokenizer.json", "heldout/decontaminate.jsonl",
                "eval/bpb/summary.json", "eval/bpb/bits_per_byte.png", "eval/humaneval/greedy/summary.json",
                "eval/humaneval/sampled/summary.json", "eval/humaneval/sampled/pass_at_k.png",
                "exercises/exercises.jsonl", "exercises/stats.json", "eval/mtpb/summary.json", "eval/mtpb/pass_rate_by_category.png",
                "eval/infill/summary.json", "eval/samples/samples.jsonl", "train/summary.json"):
        assert (run_dir / rel).is_file(), rel
    for part in ("nl", "multi", "mono"):
        assert list((run_dir / "tokens" / part / "train").glob("*.ds")), part
        assert (run_dir / "train" / f"loss-{['nl', 'multi', 'mono'].index(part)}-{part}.png").is_file()
    assert results["tokenizer"]["vocab_size"] == results["model"]["vocab_size"] == 512  # the recipe's, both
    assert Path(results["model"]["checkpoint"]).name == "checkpoint-2"
    assert Path(results["model"]["checkpoint"]).parent.name == "stage-4-rl"  # the post-trained model is evaluated
    assert [s["kind"] for s in results["train"].values()] == ["pretrain"] * 3 + ["sft", "rl"]
    assert results["exercises"]["by_source"]["synthetic"] == 12 and results["exercises"]["decontamination"]
    pretraining = results["exercises"]["pretraining_tokens"]  # Mono's mixture read them
    assert pretraining["train"]["documents"] + pretraining["valid"]["documents"] == results["exercises"]["exercises"]
    assert list((run_dir / "tokens" / "exercises" / "train").glob("*.ds"))
    trained = json.loads((run_dir / "train" / "recipe.json").read_text())
    assert next(s for s in trained["stages"] if s["name"] == "mono")["data"] == {
        str(run_dir / "tokens" / "mono"): 0.5, str(run_dir / "tokens" / "exercises"): 0.5}
    md = (run_dir / "report.md").read_text()
    assert f"{pretraining['train']['documents']} of them" in md
    page = (run_dir / "report.html").read_text()
    for section in ("Results", "Corpus", "Exercises", "Training", "Bits per byte on held-out", "HumanEval", "MTPB",
                    "Fill-in-the-middle", "Repository-level completion", "Samples", "Multi-turn sessions",
                    "Time and memory", "Next"):
        assert f"## {section}" in md, section
        assert f"<h2>{section}" in page, section
    assert md.count("![") == 9 and page.count("data:image/png;base64,") == 9  # 5 loss curves, bpb, pass@k, MTPB, repo
    repo = results["repo_completion"]  # the held-out package's count_both line, on the pretrained Mono model
    assert repo["tasks"] >= 1 and set(repo["by_mode"]) == {"in-file", "cross-file"}
    assert Path(repo["checkpoint"]).parent.name == "stage-2-mono" and repo["reading"] in md
    assert "Codex-12M" in md and "Solved by at least one sample" in md
    sessions = results["synth"]["sessions"]  # each program ran in the sandbox, with a verdict of its own
    assert len(sessions) == 3 and all(s["status"] in ("passed", "failed", "timeout", "error") for s in sessions)
    assert all(s["program"].count("\n# ") == 3 for s in sessions) and results["synth"]["ran"] == sum(
        s["status"] == "passed" for s in sessions)
    assert "src=\"" not in page.replace("src='data:", "")  # nothing outside the page
    assert results["bpb"]["model"] > 0 and results["bpb"]["xz_concat"] > 0
    assert set(results["humaneval"]["pass_at_k"]) == {"pass@1"}  # pass@10 needs 10 samples; the test draws 2
    papers = results["humaneval"]["papers_protocol"]  # a second sampled pass at T=0.2, and the best of the two
    assert set(papers["by_temperature"]) == {"0.2", "0.8"}
    assert papers["best"]["pass@1"]["value"] == max(v["pass_at_k"]["pass@1"] for v in papers["by_temperature"].values())
    main = json.loads((run_dir / "eval/humaneval/sampled/summary.json").read_text())["by_run"]["t=0.8"]
    assert results["humaneval"]["pass_at_k"] == main["pass_at_k"]  # the T=0.8 row is T=0.8's, not the best
    assert "the papers' protocol" in md and "each k's best temperature" in md
    assert results["humaneval"]["programs"] == 2 + 4 + 4  # greedy, and n=2 on 2 tasks at each temperature
    # Empty and first-token-stopped completions are counted in every evaluation and said in the report.
    assert {k: v["total"] for k, v in results["humaneval"]["completions"].items()} == {"greedy": 2, "sampled": 4}
    assert results["fim"]["completions"]["total"] == 2 and results["mtpb"]["completions"]["total"] > 0
    assert results["mtpb"]["programs"] == 1 * 5 * 2 * 2  # a problem x its 5 test cases x mtpb_n samples x 2 modes
    assert md.count("stopped at their first token") == 4  # HumanEval greedy and sampled, MTPB, FIM
    assert all(f"--model {results['model']['checkpoint']}" in c for c in results["next_commands"])


def test_time_to_target_candidates_are_the_post_training_checkpoints_in_training_order(run):
    from opencodegen.quickstart import targets
    from opencodegen.quickstart.published import HUMANEVAL_SMALL_MODELS
    from opencodegen.train import recipe_from_dict
    run_dir, results = run
    t = results["time_to_target"]  # the tiny model reaches no published row: only the final checkpoint was scored
    assert [r["model"] for r in t["rows"]] == [name for name, *_ in HUMANEVAL_SMALL_MODELS]
    assert not any(r["reached"] for r in t["rows"]) and "## HumanEval: time to target" in (
        run_dir / "report.md").read_text()
    assert [e["path"] for e in t["evaluated"]] == [results["model"]["checkpoint"]]
    recipe = recipe_from_dict(json.loads((run_dir / "train" / "recipe.json").read_text()))
    found = targets.candidates(run_dir / "train", recipe)
    steps = {name: s["steps"] for name, s in results["train"].items()}
    # Mono's end, then the checkpoints the post-training stages kept (this recipe saves every 2 steps)
    assert [(c.stage, c.step) for c in found] == [("mono", steps["mono"]), ("sft", 2), ("rl", 2)]
    assert found[-1].path == results["model"]["checkpoint"]
    assert all(0 < a.train_seconds < b.train_seconds for a, b in zip(found, found[1:]))


def test_held_out_files_reach_no_training_split(run):
    """Mono's validation repositories are the bits-per-byte files; Multi (which has the same stdlib) dropped every
    copy of them as contaminated, and no training shard of any part holds their text."""
    run_dir, results = run
    held = results["heldout"]
    assert held["files"] >= 3 and held["repos"]
    assert sorted(json.loads((run_dir / "tokens" / "mono" / "work" / "valid_repos.json").read_text())) == held["repos"]
    assert results["corpus"]["multi"]["decontaminated_files"] == held["files"]
    from opencodegen.eval.perplexity import read_token_split
    from opencodegen.tokenizer import CodeTokenizer
    tok = CodeTokenizer.load(run_dir / "tokenizer")
    train_text = "".join(tok.decode(d) for part in ("nl", "multi", "mono")
                         for d in read_token_split(run_dir / "tokens" / part / "train"))
    for f in (run_dir / "heldout" / "files").rglob("*.py"):
        marker = f.read_text().splitlines()[0]  # each module's docstring names its package and number
        assert marker not in train_text, f


def test_missing_sources_are_notes_not_errors(run):
    _, results = run
    notes = " ".join(results["corpus_notes"])
    for what in ("Java", "C/C++", "JavaScript"):
        assert what in notes
    assert set(results["corpus"]) == {"nl", "multi", "mono"}


def test_rerun_skips_finished_stages(run, recipe, capsys, monkeypatch):
    run_dir, first = run
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))  # the load now is not the load they ran under
    again = run_quickstart(run_dir, tiny_budget(), recipe)
    assert again["stages"] == first["stages"]  # every stage's marker was reused, none ran again
    assert again["load_average_1min"] == first["load_average_1min"] and 99.0 not in first["load_average_1min"].values()
    assert "done in an earlier run" in capsys.readouterr().err


def test_too_small_disk_is_refused_up_front(machine, recipe, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: usage(10 << 20, 9 << 20, 1 << 20))
    budget = tiny_budget()
    budget.disk_bytes = 2 << 30
    with pytest.raises(UserError, match="GiB free on this disk"):
        run_quickstart(tmp_path / "run", budget, recipe)
    assert not (tmp_path / "run" / "corpus").exists()


def test_train_plan_scales_the_recipe_to_the_time_budget(run, recipe):
    """Measured step time x planned steps = the budget (less the share left for validation and checkpoints), in the
    recipe's proportions, with the precision that measured faster."""
    from opencodegen.quickstart import train_plan
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    run_dir, _ = run
    r = load_quickstart_recipe(recipe, run_dir, ["nl", "multi", "mono"])
    r.stages = r.stages[:3]  # the pretraining stages (a sampling stage's probe is covered by the whole run)
    r.stages[2].steps = 4  # twice the other stages' 2
    p = train_plan.plan(r, minutes=0.5)
    assert p["foreign_cpu_share"] is None or 0 <= p["foreign_cpu_share"] <= 1  # what others used while it timed
    budget = 0.5 * 60 * (1 - train_plan.OVERHEAD_SHARE)
    assert abs(p["predicted_seconds"] - budget) / budget < 0.05
    assert p["steps"][0] == p["steps"][1] and abs(p["steps"][2] - 2 * p["steps"][0]) <= 1  # rounded to steps
    planned = train_plan.apply(r, p)
    assert [s.steps for s in planned.stages] == p["steps"]
    assert planned.run.autocast == p["autocast"] in ("fp32", "bf16")


def test_a_time_goal_that_the_stages_before_training_ate_into_shortens_training(run, recipe, monkeypatch):
    """deadline: training gets the minutes left until it when they are fewer than its own, never under MIN_SHARE of
    them; the steps are fitted to what it gets."""
    from opencodegen.quickstart import train_plan
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    r = load_quickstart_recipe(recipe, run[0], ["nl", "multi", "mono"])
    r.stages = r.stages[:3]
    monkeypatch.setattr(train_plan, "seconds_per_step", lambda r, stage, probe_steps=None: 0.5)
    short = train_plan.plan(r, 2.0, deadline=time.monotonic() + 90)
    assert 1.47 <= short["minutes"] <= 1.5 and short["shortened_from"] == 2.0  # less what the plan itself took
    fitted = short["minutes"] * 60 * (1 - train_plan.OVERHEAD_SHARE)
    assert short["predicted_seconds"] == pytest.approx(fitted, rel=0.05)
    assert train_plan.plan(r, 2.0, deadline=time.monotonic() + 600)["minutes"] == 2.0
    assert train_plan.plan(r, 2.0, deadline=time.monotonic() + 10)["minutes"] == 2.0 * train_plan.MIN_SHARE
    unbounded = train_plan.plan(r, 2.0)
    assert unbounded["minutes"] == 2.0 and unbounded["shortened_from"] is None


def test_probe_step_time_is_the_median_of_the_timed_steps(run, recipe, monkeypatch):
    """The warm-up step is dropped and one slow step (a stray process) does not move the plan."""
    from opencodegen.quickstart import train_plan
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    r = load_quickstart_recipe(recipe, run[0], ["nl", "multi", "mono"])
    rates = [10.0, 1000.0, 1000.0, 100.0, 1000.0, 1000.0][: train_plan.PROBE_STEPS]

    def fake_train(probe, out, progress):
        tokens = probe.stage_batch(0).batch_tokens  # the probe's step: one micro-batch
        lines = [json.dumps({"step": i + 1, "tokens_per_s": t, "seconds": tokens / t}) for i, t in enumerate(rates)]
        (Path(out) / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    monkeypatch.setattr(train_plan, "train", fake_train)
    assert train_plan.seconds_per_step(r, 0) == r.stage_batch(0).batch_tokens / 1000.0


def test_a_sampling_stage_is_probed_at_the_length_its_trained_policy_writes(tmp_path, monkeypatch):
    """An untrained model's samples run to max_new_tokens; the probe generates as many tokens as the stage's reference
    answers take (here 2: one line and the end), so a probe does not time RL at 64 tokens a sample when the policy
    that runs it writes 2, and the time goes to the other stages."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from posttrain_fixtures import toy_recipe

    from opencodegen.quickstart import train_plan
    from opencodegen.train import recipe_from_dict
    r = recipe_from_dict(toy_recipe(tmp_path, [{"name": "rl", "kind": "rl", "steps": 5, "rl": {"max_new_tokens": 64}}]))
    probed = []

    def fake_train(probe, out, progress):
        probed.append(probe.stages[0].rl.max_new_tokens)
        (Path(out) / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "seconds": 1.0}) + "\n"
                                                         for i in range(train_plan.SAMPLING_PROBE_STEPS)))

    monkeypatch.setattr(train_plan, "train", fake_train)
    train_plan.seconds_per_step(r, 0)
    assert probed == [2]
    assert r.stages[0].rl.max_new_tokens == 64  # the recipe itself is untouched


def test_fresh_refuses_a_directory_it_did_not_make(recipe, tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match="not a run directory of ours"):
        run_quickstart(tmp_path, tiny_budget(), recipe, fresh=True)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_ctrl_c_keeps_finished_stages_and_the_next_run_resumes(machine, recipe, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) as training starts: the stages before it keep their markers, the interrupted one has
    none, and the same call again reuses the finished stages and completes the run."""
    run_dir = tmp_path / "run"
    real_run = runner.StageRunner.run

    def interrupted_at_train(self, name, fn, *args, **kwargs):
        if name == "train":
            raise KeyboardInterrupt
        return real_run(self, name, fn, *args, **kwargs)

    monkeypatch.setattr(runner.StageRunner, "run", interrupted_at_train)
    with pytest.raises(KeyboardInterrupt):
        run_quickstart(run_dir, tiny_budget(), recipe)
    markers = {p.name: p.stat().st_mtime_ns for p in (run_dir / "stages").glob("*.json")}
    assert "tokenizer.json" in markers and "tokens-mono.json" in markers and "train.json" not in markers
    monkeypatch.setattr(runner.StageRunner, "run", real_run)
    results = run_quickstart(run_dir, tiny_budget(), recipe)
    assert (run_dir / "report.html").is_file() and results["bpb"]["model"] > 0
    assert all((run_dir / "stages" / name).stat().st_mtime_ns == t for name, t in markers.items())  # reused, not redone


def test_synthetic_exercises_grow_with_the_training_time():
    assert Budget(train_minutes=12.0).synthetic_exercises() == 3000  # 150 a minute is 1800: the floor holds
    assert Budget(train_minutes=60.0).synthetic_exercises() == 9000
    assert Budget(train_minutes=None, exercises_synthetic=12).synthetic_exercises() == 12  # the recipe's steps as written
    assert Budget(train_minutes=30.0, exercises_synthetic_per_minute=0).synthetic_exercises() == 3000


def test_humaneval_samples_fill_the_evaluation_time():
    b = Budget(train_minutes=6.0)  # 25 s per training minute: 150 s
    assert b.humaneval_samples(0.02, 164) == int(150 / (0.02 * 164)) == 45
    assert b.humaneval_samples(0.2, 164) == 20  # at least 20
    assert b.humaneval_samples(0.001, 164) == 100  # at most 100
    assert Budget(train_minutes=None).humaneval_samples(0.02, 164) == int(120 / (0.02 * 164))  # 2 minutes at least
    assert Budget(humaneval_n=7).humaneval_samples(0.02, 164) == 7
    # the run's time goal: what it leaves caps the evaluation's seconds, never below 20 samples
    assert b.humaneval_samples(0.02, 164, seconds_left=66.0) == int(66 / (0.02 * 164)) == 20
    assert b.humaneval_samples(0.01, 164, seconds_left=66.0) == int(66 / (0.01 * 164)) == 40
    assert b.humaneval_samples(0.01, 164, seconds_left=-5.0) == 20
    assert b.humaneval_samples(0.01, 164, seconds_left=1e6) == 91  # the 150 s still bind
    # a pass's fixed seconds come off the time before the programs share it
    assert b.humaneval_samples(0.01, 164, seconds_left=66.0, fixed_seconds=16.8) == int(49.2 / 1.64) == 30
    assert Budget(train_minutes=9).run_minutes() == 17 and Budget(train_minutes=60).run_minutes() == pytest.approx(100)
    assert Budget(train_minutes=None).run_minutes() is None
    # every temperature's pass draws n per task: three passes share the 150 s
    papers = Budget(train_minutes=6.0, humaneval_other_temperatures=(0.2, 0.6))
    assert papers.humaneval_samples(0.005, 164) == int(150 / (0.005 * 164 * 3)) == 60


def test_the_time_goal_sizes_humaneval_from_a_timed_pilot(run, tmp_path):
    """The pilot's measured rate and the deadline decide n: a deadline already passed gives the least n, no deadline
    and a long evaluation time the most."""
    import time

    from opencodegen.quickstart import evaluation
    checkpoint = Path(run[1]["model"]["checkpoint"])
    budget = Budget(workers=1, humaneval_tasks=2, humaneval_n=None, humaneval_n_min=2, humaneval_n_max=5,
                    humaneval_max_new_tokens=4, humaneval_seconds=1e6)
    late = evaluation.humaneval(checkpoint, tmp_path / "late", budget, deadline=time.monotonic() - 1)
    free = evaluation.humaneval(checkpoint, tmp_path / "free", budget, deadline=None)
    assert (late["n"], free["n"]) == (2, 5)
    assert late["programs"] == 2 + 2 * 2 and free["programs"] == 2 + 2 * 5  # greedy, then n per task
    from opencodegen.quickstart.report import sizing_text
    assert late["sizing"]["seconds_left"] < 0 and free["sizing"]["seconds_left"] is None
    assert sizing_text(late["sizing"], 2).startswith("n = 2 is what fitted at the ")
    assert "within the 0 s the run's time goal left (at least 2, at most 5)" in sizing_text(late["sizing"], 2)


def test_humaneval_is_sized_after_every_other_evaluation_has_run(run):
    """HumanEval's sampled pass sizes itself to the time the run's goal leaves, so it runs after the evaluations whose
    time it cannot shrink; only time-to-target, which needs its result, comes after it."""
    order = list(json.loads((run[0] / "results.json").read_text())["stages"])
    evals = [name for name in order if name.startswith("eval-")]
    assert evals[-2:] == ["eval-humaneval", "eval-targets"]
    assert {"eval-bpb", "eval-mtpb", "eval-infill", "eval-synth"} <= set(evals[:-2])


def test_the_pilots_separate_a_passs_fixed_seconds_from_its_seconds_a_program(monkeypatch, tmp_path):
    """A pass here costs 2 s whatever its size plus 10 ms a program (a fake clock). The one-program pilot times the
    2 s, the pilot of 8 tasks x n_min the 10 ms, and n is what fits after the fixed part: about (62 - 2) / (0.01 x
    164) = 36. Charging the fixed part to the pilot's 160 programs would have read 22.5 ms a program and chosen 16 (here
    the least, 20)."""
    from opencodegen.quickstart import evaluation
    clock = [0.0]

    class FakeTime:
        perf_counter = staticmethod(lambda: clock[0])
        monotonic = staticmethod(lambda: clock[0])

    def fake_pass(model, tok, out, budget, n, limit=None, temperatures=None):
        programs = n * (limit or 164)
        clock[0] += 2.0 + 0.01 * programs
        return {"samples": programs, "pass_at_k": {}, "per_task": {}, "tasks_scored": limit or 164,
                "statuses": {}, "completions": {}}

    greedy = {"tasks_scored": 164, "samples": 164, "pass_at_k": {"pass@1": 0.0}, "per_task": {}, "statuses": {},
              "completions": {}}
    monkeypatch.setattr(evaluation, "time", FakeTime)
    monkeypatch.setattr(evaluation, "_load", lambda checkpoint: (None, None))
    monkeypatch.setattr(evaluation.he, "evaluate", lambda *a, **k: greedy)
    monkeypatch.setattr(evaluation, "sampled_pass", fake_pass)
    budget = Budget(humaneval_n=None, humaneval_n_min=20, humaneval_n_max=100, humaneval_seconds=1e6)
    pilots = 2.01 + 3.6  # the clock when n is chosen
    result = evaluation.humaneval(tmp_path / "ckpt", tmp_path / "he", budget, deadline=pilots + 62.0)
    assert result["sizing"]["fixed_seconds"] == pytest.approx(2.01)  # (its one program's 10 ms included)
    assert result["sizing"]["seconds_per_program"] == pytest.approx((3.6 - 2.01) / 160)
    assert result["sizing"]["seconds_left"] == pytest.approx(62.0)
    assert result["n"] == int((62.0 - 2.01) / ((3.6 - 2.01) / 160 * 164)) == 36


def test_training_keeps_to_its_budget_when_the_machine_slows_and_a_resumed_run_keeps_the_steps(run, recipe, tmp_path,
                                                                                                monkeypatch):
    """The plan predicted 10 s a step; the first stage took twice that, so the two stages left are refitted to the
    time left at that pace (hand-computed: 3 steps each instead of 8). A stage's steps are fixed when it starts: a
    rerun after the last stage is lost trains it again with the same 3 steps, whatever the clock says now."""
    import shutil

    from opencodegen.quickstart import train_schedule
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    from opencodegen.quickstart.train_plan import OVERHEAD_SHARE
    r = load_quickstart_recipe(recipe, run[0], ["nl", "multi", "mono"])
    r.stages = r.stages[:3]
    # 20 planned steps of 10 s: a wall budget of 200 / 0.9 s; nl's 4 steps are predicted at 44.4 s
    plan = {"steps": [4, 8, 8], "seconds_per_step": [10.0, 10.0, 10.0], "minutes": 200 / (1 - OVERHEAD_SHARE) / 60,
            "sft_caps": {}, "autocast": "fp32", "shape": None}
    nl, multi = 2 * 40 / (1 - OVERHEAD_SHARE), 2 * 30 / (1 - OVERHEAD_SHARE)  # both at pace 2

    class Clock:  # the wall seconds each stage takes: start, end per stage
        readings = iter([0.0, nl, 0.0, multi, 0.0, 1.0])

        @classmethod
        def perf_counter(cls):
            return next(cls.readings)

    monkeypatch.setattr(train_schedule, "time", Clock)
    out = tmp_path / "train"
    summary = train_schedule.train_on_schedule(r, out, plan)
    assert [s["steps"] for s in summary["stages"]] == [4, 3, 3]
    decided = summary["schedule"]["stages"]
    assert [decided[n]["planned_steps"] for n in ("nl", "multi", "mono")] == [4, 8, 8]
    assert decided["mono"]["seconds_left"] == pytest.approx(200 / (1 - OVERHEAD_SHARE) - nl - multi, abs=0.1)
    assert [s.steps for s in train_schedule.with_schedule(r, summary["schedule"]).stages] == [4, 3, 3]

    # the last stage is lost (its checkpoints and its time), and the machine is now fast: its steps stay 3
    shutil.rmtree(out / "stage-2-mono")
    schedule = json.loads((out / "schedule.json").read_text())
    del schedule["stages"]["mono"]["seconds"]
    (out / "schedule.json").write_text(json.dumps(schedule))
    Clock.readings = iter([0.0, 0.01])
    again = train_schedule.train_on_schedule(r, out, plan)
    assert [s["steps"] for s in again["stages"]] == [4, 3, 3]


def test_a_stage_whose_allowance_runs_out_is_recorded_where_it_stopped(run, recipe, tmp_path, monkeypatch):
    """The schedule gives nl an allowance of 0 s: it stops after one step, schedule.json records stopped_at 1, the
    stages after it train from there, and a rerun trains nothing again."""
    from opencodegen.quickstart import train_schedule
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    from opencodegen.quickstart.train_plan import OVERHEAD_SHARE
    r = load_quickstart_recipe(recipe, run[0], ["nl", "multi", "mono"])
    r.stages = r.stages[:3]
    # 1 s a step as planned, and a budget of exactly the 5 steps run: multi and mono keep their 2 steps
    plan = {"steps": [4, 2, 2], "seconds_per_step": [1.0, 1.0, 1.0], "minutes": 5 / (1 - OVERHEAD_SHARE) / 60,
            "sft_caps": {}, "autocast": "fp32", "shape": None}
    step = 1 / (1 - OVERHEAD_SHARE)
    scripted_clock(monkeypatch, train_schedule, [0.0, step, 0.0, 2 * step, 0.0, 2 * step])
    monkeypatch.setattr(train_schedule, "allowance", lambda plan, names, kinds, done, i, steps: 0.0 if i == 0 else None)
    out = tmp_path / "train"
    summary = train_schedule.train_on_schedule(r, out, plan)
    decided = summary["schedule"]["stages"]
    assert decided["nl"]["stopped_at"] == 1 and decided["nl"]["max_seconds"] == 0.0
    assert [s["steps"] for s in summary["stages"]] == [1, 2, 2]
    assert [s.steps for s in train_schedule.with_schedule(r, summary["schedule"]).stages] == [1, 2, 2]
    before = sorted(p.stat().st_mtime_ns for p in out.rglob("checkpoint-*/config.json"))
    again = train_schedule.train_on_schedule(r, out, plan)
    assert [s["steps"] for s in again["stages"]] == [1, 2, 2]
    assert sorted(p.stat().st_mtime_ns for p in out.rglob("checkpoint-*/config.json")) == before


def test_a_last_stage_with_a_constant_rate_trains_until_its_time_is_used(run, recipe, tmp_path, monkeypatch):
    """mono, the last stage here, has lr_end == lr. The plan times its step at 30 s, so the 60 s left fit 2 steps
    (1.8, and at least 2); it may run OPEN_ENDED_STEPS times that within 54 s (the time left but the overhead share),
    and a tiny model's steps take far less, so it runs them all. With no time left it stops after its first step,
    which schedule.json records as where it stopped."""
    from opencodegen.quickstart import train_schedule
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    from opencodegen.quickstart.train_plan import OVERHEAD_SHARE
    r = load_quickstart_recipe(recipe, run[0], ["nl", "multi", "mono"])
    r.stages = r.stages[:3]
    r.stages[2].optim = {"lr_end": r.optim.lr}
    step = 1 / (1 - OVERHEAD_SHARE)
    most = 2 * train_schedule.OPEN_ENDED_STEPS
    for left, max_seconds, steps_run in ((60.0, 54.0, most), (0.0, 0.0, 1)):
        plan = {"steps": [2, 2, 2], "seconds_per_step": [1.0, 1.0, 30.0], "minutes": (4 * step + left) / 60,
                "sft_caps": {}, "autocast": "fp32", "shape": None}
        scripted_clock(monkeypatch, train_schedule, [0.0, 2 * step, 0.0, 2 * step, 0.0, 1.0])  # nl, multi as planned
        summary = train_schedule.train_on_schedule(r, tmp_path / f"left-{left:g}", plan)
        mono = summary["schedule"]["stages"]["mono"]
        assert (mono["fitted_steps"], mono["steps"]) == (2, most)
        assert mono["max_seconds"] == pytest.approx(max_seconds, abs=0.1)
        assert summary["stages"][-1]["steps"] == steps_run == mono.get("stopped_at", most)


def scripted_clock(monkeypatch, module, readings: list[float]) -> None:
    """module.time.perf_counter returns `readings` in turn (the wall clock each stage and each plan reads)."""
    it = iter(readings)
    monkeypatch.setattr(module, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: next(it))}))


def three_stage_plan(shape: str, minutes: float, step_seconds: float = 1.0) -> dict:
    layers, width = (int(v) for v in shape.split("x"))
    return {"steps": [2, 2, 2], "seconds_per_step": [step_seconds] * 3, "minutes": minutes, "sft_caps": {},
            "autocast": "fp32", "shape": {"chosen": shape, "n_layer": layers, "n_embd": width}}


def test_a_first_stage_far_faster_than_planned_replans_and_starts_over_with_the_new_shape(run, recipe, tmp_path,
                                                                                           monkeypatch):
    """The plan (timed under load) predicted 1 s a step; the first stage ran at 5.6 times that speed, so the plan is made
    again for the time left. It chooses a larger shape: the first plan's training is set aside and training starts
    over with the new shape and schedule. A rerun trains nothing and does not plan again."""
    from opencodegen.model.config import ModelConfig
    from opencodegen.quickstart import train_plan, train_schedule
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    from opencodegen.quickstart.train_plan import OVERHEAD_SHARE
    base = load_quickstart_recipe(recipe, run[0], ["nl", "multi", "mono"])
    base.stages = base.stages[:3]
    budget = 8.0
    plan = three_stage_plan("1x64", budget / 60)
    step = 1 / (1 - OVERHEAD_SHARE)  # a step's predicted wall time
    nl = 0.4  # its two steps were predicted to take 2.22 s: pace 0.18
    asked = []

    def replan(minutes: float, calibration: float) -> dict:
        asked.append((minutes, calibration))
        return three_stage_plan("2x64", minutes)

    # a probe of the first stage now takes 0.36 s a step; the stage itself took 0.4 s * 0.9 / 2 = 0.18: scale 0.5
    monkeypatch.setattr(train_plan, "seconds_per_step", lambda r, i: 0.36)

    # nl (fast), the new plan (3 s), then the new plan's three stages at its pace: (8 - 0.4 - 3) s is 4.1 steps of
    # 1.11 s, so each stage gets 2 (the least a stage gets)
    scripted_clock(monkeypatch, train_schedule, [0.0, nl, 10.0, 13.0] + [0.0, 2 * step] * 3)
    out = tmp_path / "train"
    summary = train_schedule.train_on_schedule(base, out, plan, replan)
    assert asked == [(pytest.approx((budget - nl) / 60), pytest.approx(0.5))]
    replanned = summary["schedule"]["replanned"]
    assert (replanned["pace"], replanned["calibration"], replanned["first_shape"], replanned["shape"],
            replanned["set_aside"]) == (pytest.approx(0.18), 0.5, "1x64", "2x64", True)
    assert summary["schedule"]["budget_seconds"] == pytest.approx(budget - nl - 3.0)
    assert summary["plan"]["shape"]["chosen"] == "2x64"
    final = Path(summary["final_checkpoint"])
    assert final.parent.name == "stage-2-mono" and ModelConfig.from_file(final / "config.json").n_layer == 2
    old = out / train_schedule.REPLACED
    assert ModelConfig.from_file(old / "stage-0-nl" / "checkpoint-2" / "config.json").n_layer == 1
    assert not (old / "stage-1-multi").exists()
    stages = [json.loads(line)["stage"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert stages.count("nl") == summary["schedule"]["stages"]["nl"]["steps"]  # not the first plan's steps as well

    def no_replan(minutes, calibration):
        raise AssertionError("planned again")

    again = train_schedule.train_on_schedule(base, out, plan, no_replan)
    assert again["plan"]["shape"]["chosen"] == "2x64" and again["final_checkpoint"] == summary["final_checkpoint"]


def test_a_replan_that_keeps_the_shape_goes_on_without_starting_over(run, recipe, tmp_path, monkeypatch):
    from opencodegen.quickstart import train_plan, train_schedule
    from opencodegen.quickstart.pipeline import load_quickstart_recipe
    base = load_quickstart_recipe(recipe, run[0], ["nl", "multi", "mono"])
    base.stages = base.stages[:3]
    plan = three_stage_plan("1x64", 2.0, 20.0)  # 120 s; stages long enough to set the refit's pace
    nl = 18.0  # its two steps were predicted to take 44.4 s: pace 0.405
    scripted_clock(monkeypatch, train_schedule, [0.0, nl, 0.0, 40.0, 0.0, 27.0, 0.0, 1.0])  # multi at that pace
    out = tmp_path / "train"
    # the machine is quiet now: a probe takes what the stage took (18 s * 0.9 / 2 a step), so the scale is 1
    monkeypatch.setattr(train_plan, "seconds_per_step", lambda r, i: 8.1)
    summary = train_schedule.train_on_schedule(base, out, plan,
                                                lambda minutes, c: three_stage_plan("1x64", minutes, 20.0))
    assert summary["schedule"]["replanned"] == {"pace": 0.405, "calibration": 1.0, "seconds": 40.0,
                                                "first_shape": "1x64", "shape": "1x64", "seconds_before": 58.0}
    assert not (out / train_schedule.REPLACED).exists()
    # the stages left share the 120 s less the first stage's and the new plan's, at the first stage's pace:
    # (120 - 18 - 40) s / (0.405 * 20 / 0.9 s a step) = 6.9 steps, 3.4 each: multi 3; mono then 35 s / 9 s = 3.9
    assert [s["steps"] for s in summary["stages"]] == [2, 3, 4]


def test_a_run_stopped_while_setting_aside_moves_the_rest_when_resumed(tmp_path):
    from opencodegen.quickstart import train_schedule
    out = tmp_path / "train"
    (out / train_schedule.REPLACED / "stage-0-nl").mkdir(parents=True)  # moved before the stop
    (out / "metrics.jsonl").write_text("{}\n")  # not yet moved
    schedule = {"budget_seconds": 1.0, "stages": {}, "replanned": {"plan": {}, "set_aside": False}}
    (out / train_schedule.SCHEDULE).write_text(json.dumps(schedule))
    train_schedule._set_aside(out, schedule)
    assert sorted(p.name for p in out.iterdir()) == [train_schedule.REPLACED, train_schedule.SCHEDULE]
    assert (out / train_schedule.REPLACED / "metrics.jsonl").is_file()
    assert json.loads((out / train_schedule.SCHEDULE).read_text())["replanned"]["set_aside"] is True


def test_the_report_says_when_and_why_the_plan_was_made_again(run):
    results = json.loads((run[0] / "results.json").read_text())
    results["train_plan"] = {"minutes": 12, "autocast": "bf16", "foreign_cpu_share": 0.4, "shape": None}
    record = {"pace": 0.5, "calibration": 0.62, "seconds": 41.0, "first_shape": "2x128", "shape": "3x192",
              "seconds_before": 57.0}
    results["train_schedule"] = {"stages": {}, "replanned": {**record, "plan": {}, "set_aside": True}}
    assert ("The first stage ran at 2.0 times the speed the plan had measured, so the plan was made again for the "
            "time left (41 s; its step times scaled by 0.62, the first stage's seconds a step over a probe's just "
            "before): it chose 3x192 instead of 2x128, and training started over (57 s of the budget had gone into "
            "the first plan's training and the new plan).") in report_text(results)
    assert "Other processes used 40% of the cores while the plan timed its steps" in report_text(results)
    results["train_schedule"]["replanned"] = {**record, "shape": "2x128"}
    assert "it chose the same shape (2x128), and training went on." in report_text(results)


def test_the_report_says_when_the_time_goal_shortened_training(run):
    results = json.loads((run[0] / "results.json").read_text())
    results["train_plan"] = {"minutes": 6.47, "autocast": "fp32", "foreign_cpu_share": 0.0, "shape": None,
                             "shortened_from": 9.0}
    assert "Steps were fitted to a 6.47-minute training budget" in report_text(results)
    assert "The budget was 9 minutes, shortened by the run's time goal" in report_text(results)
    results["train_plan"]["shortened_from"] = None
    assert "shortened" not in report_text(results)


def test_the_report_says_at_which_shapes_the_stages_were_timed(run):
    results = json.loads((run[0] / "results.json").read_text())
    shape = {"chosen": "3x192", "params": 2.1e6, "rule": "the rule", "candidates": []}
    results["train_plan"] = {"minutes": 9.0, "autocast": "fp32", "foreign_cpu_share": 0.0, "shape": shape,
                             "shortened_from": None, "stages_timed_at": ["2x128", "3x192"]}
    assert "Every stage's step was timed at 2x128, then 3x192" in report_text(results)


def test_the_schedule_table_shows_where_a_stage_stopped(run):
    """An open-ended stage is given more steps than it may run; the table shows the step its time stopped it at."""
    from opencodegen.quickstart.report import build_blocks
    results = json.loads((run[0] / "results.json").read_text())
    results["train_plan"] = {"minutes": 9.0, "autocast": "fp32", "foreign_cpu_share": 0.0, "shape": None}
    results["train_schedule"] = {"stages": {
        "mono": {"steps": 40, "planned_steps": 40, "seconds_left": 300.0, "seconds": 200.0},
        "rl": {"steps": 30, "planned_steps": 18, "fitted_steps": 15, "stopped_at": 10, "seconds_left": 53.0,
               "seconds": 54.0}}}
    tables = [b[1] for b in build_blocks(results) if b[0] == "table" and b[1][0][:3] == ["stage", "planned steps",
                                                                                         "steps run"]]
    assert [row[:3] for row in tables[0][1]] == [["mono", "40", "40"], ["rl", "18", "10"]]


def report_text(results: dict) -> str:
    """The report's paragraphs, as one string."""
    from opencodegen.quickstart.report import build_blocks
    return " ".join(str(b[1]) for b in build_blocks(results) if b[0] == "p")
