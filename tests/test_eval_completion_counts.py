"""Every evaluation says how many completions were empty and how many stopped at their first token (the failure of
issue 22: a first token "\\ndef" cut by the HumanEval stops), in summary.json, report.md and the CLI's output: hand-
built samples with known counts through HumanEval, MTPB and FIM scoring, and generate()'s own finish fields."""

from __future__ import annotations

import json

import torch

from opencodegen.eval import humaneval, infill, mtpb
from opencodegen.eval.report import completion_counts, completion_counts_text
from opencodegen.eval.sandbox import ExecResult
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate

# (completion, finish_reason, generated tokens): empty after a first-token stop, empty after three tokens of
# whitespace, an ordinary one, an empty one cut by max_tokens at its first token (not a stop), one read from a file.
ROWS = [("", "stop", 1), ("  \n", "stop", 3), ("    return 1\n", "length", 8), ("", "length", 1),
        ("    pass\n", None, None)]


def test_counts_and_their_sentence():
    counts = completion_counts(ROWS)
    assert counts == {"total": 5, "empty": 3, "stopped_at_first_token": 1, "finish_known": 4}
    assert completion_counts_text(counts) == ("5 completions: 3 (60.0%) empty, 1 (25.0%) stopped at their first "
                                              "token (of the 4 whose finish is known).")
    assert completion_counts([("x", None, None)]) == {"total": 1, "empty": 0}  # no finish known: no stop count
    assert completion_counts_text({"total": 0, "empty": 0}) == "0 completions: 0 empty."


def test_humaneval_summary_and_report_count_empty_completions(tmp_path):
    samples = [{"task_id": "HumanEval/0", "completion": text, "completion_id": j, "finish_reason": reason,
                "n_tokens": n} for j, (text, reason, n) in enumerate(ROWS)]
    outcomes = [ExecResult("failed")] * len(samples)
    results, summary = humaneval.score(samples, outcomes, ks=(1,))
    assert summary["completions"] == completion_counts(ROWS)
    humaneval.write_outputs(tmp_path, samples, results, summary)
    assert json.loads((tmp_path / "summary.json").read_text())["completions"]["empty"] == 3
    assert completion_counts_text(summary["completions"]) in (tmp_path / "report.md").read_text()


def test_infill_and_mtpb_summaries_count_empty_completions():
    problems = humaneval.load_problems()
    tasks = infill.build_tasks({"HumanEval/0": problems["HumanEval/0"]}, "single-line")[:1]
    samples = [{"task_id": tasks[0].task_id, "completion": text, "completion_id": j, "finish_reason": reason,
                "n_tokens": n} for j, (text, reason, n) in enumerate(ROWS)]
    _, summary = infill.score(tasks, samples, [ExecResult("failed")] * len(samples), ks=(1,))
    assert summary["completions"] == completion_counts(ROWS)
    assert completion_counts_text(summary["completions"], "middles") in infill.report_markdown(summary)

    [problem] = mtpb.load_problems()[:1]
    turns = len(problem.prompts)
    sampled = {"id": problem.id, "case": 0, "sample": 0, "mode": "multi", "completions": [""] * turns,
               "program": "", "finish_reasons": ["stop"] * turns, "n_tokens": [1] + [2] * (turns - 1)}
    from_file = {**sampled, "sample": 1, "completions": ["x = 1"] * turns}
    del from_file["finish_reasons"], from_file["n_tokens"]
    _, summary = mtpb.score([problem], [sampled, from_file], [ExecResult("failed")] * 2)
    assert summary["completions"] == {"total": 2 * turns, "empty": turns, "stopped_at_first_token": 1,
                                      "finish_known": turns}
    assert completion_counts_text(summary["completions"], "turn completions") in mtpb.report_markdown(summary)


def test_a_stop_string_completed_by_the_first_token_counts_as_stopped_at_it():
    """generate()'s fields are what the counts read: a completion whose first token completes a stop string has
    finish_reason "stop", one token, and empty text."""
    torch.manual_seed(0)

    class Chars:  # one token per character of a small alphabet
        alphabet = "\nabcdef "
        eos_id = len(alphabet)

        def encode(self, text):
            return [self.alphabet.index(c) for c in text]

        def decode(self, ids):
            return "".join(self.alphabet[i] for i in ids if i < self.eos_id)

    tok = Chars()
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=tok.eos_id + 1, block_size=32)).eval()
    [[free]] = generate(model, tok, ["abc"], SamplingParams(max_new_tokens=1))
    first = tok.decode(free.token_ids)
    [[c]] = generate(model, tok, ["abc"], SamplingParams(max_new_tokens=8, stop=(first,)))
    assert (c.text, c.finish_reason, len(c.token_ids)) == ("", "stop", 1)
    assert completion_counts([(c.text, c.finish_reason, len(c.token_ids))])["stopped_at_first_token"] == 1
