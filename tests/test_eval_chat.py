"""`ocg eval humaneval|mbpp --chat` against recorded chat replies in vLLM's shape: the request is the conversation
on /v1/chat/completions (the problem's prompt fenced in the user message, no completion stop strings), the program
the sanitizer cuts from each reply is the one written by hand here, and the verdicts follow: a correct fenced answer
passes with its prose around it, a reply with only prose fails with the reason, and replies that try to forge a pass
fail in the judge. Interrupted or repeated runs come from the journal, and samples.jsonl scores again the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endpoint_fixtures import FakeServer, llamacpp_chat_body, vllm_chat_body
from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.eval import humaneval, instruct, mbpp
from opencodegen.eval.endpoint import Endpoint, Request, chat_url, completions_url
from opencodegen.sampling import SamplingParams

DATA = Path(__file__).parent / "data"
IDS = [f"HumanEval/{i}" for i in range(5)]

# Replies as an instruct model writes them, one per task, and the program each must become.
REPLIES = {
    "HumanEval/0": None,  # the problem's prompt + its canonical solution, fenced, with prose around (built below)
    "HumanEval/1": "I can't write this one, but a stack that tracks the depth of the parentheses would split the "
                   "groups.\nEach group ends when the depth returns to zero.",
    "HumanEval/2": "Sure! The decimal part is what is left after removing the integer part.\n\n```python\nimport math"
                   "\n\n\ndef truncate_number(number: float) -> float:\n    return number - math.floor(number)\n\n\n"
                   "print(truncate_number(3.5))\nassert truncate_number(1.25) == 0.25\n```\n\nFor example "
                   "`truncate_number(3.5)` returns `0.5`.",
    # forgeries: an answer equal to everything, and a process that leaves before the tests can fail it
    "HumanEval/3": "```python\nclass Yes:\n    def __eq__(self, other):\n        return True\n\n\n"
                   "def below_zero(operations):\n    return Yes()\n\n\ndef check(candidate):\n    pass\n```",
    "HumanEval/4": "```python\nimport os\n\n\ndef mean_absolute_deviation(numbers):\n    os._exit(0)\n"
                   "    return 0.0\n```",
}
PROGRAMS = {
    "HumanEval/1": "",
    "HumanEval/2": "import math\ndef truncate_number(number: float) -> float:\n    return number - math.floor(number)",
    "HumanEval/3": "class Yes:\n    def __eq__(self, other):\n        return True\ndef below_zero(operations):\n"
                   "    return Yes()",
    "HumanEval/4": "import os\ndef mean_absolute_deviation(numbers):\n    os._exit(0)\n    return 0.0",
}
PASSES = {"HumanEval/0": True, "HumanEval/1": False, "HumanEval/2": True, "HumanEval/3": False,
          "HumanEval/4": False}


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems()


def replies(problems) -> dict[str, str]:
    p = problems["HumanEval/0"]
    fenced = ("Here is a solution that compares every pair:\n\n```python\n" + p["prompt"] + p["canonical_solution"]
              + "```\n\nIt runs in O(n^2) time.")
    return {**REPLIES, "HumanEval/0": fenced}


def chat_server(problems, answers: dict[str, str | None]) -> FakeServer:
    by_message = {instruct.user_message(problems[t]["prompt"]): t for t in answers}
    return FakeServer(lambda body: (200, vllm_chat_body([answers[by_message[body["messages"][-1]["content"]]]]
                                                        * body["n"])))


def endpoint(server: FakeServer, **kw) -> Endpoint:
    return Endpoint("http://fake:8000/v1", transport=server.transport, backoff=0.0, **kw)


def test_chat_urls_come_from_any_form_of_the_address():
    for url in ("http://h:1", "http://h:1/v1/", "http://h:1/v1/completions", "http://h:1/v1/chat/completions"):
        assert (completions_url(url), chat_url(url)) == ("http://h:1/v1/completions", "http://h:1/v1/chat/completions")


def test_the_user_message_fences_the_problems_prompt(problems):
    message = instruct.user_message(problems["HumanEval/2"]["prompt"])
    assert message == (instruct.INSTRUCTION + "\n```python\ndef truncate_number(number: float) -> float:\n"
                       + problems["HumanEval/2"]["prompt"].strip().split("\n", 1)[1] + "\n```\n")
    assert instruct.conversation("x", "Be brief.") == [{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": instruct.user_message("x")}]


def test_recorded_replies_are_cut_to_programs_and_judged(problems, tmp_path):
    answers = replies(problems)
    server = chat_server(problems, answers)
    params = SamplingParams(max_new_tokens=256, temperature=0.0, stop=("\n### End",), seed=3)
    with endpoint(server, model_name="qwen-instruct") as ep:
        summary = humaneval.evaluate(tmp_path, endpoint=ep, limit=5, params=params, ks=(1,), chat=True)
    assert set(server.paths) == {"/v1/chat/completions"} and len(server.bodies) == 5
    for body in server.bodies:  # the conversation, and only the user's stop strings (HumanEval's cut programs)
        assert set(body) == {"messages", "max_tokens", "temperature", "top_p", "n", "model", "stop", "seed"}
        assert [m["role"] for m in body["messages"]] == ["user"] and body["stop"] == ["\n### End"]
    samples = {s["task_id"]: s for s in map(json.loads, open(tmp_path / "samples.jsonl"))}
    assert {t: s["reply"] for t, s in samples.items()} == answers
    assert {t: samples[t]["completion"] for t in PROGRAMS} == PROGRAMS
    p0 = problems["HumanEval/0"]
    # the import, then the function as written (the sanitizer joins the kept statements with one newline)
    assert samples["HumanEval/0"]["completion"] == (p0["prompt"] + p0["canonical_solution"]).strip().replace(
        "List\n\n\ndef", "List\ndef")
    assert all(s["whole"] for s in samples.values())
    results = {r["task_id"]: r for r in map(json.loads, open(tmp_path / "results.jsonl"))}
    assert {t: r["passed"] for t, r in results.items()} == PASSES
    assert results["HumanEval/1"]["reason"] == instruct.NO_PROGRAM
    assert summary["pass_at_k"]["pass@1"] == pytest.approx(0.4)
    assert summary["prompting"] == {"mode": "chat", "instruction": instruct.INSTRUCTION, "system": None,
                                    "replies": 5, "without_program": 1, "cut_by_sanitizer": 5,
                                    "stop": ["\n### End"]}
    assert summary["completions"]["empty"] == 0  # the replies are counted, not the programs cut from them
    assert "Prompting: chat" in (tmp_path / "report.md").read_text()
    # A rerun asks nothing (the journal answers), and the samples file scores the same without a model.
    with endpoint(server, model_name="qwen-instruct") as ep:
        again = humaneval.evaluate(tmp_path, endpoint=ep, limit=5, params=params, ks=(1,), chat=True)
    assert len(server.bodies) == 5 and again["per_task"] == summary["per_task"]
    rescored = humaneval.evaluate(tmp_path / "rescored", samples_path=tmp_path / "samples.jsonl", ks=(1,))
    assert rescored["per_task"] == summary["per_task"]


def test_a_system_message_goes_first_and_a_null_content_is_no_program(problems, tmp_path):
    server = chat_server(problems, {"HumanEval/0": None})
    with endpoint(server) as ep:
        summary = humaneval.evaluate(tmp_path, endpoint=ep, limit=1, params=SamplingParams(max_new_tokens=32),
                                     ks=(1,), chat=True, system="You write Python.")
    assert server.bodies[0]["messages"][0] == {"role": "system", "content": "You write Python."}
    assert summary["prompting"]["without_program"] == 1 and summary["pass_at_k"]["pass@1"] == 0.0
    assert summary["completions"]["empty"] == 1


def test_mbpp_chat_asks_zero_shot_and_keeps_every_function_the_asserts_call(tmp_path):
    data = DATA / "mbpp_objects.jsonl"
    problems = mbpp.select(mbpp.load_problems(data), "test")
    first = next(iter(problems.values()))
    assert set(mbpp.tested_functions(first)) == {"longest_chain", "Pair"}
    code = {t: p["code"] for t, p in problems.items()}

    def respond(body):
        message = body["messages"][0]["content"]
        task = next(t for t, p in problems.items() if instruct.user_message(mbpp.chat_task(p)) == message)
        return 200, vllm_chat_body([f"Here you go:\n```python\n{code[task]}\n\n# example\nprint(1)\n```\nDone."])

    server = FakeServer(respond)
    with endpoint(server) as ep:
        summary = mbpp.evaluate(tmp_path, data=data, endpoint=ep, params=SamplingParams(max_new_tokens=64),
                                ks=(1,), chat=True, workers=1)
    assert server.bodies[0]["messages"][0]["content"] == instruct.user_message(
        '"""\n' + first["text"] + "\n" + first["tests"][0] + '\n"""\n')
    assert "stop" not in server.bodies[0]  # no [DONE]: a chat reply is not a 3-shot completion
    assert summary["shots"] == 0 and summary["pass_at_k"]["pass@1"] == 1.0
    samples = {s["task_id"]: s["completion"] for s in map(json.loads, open(tmp_path / "samples.jsonl"))}
    # Pair kept beside longest_chain, the example call dropped; the kept statements are joined by one newline
    assert samples == {t: "\n".join(line for line in c.split("\n") if line.strip()) for t, c in code.items()}


def test_chat_needs_a_model_or_an_endpoint(tmp_path):
    with pytest.raises(UserError, match="--chat asks a model"):
        humaneval.evaluate(tmp_path, reference=True, chat=True)
    assert main(["eval", "humaneval", "--reference", "--chat", "--out", str(tmp_path)]) == 2
    assert main(["eval", "mbpp", "--reference", "--system", "x", "--data", str(DATA / "mbpp_mini.jsonl"),
                 "--out", str(tmp_path)]) == 2


def test_chat_bodies_and_their_journal_keys_differ_from_completions():
    server = FakeServer(lambda body: (200, vllm_chat_body(["a"])))
    with endpoint(server) as ep:
        chat = Request("", 8, 0.0, 1.0, messages=(("user", "hi"),))
        assert ep.body(chat) == {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
                                 "temperature": 0.0, "top_p": 1.0, "n": 1}
        assert ep.key(chat) != ep.key(Request("hi", 8, 0.0, 1.0))
        assert ep.complete([chat])[0][0].text == "a"


def test_evalplus_chat_scores_base_and_plus_on_the_programs_cut_from_replies(tmp_path):
    from opencodegen.eval import evalplus
    data = DATA / "humanevalplus_mini.jsonl"
    problems = evalplus.load_problems(data)
    first, second = list(problems)[:2]
    answers = {first: "```python\n" + problems[first]["prompt"] + problems[first]["canonical_solution"] + "```\n"
                      "It adds them up.",
               second: "The mean is the sum divided by the count."}
    server = chat_server(problems, answers)
    with endpoint(server) as ep:
        summary = evalplus.evaluate(tmp_path, data=data, endpoint=ep, limit=2, params=SamplingParams(),
                                    ks=(1,), chat=True, workers=1)
    assert "stop" not in server.bodies[0]  # evalplus's completion stops ("\ndef ", ...) would cut the program
    assert summary["per_task"] == {first: {"n": 1, "base_correct": 1, "plus_correct": 1},
                                   second: {"n": 1, "base_correct": 0, "plus_correct": 0}}
    results = {r["task_id"]: r for r in map(json.loads, open(tmp_path / "results.jsonl"))}
    assert results[second]["reason"] == instruct.NO_PROGRAM and summary["prompting"]["without_program"] == 1


def test_llamacpp_answers_one_chat_choice_and_is_asked_for_the_rest(problems, tmp_path):
    p = problems["HumanEval/2"]
    answers = iter(["```python\n" + p["prompt"] + p["canonical_solution"] + "```", "No code, sorry."])
    server = FakeServer(lambda body: (200, llamacpp_chat_body(next(answers))))
    with endpoint(server) as ep:
        summary = humaneval.evaluate(tmp_path, endpoint=ep, n=2, ks=(1, 2), chat=True,
                                     params=SamplingParams(max_new_tokens=64, temperature=0.8, seed=1),
                                     data=_one_problem(tmp_path, p))
    assert [(b["n"], b["seed"]) for b in server.bodies] == [(2, 1), (1, 2)]  # the top-up asks for what is missing
    assert summary["per_task"]["HumanEval/2"]["correct"] == 1 and summary["prompting"]["without_program"] == 1


def _one_problem(tmp_path, problem: dict) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(problem) + "\n")
    return path
