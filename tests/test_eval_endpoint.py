"""`ocg eval ... --endpoint`: the client against response bodies in vLLM's and llama.cpp's shapes (retries, errors,
top-ups for servers that ignore n, FIM through FIM tokens), resuming from the journal without asking again, and
whole evaluations whose verdicts depend on what the server said (canonical solutions from the "server" pass, wrong
ones fail; MTPB turns see the previous turns' answers)."""

from __future__ import annotations

import json

import pytest

from endpoint_fixtures import FakeServer, llamacpp_body, llamacpp_error, vllm_body, vllm_error
from opencodegen.errors import UserError
from opencodegen.eval import humaneval, infill, mtpb
from opencodegen.eval.endpoint import JOURNAL, Endpoint, Request, completions_url, cut_at_stops
from opencodegen.sampling import HUMANEVAL_STOP, SamplingParams


def endpoint(server: FakeServer, **kw) -> Endpoint:
    return Endpoint("http://fake:8000/v1", transport=server.transport, backoff=0.0, **kw)


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems()


def test_urls_are_completed_to_v1_completions():
    assert completions_url("http://h:1") == "http://h:1/v1/completions"
    assert completions_url("http://h:1/v1/") == "http://h:1/v1/completions"
    assert completions_url("https://h/v1/completions") == "https://h/v1/completions"
    with pytest.raises(UserError, match="--endpoint must be an http"):
        completions_url("localhost:8000")


def test_vllm_body_gives_n_choices_and_the_request_carries_the_run(tmp_path):
    server = FakeServer(lambda body: (200, vllm_body([f"x{i}" for i in range(body["n"])], ["stop", "length", "stop"])))
    with endpoint(server, model_name="qwen", api_key="k") as ep:
        [choices] = ep.complete([Request("def f():\n", 32, 0.8, 0.95, n=3, stop=("\ndef",), seed=5)])
    assert [c.text for c in choices] == ["x0", "x1", "x2"]
    assert [c.finish_reason for c in choices] == ["stop", "length", "stop"]
    assert all(c.n_tokens is None for c in choices)  # usage counts all three together
    assert server.bodies == [{"prompt": "def f():\n", "max_tokens": 32, "temperature": 0.8, "top_p": 0.95, "n": 3,
                              "model": "qwen", "stop": ["\ndef"], "seed": 5}]


def test_llamacpp_answers_one_choice_and_is_asked_for_the_rest():
    server = FakeServer(lambda body: (200, llamacpp_body(f"c{len(server.bodies)}")))
    with endpoint(server) as ep:
        [choices] = ep.complete([Request("p", 8, 0.8, 0.95, n=3, seed=1)])
    assert [c.text for c in choices] == ["c1", "c2", "c3"]
    # the top-ups ask for what is missing, each with a new seed so the draws differ
    assert [(b["n"], b["seed"]) for b in server.bodies] == [(3, 1), (2, 2), (1, 3)]
    with endpoint(FakeServer(lambda body: (200, llamacpp_body("one")))) as ep:
        [[c]] = ep.complete([Request("p", 8, 0.0, 1.0)])
    assert c.n_tokens == 9 and c.finish_reason == "stop"  # one choice: usage is its own token count


def test_429_and_5xx_are_retried_with_retry_after_and_then_succeed():
    answers = iter([(429, llamacpp_error("busy", 429), {"Retry-After": "0"}),
                    (503, vllm_error("loading", 503)), (500, {"detail": "oops"}), (200, vllm_body(["ok"]))])
    server = FakeServer(lambda body: next(answers))
    with endpoint(server, retries=3) as ep:
        assert ep.complete([Request("p", 8, 0.0, 1.0)])[0][0].text == "ok"
    assert len(server.bodies) == 4


def test_retries_run_out_with_the_last_problem_named():
    server = FakeServer(lambda body: (502, {"error": {"message": "bad gateway"}}))
    with endpoint(server, retries=2) as ep, pytest.raises(UserError, match="failed 3 times; last: 502 bad gateway"):
        ep.complete([Request("p", 8, 0.0, 1.0)])
    assert len(server.bodies) == 3


def test_4xx_is_one_clear_error_with_the_servers_words_and_no_retry():
    server = FakeServer(lambda body: (400, vllm_error("This model's maximum context length is 2048 tokens")))
    with endpoint(server) as ep, pytest.raises(UserError, match="refused the request: 400 This model's maximum"):
        ep.complete([Request("p", 8, 0.0, 1.0)])
    assert len(server.bodies) == 1
    server = FakeServer(lambda body: (401, llamacpp_error("Invalid API Key", 401)))
    with endpoint(server) as ep, pytest.raises(UserError, match="401 Invalid API Key"):
        ep.complete([Request("p", 8, 0.0, 1.0)])


def test_a_server_without_suffix_points_to_fim_format(problems, tmp_path):
    server = FakeServer(lambda body: (400, vllm_error("suffix is not currently supported")))
    with endpoint(server) as ep, pytest.raises(UserError, match="give --fim-format"):
        infill.evaluate(tmp_path, endpoint=ep, modes=("single-line",), limit=1, params=SamplingParams(max_new_tokens=8))


