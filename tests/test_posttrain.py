"""Post-training stage kinds (sft, dpo, rl) through the one stage runner, checked against hand computations."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from posttrain_fixtures import ANSWERS, exercise, toy_recipe, write_exercises  # noqa: E402
from train_fixtures import tiny_recipe  # noqa: E402

from opencodegen.errors import UserError  # noqa: E402
from opencodegen.model.transformer import GPT  # noqa: E402
from opencodegen.tokenizer import CodeTokenizer  # noqa: E402
from opencodegen.train import recipe_from_dict, train  # noqa: E402
from opencodegen.train.dpo import dpo_loss  # noqa: E402
from opencodegen.train.loop import model_config, preflight  # noqa: E402
from opencodegen.train.rl import advantages  # noqa: E402
from opencodegen.train.stage import StageContext  # noqa: E402
from opencodegen.train import distributed as dist_  # noqa: E402


def _objective(data: dict, index: int = 0):
    recipe = recipe_from_dict(data)
    objective = preflight(recipe, 1)[index]
    torch.manual_seed(0)
    model = GPT(model_config(recipe))
    ctx = StageContext(recipe, index, Path("/nonexistent"), dist_.Dist(), torch.float32, 1.0, None, False)
    objective.setup(model, ctx)
    return recipe, objective, model


def _completion_nll(model, ids: list[int], n_prompt: int) -> tuple[float, int]:
    """Summed -log p of every token after the prompt, from the example run alone (no packing)."""
    with torch.no_grad():
        logp = F.log_softmax(model(torch.tensor([ids[:-1]])).double(), -1)[0]
    return -sum(float(logp[t - 1, ids[t]]) for t in range(n_prompt, len(ids))), len(ids) - n_prompt


def test_sft_loss_is_the_completion_tokens_mean_computed_one_example_at_a_time(tmp_path):
    # Byte tokenizer: prompts and solutions of different lengths, packed several to a row.
    rows = [{"id": f"e{k}", "prompt": f"def f{k}(x):\n    '''doc {k}'''\n", "solution": f"    return x + {k}\n"}
            for k in range(6)]
    data = tiny_recipe(tmp_path)
    from tokenizers import Tokenizer

    tok_with_eos = Tokenizer.from_file(data["tokenizer"])
    tok_with_eos.add_special_tokens(["<|endoftext|>"])  # id 256: completions end with it
    tok_with_eos.save(data["tokenizer"])
    data["model"]["vocab_size"] = 264
    data["stages"] = [{"name": "sft", "kind": "sft", "steps": 1, "data": {str(write_exercises(
        tmp_path / "ex.jsonl", rows)): 1.0}, "sft": {"valid_fraction": 0.01}}]
    # Each example is 45 tokens, so a 129-token row holds two: epoch 0 is 3 rows, the whole 3-row step
    data["batch"] = {"batch_tokens": 3 * 128, "micro_batch": 1, "context_length": 128}
    data["model"]["block_size"] = 128
    recipe, sft, model = _objective(data)
    assert sft.valid is None and len(sft._epoch(0)) == 3
    batches = sft.batches(0, model)
    report = sum(sft.loss(model, b)[0] for b in batches)
    # By hand: each example alone, loss on its solution tokens and the EOS only, averaged over all those tokens.
    tok = CodeTokenizer.load(recipe.tokenizer)
    total, count = 0.0, 0
    in_rows = int(sum(b.data["mask"].sum() for b in batches))
    for r in rows:
        p = tok.encode(r["prompt"])
        nll, n = _completion_nll(model, p + tok.encode(r["solution"]) + [tok.eos_id], len(p))
        total, count = total + nll, count + n
    assert in_rows == count  # exactly the completion tokens (and each EOS) are targets
    assert report == pytest.approx(total / count, rel=1e-5)
    # 3 rows an epoch, 3 rows a step: the quickstart's plan caps the stage at max_epochs of these steps
    from opencodegen.quickstart.train_plan import sft_caps
    assert sft.epoch_steps() == 1.0
    assert sft_caps(recipe, 2.5) == {0: {"epoch_steps": 1.0, "max_steps": 2.5}}


def test_sft_fim_rows_are_the_examples_cut_in_psm_order_with_the_middle_as_target(tmp_path):
    from tokenizers import Tokenizer

    from opencodegen.prompt_format import EOS, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX

    rows = [{"id": f"e{k}", "prompt": f"def f{k}(x):\n    '''doc {k}'''\n", "solution": f"    return x * {k}\n"}
            for k in range(8)]
    data = tiny_recipe(tmp_path)
    tok = Tokenizer.from_file(data["tokenizer"])
    tok.add_special_tokens([EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX])  # ids 256..259
    tok.save(data["tokenizer"])
    data["model"]["vocab_size"] = 264
    data["stages"] = [{"name": "sft", "kind": "sft", "steps": 1, "data": {str(write_exercises(
        tmp_path / "ex.jsonl", rows)): 1.0}, "sft": {"valid_fraction": 0.01, "fim_rate": 1.0}}]
    data["batch"] = {"batch_tokens": 128, "micro_batch": 1, "context_length": 128}
    data["model"]["block_size"] = 128
    recipe, sft, _ = _objective(data)
    code = CodeTokenizer.load(recipe.tokenizer)
    pre, mid, suf, eos = (code.special_id(t) for t in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, EOS))
    plain = [s for s in sft.train if s[0][0] != pre]
    fim = [s for s in sft.train if s[0][0] == pre]
    assert len(plain) == len(fim) == len(rows)  # rate 1: every example once as itself and once cut
    by_prompt = {r["prompt"]: r["solution"] for r in rows}
    cuts, whole_lines = set(), 0
    for ids, targets in fim:
        s, m = ids.index(suf), ids.index(mid)
        prefix, suffix, middle = code.decode(ids[1:s]), code.decode(ids[s + 1:m]), code.decode(ids[m + 1:-1])
        prompt = next(p for p in by_prompt if prefix.startswith(p))  # the prompt stays whole in the prefix
        assert prefix + middle + suffix == prompt + by_prompt[prompt]  # the middle is a span of the solution
        assert ids[-1] == eos and targets == [False] * (m + 1) + [True] * (len(ids) - m - 1)
        cuts.add((len(prefix), len(middle)))
        whole_lines += prefix.endswith("\n") and middle.endswith("\n")
    assert len(cuts) > 1 and 0 < whole_lines  # the cut points are drawn, some on line starts
    _, again, _ = _objective(data)
    assert again.train == sft.train  # and drawn the same way on every run


def test_dpo_loss_and_gradient_match_the_formula():
    torch.manual_seed(0)
    pc, pr, rc, rr = (torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(4))
    beta = 0.3
    losses, margins = dpo_loss(pc, pr, rc.detach(), rr.detach(), beta)
    by_hand = [math.log1p(math.exp(-beta * ((a - c) - (b - d)))) for a, b, c, d in
               zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist())]
    assert losses.tolist() == pytest.approx(by_hand, rel=1e-12)
    losses.sum().backward()
    # d/d pc of -log sigmoid(m) = -beta * (1 - sigmoid(m)); d/d pr is its negative
    sig = torch.sigmoid(margins.detach())
    assert torch.allclose(pc.grad, -beta * (1 - sig)) and torch.allclose(pr.grad, beta * (1 - sig))


def test_dpo_objective_sums_completion_logprobs_against_the_reference(tmp_path):
    pairs = [{"prompt": "def f():\n", "chosen": "    return 1\n", "rejected": "    return 0\n"},
             {"prompt": "def g():\n", "chosen": "    return 2\n", "rejected": "    return 3\n"}]
    data = toy_recipe(tmp_path, [{"name": "dpo", "kind": "dpo", "steps": 1,
                                  "data": {str(write_exercises(tmp_path / "pairs.jsonl", pairs)): 1.0},
                                  "dpo": {"exercises_per_step": 2, "beta": 0.5}}])
    recipe, dpo, model = _objective(data)
    with torch.no_grad():  # move the policy away from the reference so the margins are not all zero
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    report = sum(dpo.loss(model, b)[0] for b in dpo.batches(0, model))
    tok = CodeTokenizer.load(recipe.tokenizer)
    expected = []
    for row in pairs:
        p = tok.encode(row["prompt"])
        lp = {}
        for m, key in ((model, "pi"), (dpo.reference, "ref")):
            for side in ("chosen", "rejected"):
                lp[key, side] = -_completion_nll(m, p + tok.encode(row[side]) + [tok.eos_id], len(p))[0]
        margin = 0.5 * ((lp["pi", "chosen"] - lp["ref", "chosen"]) - (lp["pi", "rejected"] - lp["ref", "rejected"]))
        expected.append(math.log1p(math.exp(-margin)))
    assert report == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_group_relative_advantages():
    assert advantages([1, 0, 0, 1], "grpo", scale=False) == [0.5, -0.5, -0.5, 0.5]
    std = math.sqrt(1 / 3)  # sample std of [1, 0, 0, 1]
    assert advantages([1, 0, 0, 1], "grpo", scale=True) == pytest.approx([0.5 / (std + 1e-4)] * 1 +
                                                                         [-0.5 / (std + 1e-4)] * 2 +
                                                                         [0.5 / (std + 1e-4)])
    assert advantages([0, 0, 0], "grpo", scale=True) == [0, 0, 0]  # no signal in a group that all fails
    assert advantages([1, 0, 0.5], "expert_iteration", scale=True) == [1, 0, 0]


def _rl_recipe_with_solutions(root: Path, solutions: list[str], max_new_tokens: int) -> dict:
    rows = [{**exercise(f"f{k}", 1), "solution": sol} for k, sol in enumerate(solutions)]
    data = write_exercises(root / "varied" / "exercises.jsonl", rows)
    return toy_recipe(root, [{"name": "rl", "kind": "rl", "steps": 2, "data": {str(data): 1.0},
                              "rl": {"max_new_tokens": max_new_tokens}}])


def test_a_sampling_stage_expects_completions_as_long_as_its_reference_answers(tmp_path):
    """Each toy line is one token: solutions of 1, 2 and 4 lines take 2, 3 and 5 tokens with the end token (mean
    10/3, rounded to 3); max_new_tokens bounds it."""
    from opencodegen.train.rl import RL
    solutions = ["    return 1\n", "    return 1\n    return 2\n", "    return 0\n" * 4]
    for limit, expected in ((128, 3), (2, 2)):
        recipe = recipe_from_dict(_rl_recipe_with_solutions(tmp_path / str(limit), solutions, limit))
        assert RL(recipe, 0, 1, 16, None).expected_completion_tokens() == expected
    # a row without tests is trained on, never sampled: its answer does not count
    untested = {**exercise("u", 1), "solution": "    return 0\n" * 9, "tests": ""}
    data = write_exercises(tmp_path / "mixed" / "exercises.jsonl",
                           [{**exercise(f"f{k}", 1), "solution": sol} for k, sol in enumerate(solutions)] + [untested])
    recipe = recipe_from_dict(toy_recipe(tmp_path / "mixed", [{"name": "rl", "kind": "rl", "steps": 2,
                                                              "data": {str(data): 1.0}}]))
    assert RL(recipe, 0, 1, 16, None).expected_completion_tokens() == 3


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", ["grpo", "expert_iteration"])
def test_rl_on_a_toy_task_raises_the_pass_rate(tmp_path, mode):
    data = toy_recipe(tmp_path, [{"name": "rl", "kind": "rl", "steps": 16,
                                  "rl": {"mode": mode, "exercises_per_step": 3, "group_size": 8, "max_new_tokens": 3,
                                         "temperature": 1.0, "top_p": 1.0}}], save_every=100, eval_every=100)
    train(recipe_from_dict(data), tmp_path / "run", progress=False)
    rewards = [r["pass_rate"] for r in _metrics(tmp_path / "run")]
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert first < 0.5 and last > first + 0.3, rewards
    for r in _metrics(tmp_path / "run"):  # a step whose samples all passed (or all failed) has no group with signal
        assert 0 <= r["groups_without_signal"] <= 1
        assert r["groups_without_signal"] == 1 or 0 < r["pass_rate"] < 1, r
    # and the trained model answers each exercise greedily
    from opencodegen.model.io import load_checkpoint
    from opencodegen.sampling import SamplingParams
    from opencodegen.engine import generate

    model, tok = load_checkpoint(tmp_path / "run" / "stage-0-rl" / "checkpoint-16")
    outs = generate(model, tok, [f"def {n}():\n" for n in ANSWERS], SamplingParams(max_new_tokens=1))
    solved = sum(o[0].text == f"    return {v}\n" for o, v in zip(outs, ANSWERS.values()))
    assert solved >= 2, [o[0].text for o in outs]


def test_sft_then_rl_checkpoints_load_for_generation(tmp_path):
    data = toy_recipe(tmp_path, [{"name": "sft", "kind": "sft", "steps": 3},
                                 {"name": "rl", "kind": "rl", "steps": 2,
                                  "rl": {"exercises_per_step": 3, "group_size": 2, "max_new_tokens": 2}}])
    summary = train(recipe_from_dict(data), tmp_path / "run", progress=False)
    assert [s["kind"] for s in summary["stages"]] == ["sft", "rl"]
    final = Path(summary["final_checkpoint"])
    assert final == tmp_path / "run" / "stage-1-rl" / "checkpoint-2" and (final / "tokenizer.json").is_file()
    recs = _metrics(tmp_path / "run")
    assert {"reward", "pass_rate", "samples_per_s", "sample_judge_s"} <= set(recs[-1])


@pytest.mark.parametrize("stage, message", [
    ({"kind": "ppo", "steps": 1}, "kind='ppo' is not one of pretrain, sft, dpo, rl"),
    ({"kind": "rl", "tokens": 100}, "a rl stage is measured in steps, not tokens"),
    ({"kind": "rl", "steps": 1, "rl": {"group_size": 1}}, "rl.group_size must be >= 2"),
    ({"kind": "rl", "steps": 1, "rl": {"mode": "ppo"}}, "rl.mode='ppo' is not one of grpo, expert_iteration"),
    ({"kind": "dpo", "steps": 1, "dpo": {"beta": 0}}, "dpo.beta > 0"),
    ({"kind": "rl", "steps": 1, "rl": {"temperature": 0}}, "sampling must explore"),
    ({"kind": "sft", "steps": 1, "sft": {"fim_rate": 1.5}}, "sft.fim_rate must be in .0, 1.$"),
    ({"kind": "sft", "steps": 1, "sft": {"fim_rate": 0.5, "format": "chat"}}, "fim_rate applies to the completion"),
])
def test_bad_post_training_stages(tmp_path, stage, message):
    data = toy_recipe(tmp_path, [{"name": "s", **stage}])
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recipe_from_dict(data)


def test_post_training_data_problems_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "solution": "y"}\n{"prompt": 3}\n')
    data = toy_recipe(tmp_path, [{"name": "sft", "kind": "sft", "steps": 1, "data": {str(bad): 1.0}}])
    with pytest.raises(UserError, match=r"bad.jsonl:2: a row needs a string 'prompt'"):
        preflight(recipe_from_dict(data), 1)
    only_pairs = write_exercises(tmp_path / "pairs.jsonl", [{"prompt": "def f():\n", "completion": "    pass\n"}])
    data = toy_recipe(tmp_path, [{"name": "rl", "kind": "rl", "steps": 1, "data": {str(only_pairs): 1.0}}])
    with pytest.raises(UserError, match="no exercises with tests and an entry_point"):
        preflight(recipe_from_dict(data), 1)
    data = toy_recipe(tmp_path, [{"name": "sft", "kind": "sft", "steps": 1,
                                  "data": {str(tmp_path / "missing"): 1.0}}])
    with pytest.raises(UserError, match="missing: no such file or directory"):
        preflight(recipe_from_dict(data), 1)
    assert exercise("f", 1)["entry_point"] == "f"


def test_rl_reward_is_the_fraction_of_asserts_that_held():
    """A half-right completion earns 0.5 under reward 'fraction' and 0 under 'pass', from the trusted judge."""
    from opencodegen.exercises.judge import CheckJob, Judge

    tests = "\n\ndef check(candidate):\n" + "".join(f"    assert candidate({n}) == {n * n}\n" for n in (1, 2, 3, 4))
    prompt = "def square(n):\n"
    half = "    return n * n if n % 2 else n\n"  # right for 1 and 3; 2 -> 2 is wrong, 4 -> 4 is wrong
    jobs = [CheckJob(prompt, c, tests, "square") for c in (half, "    return n * n\n", "    return (\n")]
    with Judge(workers=1, keep_going=True) as judge:
        (h, right, broken) = judge.check(jobs)
    assert [h.score("fraction"), right.score("fraction"), broken.score("fraction")] == [0.5, 1.0, 0.0]
    assert [h.score("pass"), right.score("pass"), broken.score("pass")] == [0.0, 1.0, 0.0]
