"""Self-generated exercises (expert iteration, STaR): a model samples k completions per exercise, the judge runs
each against the exercise's tests, and the passing ones become training targets (source "self") for the next round.

`sample_and_judge` is the core a training stage calls (RL rewards, expert iteration): model, tokenizer, exercises,
k and sampling parameters in; one `Attempt` (exercise, completion, verdict, reward) per sample out."""

from __future__ import annotations

from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Sequence

from ..progress import progress_task
from ..sampling import HUMANEVAL_STOP, SamplingParams
from ..engine import each_prompt_done, generate
from .judge import CheckJob, Judge, Verdict
from .records import Exercise


@dataclass(frozen=True)
class Attempt:
    exercise: Exercise  # or any row with prompt, tests and entry_point (a training stage's examples)
    sample_index: int
    completion: str  # as judged: cut before the stop string
    verdict: Verdict
    prompt_ids: tuple[int, ...] = ()  # the prompt as the model saw it
    completion_ids: tuple[int, ...] = ()  # as sampled, through the EOS or the token that completed a stop string

    @property
    def reward(self) -> float:
        return self.verdict.reward


def sample_and_judge(model, tokenizer, exercises: Sequence[Exercise], k: int, params: SamplingParams, judge: Judge,
                     progress: bool = True) -> list[Attempt]:
    """k completions per exercise (cut at HumanEval's stop strings, prompts cut from the left to fit the context),
    each judged by HumanEval's program. Exercises without tests (SFT-only) cannot be judged: pass only ones with.
    progress=False for callers with a display of their own (a training stage)."""
    from ..eval.context import fit_prompts

    if any(not (e.tests and e.entry_point) for e in exercises):
        raise ValueError("sample_and_judge needs exercises with tests; SFT-only ones cannot be judged")
    params = replace(params, n=k, stop=tuple(dict.fromkeys(tuple(params.stop) + HUMANEVAL_STOP)))
    prompts = fit_prompts(tokenizer, model, [e.prompt for e in exercises], params.max_new_tokens, "exercises")  # ids
    bar = progress_task("sample exercises", total=len(exercises), unit="ex") if progress else nullcontext()
    with bar as task:
        hook = None if task is None else each_prompt_done(k, len(prompts), lambda _: task.advance(1))
        outputs = generate(model, tokenizer, prompts, params, on_done=hook)
    samples = [(ex, j, c.text, tuple(prompt), tuple(c.token_ids))
               for ex, prompt, completions in zip(exercises, prompts, outputs) for j, c in enumerate(completions)]
    verdicts = judge.check([CheckJob(e.prompt, text, e.tests, e.entry_point) for e, _, text, _, _ in samples],
                           progress="judge samples" if progress else None)
    return [Attempt(e, j, text, v, p, c) for (e, j, text, p, c), v in zip(samples, verdicts)]


def self_round(judge: Judge, benchmarks, collected, model, tokenizer, exercises: list[Exercise], k: int,
               params: SamplingParams) -> None:
    """One round: sample, judge, keep distinct passing completions (decontaminated) as "self" exercises; the round's
    acceptance rate (passing samples / samples) and solve rate (exercises with a pass / exercises) go into stats."""
    judgeable = [e for e in exercises if not e.sft_only]
    attempts = sample_and_judge(model, tokenizer, judgeable, k, params, judge) if judgeable else []
    keep_passing(attempts, judgeable, len(exercises) - len(judgeable), k, params, benchmarks, collected)


def keep_passing(attempts: list[Attempt], judgeable: list[Exercise], skipped: int, k: int, params: SamplingParams,
                 benchmarks, collected) -> None:
    """The bookkeeping half of a round: every attempt kept (a distinct, clean pass) or rejected with a reason."""
    from .validate import Candidate, Outcome

    round_no = 1 + max((int(e.meta.get("round", 0)) for e in judgeable), default=0)
    rep = collected.report("self")
    outcome = Outcome()
    seen: set[tuple[str, str]] = set()
    solved: set[str] = set()
    for a in attempts:
        e = a.exercise
        cand = Candidate(id=f"self/r{round_no}/{e.id}/{a.sample_index}", source="self", entry_point=e.entry_point,
                         params=[], header="", solution=a.completion, calls=[], prompt=e.prompt,
                         meta={"parent": e.id, "parent_source": e.source, "round": round_no,
                               "sample_index": a.sample_index, "temperature": params.temperature,
                               "top_p": params.top_p, "k": k})
        if not a.verdict.passed:
            outcome.reject(cand, "fails_tests", a.verdict.reason or a.verdict.status)
            continue
        solved.add(e.id)
        key = (e.id, a.completion.strip())
        if key in seen:
            outcome.reject(cand, "duplicate_completion", e.id)
            continue
        seen.add(key)
        m = benchmarks.match(e.prompt, a.completion, e.entry_point)
        if m is not None:
            outcome.reject(cand, "contaminated", m.detail())
            collected.removed.setdefault(m.benchmark, Counter())[m.rule] += 1
            continue
        completion = a.completion if a.completion.endswith("\n") else a.completion + "\n"
        outcome.kept.append(Exercise(cand.id, "self", e.prompt, e.entry_point, completion, e.tests,
                                     {**cand.meta, "n_asserts": e.meta.get("n_asserts"), "sft_only": False}))
    rep.candidates += len(attempts)
    rep.kept += len(outcome.kept)
    rep.rejected.update(r["reason"] for r in outcome.rejected)
    collected.rejects.setdefault("self", []).extend(outcome.rejected)
    collected.exercises.extend(outcome.kept)
    passed = sum(a.verdict.passed for a in attempts)
    rep.extra.setdefault("rounds", []).append({
        "round": round_no, "exercises": len(judgeable), "skipped_sft_only": skipped,
        "k": k, "samples": len(attempts), "passed": passed,
        "acceptance_rate": round(passed / len(attempts), 4) if attempts else None,
        "exercises_solved": len(solved), "solve_rate": round(len(solved) / len(judgeable), 4) if judgeable else None,
        "kept": len(outcome.kept)})