def test_infill_through_fim_tokens_scores_what_the_server_wrote(problems, tmp_path):
    tasks = {(t.prefix, t.suffix): t for t in infill.spread(infill.build_tasks(problems, "multi-line"), 12)}

    def respond(body):
        assert "suffix" not in body and body["prompt"].startswith("<fim_prefix>")
        prefix, suffix = body["prompt"][len("<fim_prefix>"):-len("<fim_middle>")].split("<fim_suffix>")
        task = tasks[(prefix, suffix)]
        # half the tasks get their true middle (+ an end token the server printed), the rest a wrong one
        text = task.middle + "<|endoftext|>junk" if len(server.bodies) % 2 else "    return None\n"
        return 200, vllm_body([text])

    server = FakeServer(respond)
    with endpoint(server, concurrency=1) as ep:
        summary = infill.evaluate(tmp_path, endpoint=ep, modes=("multi-line",), limit=12, fim_format="starcoder",
                                  params=SamplingParams(max_new_tokens=64), ks=(1,))
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    samples = {s["task_id"]: s["completion"] for s in map(json.loads, open(tmp_path / "samples.jsonl"))}
    assert len(results) == 12 and all("<|endoftext|>" not in c for c in samples.values())
    right = [r for r in results if samples[r["task_id"]].strip() == tasks_by_id(tasks)[r["task_id"]].middle.strip()]
    assert len(right) == 6 and all(r["passed"] and r["exact_match"] for r in right)
    assert summary["by_mode"]["multi-line"]["exact_match"] == 0.5


def tasks_by_id(tasks: dict) -> dict:
    return {t.task_id: t for t in tasks.values()}


def test_humaneval_from_an_endpoint_scores_and_resumes_without_asking_again(problems, tmp_path):
    ids = list(problems)[:4]
    by_prompt = {problems[t]["prompt"]: t for t in ids}
    wrong = {ids[1]}
    calls, interrupted = [], []

    def respond(body):
        task = by_prompt[body["prompt"]]
        calls.append(task)
        if task == ids[2] and not interrupted:
            interrupted.append(task)
            return 400, vllm_error("stop here")  # the first run dies at the third task
        text = "    return None\n" if task in wrong else problems[task]["canonical_solution"]
        return 200, vllm_body([text + "\ndef extra():\n    pass\n"] * body["n"])

    server = FakeServer(respond)
    params = SamplingParams(max_new_tokens=64, temperature=0.8)
    with endpoint(server, concurrency=1) as ep, pytest.raises(UserError, match="stop here"):
        humaneval.evaluate(tmp_path, endpoint=ep, limit=4, n=2, params=params, ks=(1, 2))
    # tasks 0 and 1 were answered (task 3 too if the worker took it before the error stopped the run)
    answered = [c for c in calls if c != ids[2]]
    assert answered[:2] == ids[:2] and len(open(tmp_path / JOURNAL).readlines()) == len(answered)
    assert not (tmp_path / "summary.json").exists()
    calls.clear()
    with endpoint(server, concurrency=2) as ep:
        summary = humaneval.evaluate(tmp_path, endpoint=ep, limit=4, n=2, params=params, ks=(1, 2))
    assert sorted(calls) == sorted(set(ids) - set(answered))  # the answered tasks came from the journal
    assert all(b["stop"] == list(HUMANEVAL_STOP) and b["n"] == 2 for b in server.bodies)
    assert summary["samples"] == 8 and summary["pass_at_k"]["pass@1"] == 0.75
    assert {t: v["correct"] for t, v in summary["per_task"].items()} == {t: 0 if t in wrong else 2 for t in ids}
    samples = [json.loads(line) for line in open(tmp_path / "samples.jsonl")]
    assert all("extra" not in s["completion"] for s in samples)  # cut at "\ndef" on our side too


def test_a_torn_last_journal_line_is_asked_again(tmp_path):
    server = FakeServer(lambda body: (200, vllm_body(["a"])))
    with endpoint(server) as ep:
        ep.resume_from(tmp_path)
        ep.complete([Request("p", 8, 0.0, 1.0)])
    with open(tmp_path / JOURNAL, "a") as f:
        f.write('{"key": "abc", "choi')
    with endpoint(server) as ep:
        ep.resume_from(tmp_path)
        assert ep.complete([Request("p", 8, 0.0, 1.0), Request("q", 8, 0.0, 1.0)])[0][0].text == "a"
    assert [b["prompt"] for b in server.bodies] == ["p", "q"]


def test_mtpb_turns_carry_the_servers_earlier_answers(tmp_path):
    problems = mtpb.load_problems()[:3]
    solutions = {(p.id, case, i): code.format(**p.inputs[case]) for p in problems for case in range(len(p.inputs))
                 for i, code in enumerate(p.solution)}
    # The server runs on past the turn; the official truncation keeps the code before the next comment.
    answers = {key: code + "\n# next turn\nprint('junk')" for key, code in solutions.items()}
    prompts = []

    def respond(body):
        prompts.append(body["prompt"])
        for (pid, case, i), answer in answers.items():
            p = next(x for x in problems if x.id == pid)
            history = [mtpb.truncate(answers[(pid, case, k)]) for k in range(i)]
            if body["prompt"] == mtpb.multi_turn_program(p, case, history) + mtpb.turn_prompt(p.turns(case)[i]):
                return 200, llamacpp_body(answer)
        return 400, llamacpp_error("unexpected prompt")

    with endpoint(FakeServer(respond)) as ep:
        summary = mtpb.evaluate(tmp_path, endpoint=ep, limit=3, params=SamplingParams(temperature=0.2, top_p=0.95))
    # every turn was asked once (cases with equal inputs make equal requests, answered once from the journal)
    expected = {mtpb.multi_turn_program(p, case, [mtpb.truncate(answers[(p.id, case, k)]) for k in range(i)])
                + mtpb.turn_prompt(p.turns(case)[i]) for (pid, case, i) in answers for p in problems if p.id == pid}
    assert sorted(prompts) == sorted(expected) and summary["pass_rate"] == 1.0
    assert summary["samples"] == sum(len(p.inputs) for p in problems)


def test_stops_are_applied_client_side():
    assert cut_at_stops("a\nb\ndef g", ("\ndef", "\nclass")) == "a\nb"
    assert cut_at_stops("abc", ()) == "abc"
