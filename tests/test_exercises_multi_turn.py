"""Multi-turn exercises: rows whose prompts are exactly what the multi-turn samplers send, programs kept only if they
run, every candidate accounted for, and decontamination against MTPB-shaped benchmarks by their instructions."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from opencodegen.eval import mtpb
from opencodegen.exercises.build import BuildOptions, build
from opencodegen.exercises.multi_turn import Program, programs
from opencodegen.exercises.records import read_exercises
from opencodegen.prompt_format import SYNTH_PREAMBLE

N = 40


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("multi_turn")
    return out, build(BuildOptions(out=out, multi_turn=N, seed=3, workers=1))


def test_rows_are_the_prompts_the_mtpb_sampler_sends():
    prog = Program("p", [("Set n to 4.", "n = 4"), ("Add 2 to n.", "n = n + 2"), ("Print n.", "print(n)")])
    rows = prog.rows()
    problem = mtpb.Problem(1, "p", "math", "", tuple(t for t, _ in prog.turns), ({},), (6,), 64)
    # the model wrote each turn's solution (ending in a newline, as trained); the sampler builds the next prompt
    written = [r.solution for r in rows[:-1]]
    for i, row in enumerate(rows[:-1]):
        assert row.prompt == mtpb.multi_turn_program(problem, 0, written[:i]) + f"# {prog.turns[i][0]}\n"
        assert row.solution == prog.turns[i][1] + "\n" and row.tests == "" and row.meta["sft_only"]
    assert rows[0].prompt == SYNTH_PREAMBLE + "# Set n to 4.\n"
    assert rows[2].prompt == SYNTH_PREAMBLE + "# Set n to 4.\nn = 4\n\n# Add 2 to n.\nn = n + 2\n\n# Print n.\n"
    single = rows[-1]
    assert single.prompt == mtpb.single_turn_prompt(problem, 0) and single.solution == "n = 4\nn = n + 2\nprint(n)\n"


def test_every_program_is_kept_or_rejected_and_the_kept_ones_print_what_they_recorded(built):
    out, stats = built
    s = stats["sources"]["multi_turn"]
    assert s["kept"] == N and s["candidates"] == s["kept"] + sum(s["rejected"].values()) and stats["accounted"]
    rows = read_exercises(out)
    by_program = Counter(r.id.rsplit("/", 1)[0] for r in rows)
    assert len(by_program) == N and s["rows"] == len(rows) == sum(by_program.values())
    singles = [r for r in rows if r.meta["mode"] == "single"]
    assert len(singles) == N
    for r in singles:
        assert by_program[r.id.rsplit("/", 1)[0]] == r.meta["turns"] + 1
        # the code alone, outside the sandbox (our own generated programs), prints the value the build recorded
        printed = subprocess.run([sys.executable, "-c", r.solution], capture_output=True, text=True, timeout=30)
        assert printed.returncode == 0
        if len(r.meta["output"]) < 200:  # longer ones are recorded cut
            assert printed.stdout.rstrip("\n").splitlines()[-1] == str(ast.literal_eval(r.meta["output"]))
    rejects = [json.loads(line) for line in (out / "rejects" / "multi_turn.jsonl").read_text().splitlines()]
    assert Counter(r["reason"] for r in rejects) == Counter(s["rejected"])


def test_the_same_seed_gives_the_same_programs():
    a, b = programs(5), programs(5)
    assert [next(a).turns for _ in range(20)] == [next(b).turns for _ in range(20)]


def test_a_program_whose_instructions_an_mtpb_problem_has_is_removed(tmp_path):
    stream = programs(11)
    planted = next(stream)
    bench = tmp_path / "planted_mtpb.jsonl"
    bench.write_text(json.dumps({"id": 1, "name": "planted", "description": "a planted problem",
                                 "prompts": [t for t, _ in planted.turns], "inputs": [{}], "outputs": [0]}) + "\n")
    stats = build(BuildOptions(out=tmp_path / "out", multi_turn=3, seed=11, workers=1, humaneval=False, mtpb=False,
                               benchmark_files=[str(bench)]))
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects" / "multi_turn.jsonl").read_text().splitlines()]
    assert any(r["id"] == planted.id and r["reason"] == "contaminated" and "text_ngram" in r["detail"]
               for r in rejects), rejects
    assert stats["decontamination"]["removed"]["planted_mtpb"]["text_ngram"] >= 1
