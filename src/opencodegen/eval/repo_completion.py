"""`ocg eval repo`: repository-level line completion (RepoBench / CrossCodeEval manner) on held-out repositories,
with and without cross-file context, scored by exact match and edit similarity.

Tasks come from repo_tasks.py: a line that uses a name defined in another file of its repository. Each task is
asked twice, greedily, in the repository format the model was trained on (prompt_format.py):

    in-file     <|repo_name|>{repo}\\n<|file_sep|>{path}\\n{the file before the line}
    cross-file  <|repo_name|>{repo}\\n<|file_sep|>{defining file}\\n{its text}\\n...<|file_sep|>{path}\\n{the file
                before the line}

so the only difference between the two is the cross-file context: the files the current file imports from, in the
order the corpus builder packs a repository (dependencies first). A prompt that does not fit the context window
(context - max_new_tokens) keeps its end: the cross-file files are cut from the left (the first files go first; the
repository line always stays), and only when the current file alone does not fit is its start cut too. Through an
--endpoint the same prompt is sent as text (the server must read the control tokens as special tokens, as vLLM and
llama.cpp do for the model's own tokens), fitted to --max-prompt-chars instead of tokens.

The answer is the first non-blank line of the completion. Scores, as CrossCodeEval defines them, on both stripped of
surrounding whitespace: exact match (1 or 0) and edit similarity 1 - Levenshtein(prediction, target) /
max(len(prediction), len(target)) (1 for two empty strings). A model without the repository tokens is scored in-file
only, on the bare file prefix, and the report says why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..progress import log, progress_task
from ..prompt_format import EOS, FILE_END, FILE_SEP, REPO_NAME, encode_pieces, fim_end_ids, repo_file, repo_head, \
    repo_ids
from .context import prompt_room
from .journal import Journal
from .report import markdown_table, plot_bars, write_jsonl, write_run
from .repo_tasks import RepoTask, Repository

MODES = ("in-file", "cross-file")
JOURNAL = "model_samples.journal.jsonl"  # --model answers as they finish, for resuming (endpoint.py has its own)
DEFAULT_MAX_NEW_TOKENS = 48
DEFAULT_MAX_PROMPT_CHARS = 16000  # --endpoint: the server's tokenizer is unknown here; ~4 chars a token


def levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, substitute one character) that turn a into b."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ca != cb))
    return row[-1]


def edit_similarity(prediction: str, target: str) -> float:
    a, b = prediction.strip(), target.strip()
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest


def exact_match(prediction: str, target: str) -> bool:
    return prediction.strip() == target.strip()


def first_line(completion: str) -> str:
    """The first line with something on it: the model's answer for the next line."""
    for line in completion.split("\n"):
        if line.strip():
            return line.rstrip("\r")
    return ""


# ---- prompts ------------------------------------------------------------------------------------------------------

def context_files(task: RepoTask, repos: dict[str, Repository]) -> list[tuple[str, str]]:
    files = repos[task.repo].files
    return [(p, files[p]) for p in task.context]


def token_prompt(tokenizer, task: RepoTask, repos: dict[str, Repository], mode: str, room: int) -> tuple[list[int],
                                                                                                         dict]:
    """Token ids of the task's prompt in `mode`, fitted to `room`, and what fitting kept."""
    ids = repo_ids(tokenizer)
    if ids is None:  # no repository format: the bare file, in-file only
        prefix = tokenizer.encode(task.prefix)
        return prefix[-room:], {"prefix_cut": len(prefix) > room, "context_files": 0, "context_tokens": 0,
                                "context_kept": 0}
    head = encode_pieces(tokenizer, repo_head(ids, task.repo))
    current_head = encode_pieces(tokenizer, [ids.file_sep, task.path + "\n"])
    prefix = tokenizer.encode(task.prefix)
    keep_prefix = max(0, room - len(head) - len(current_head))
    info = {"prefix_cut": len(prefix) > keep_prefix}
    prefix = prefix[len(prefix) - keep_prefix:] if len(prefix) > keep_prefix else prefix
    context: list[int] = []
    files = context_files(task, repos) if mode == "cross-file" else []
    for path, text in files:
        context += encode_pieces(tokenizer, repo_file(ids, path, [text]))
    free = room - len(head) - len(current_head) - len(prefix)
    kept = context[len(context) - free:] if 0 < free < len(context) else (context if free > 0 else [])
    info.update(context_files=len(files), context_tokens=len(context), context_kept=len(kept))
    return head + kept + current_head + prefix, info


def text_prompt(task: RepoTask, repos: dict[str, Repository], mode: str, max_chars: int) -> tuple[str, dict]:
    """The same prompt spelled as text (the control tokens as their strings), fitted to max_chars."""
    head, current = f"{REPO_NAME}{task.repo}\n", f"{FILE_SEP}{task.path}\n"
    keep_prefix = max(0, max_chars - len(head) - len(current))
    prefix = task.prefix[len(task.prefix) - keep_prefix:] if len(task.prefix) > keep_prefix else task.prefix
    files = context_files(task, repos) if mode == "cross-file" else []
    context = "".join(f"{FILE_SEP}{path}\n{text}{FILE_END}" for path, text in files)
    free = max_chars - len(head) - len(current) - len(prefix)
    kept = context[len(context) - free:] if 0 < free < len(context) else (context if free > 0 else "")
    return head + kept + current + prefix, {"prefix_cut": len(task.prefix) > keep_prefix,
                                            "context_files": len(files), "context_tokens": len(context),
                                            "context_kept": len(kept)}


# ---- sampling -----------------------------------------------------------------------------------------------------

def model_fingerprint(model) -> str:
    """What tells one set of weights from another without reading all of them: the configuration and the first
    values of every tensor (a journal keyed by it is not reused by another checkpoint)."""
    import torch
    h = hashlib.sha256(repr(getattr(model, "config", None)).encode())
    with torch.no_grad():
        for name, t in model.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().reshape(-1)[:64].float().cpu().numpy().tobytes())
    return h.hexdigest()


def sample_model(model, tokenizer, tasks: Sequence[RepoTask], repos: dict[str, Repository], modes: Sequence[str],
                 params, journal: Journal | None = None, chunk: int = 8) -> list[dict]:
    """One greedy answer per (task, mode). With a journal, each finished chunk is recorded as it completes and a
    rerun takes recorded answers (same prompt ids, settings and weights) instead of generating them again."""
    from ..engine import generate  # torch: only sampling needs it
    room = prompt_room(model, params.max_new_tokens)
    params = replace(params, n=1, stop_token_ids=tuple(params.stop_token_ids) + fim_end_ids(tokenizer))
    settings = json.dumps([model_fingerprint(model), repr(params)])
    jobs = []
    for t in tasks:
        for m in modes:
            ids, info = token_prompt(tokenizer, t, repos, m, room)
            # the task and mode too: a cross-file prompt whose context was all cut is the in-file prompt's ids
            key = hashlib.sha256(json.dumps([settings, t.task_id, m, ids]).encode()).hexdigest()
            jobs.append((t, m, ids, info, key))
    done = {key: {**journal.get(key)[0], "from_journal": True} for *_, key in jobs
            if journal is not None and journal.get(key)}
    if done:
        log(f"repo: resuming with {len(done)} of {len(jobs)} answers from {journal.path}")
    todo = [j for j in jobs if j[4] not in done]
    with progress_task("sample repo", total=len(todo), unit="prompt") as bar:
        for start in range(0, len(todo), chunk):
            batch = todo[start:start + chunk]
            outputs = generate(model, tokenizer, [ids for _, _, ids, _, _ in batch], params)
            for (task, mode, _, info, key), completions in zip(batch, outputs):
                c = completions[0]
                done[key] = {"task_id": task.task_id, "mode": mode, "completion": c.text,
                             "finish_reason": c.finish_reason, "n_tokens": len(c.token_ids), **info}
                if journal is not None:
                    journal.add(key, [done[key]])
            bar.advance(len(batch))
    return [done[key] for *_, key in jobs]


def sample_endpoint(endpoint, tasks: Sequence[RepoTask], repos: dict[str, Repository], modes: Sequence[str], params,
                    max_chars: int) -> list[dict]:
    from .endpoint import sample_rows
    params = replace(params, stop=tuple(params.stop) + (EOS, FILE_SEP))
    prompts = {(t.task_id, m): text_prompt(t, repos, m, max_chars) for t in tasks for m in modes}
    rows = sample_rows(endpoint, [(f"{tid}#{m}", p, None) for (tid, m), (p, _) in prompts.items()], 1, params,
                       "sample repo")
    out = []
    for row in rows:
        task_id, mode = row["task_id"].rsplit("#", 1)
        out.append({"task_id": task_id, "mode": mode, "completion": row["completion"],
                    "finish_reason": row["finish_reason"], "n_tokens": row["n_tokens"], **prompts[task_id, mode][1]})
    return out


# ---- scoring and outputs ------------------------------------------------------------------------------------------

def score(tasks: Sequence[RepoTask], samples: Sequence[dict]) -> tuple[list[dict], dict]:
    """Per-sample result rows and {mode: {"tasks", "exact_match", "edit_similarity"}} plus the same per repository."""
    by_id = {t.task_id: t for t in tasks}
    results, sums, per_repo = [], {}, {}
    for s in samples:
        task = by_id[s["task_id"]]
        prediction = first_line(s["completion"])
        em, es = exact_match(prediction, task.target), edit_similarity(prediction, task.target)
        results.append({"task_id": task.task_id, "mode": s["mode"], "prediction": prediction, "target": task.target,
                        "exact_match": em, "edit_similarity": round(es, 6),
                        **{k: s[k] for k in ("prefix_cut", "context_files", "context_tokens", "context_kept")
                           if k in s}})
        for key, table in ((s["mode"], sums), ((task.repo, s["mode"]), per_repo)):
            acc = table.setdefault(key, [0, 0, 0.0])
            acc[0] += 1
            acc[1] += em
            acc[2] += es

    def mean(acc):
        return {"tasks": acc[0], "exact_match": acc[1] / acc[0], "edit_similarity": acc[2] / acc[0]}
    by_repo: dict[str, dict] = {}
    for (repo, mode), acc in sorted(per_repo.items()):
        by_repo.setdefault(repo, {})[mode] = mean(acc)
    scores = {"by_mode": {m: mean(sums[m]) for m in MODES if m in sums}, "by_repo": by_repo}
    if all(m in sums for m in MODES):
        scores["paired"] = paired(results)
    return results, scores


def paired(results: Sequence[dict]) -> dict:
    """Task by task, which context gave the closer line (edit similarity): the same tasks in both modes, so the
    counts say whether cross-file context helps on most lines or on a few."""
    es = {(r["task_id"], r["mode"]): r["edit_similarity"] for r in results}
    tasks = sorted({tid for tid, _ in es})
    diffs = [es[t, "cross-file"] - es[t, "in-file"] for t in tasks if (t, "in-file") in es and (t, "cross-file") in es]
    cross = [r for r in results if r["mode"] == "cross-file"]
    return {"cross_file_better": sum(d > 0 for d in diffs), "in_file_better": sum(d < 0 for d in diffs),
            "same": sum(d == 0 for d in diffs), "cross_file_prompts": len(cross),
            # a line whose own file fills the window leaves no room for other files: its two prompts are the same
            "with_context": sum(r.get("context_kept", 0) > 0 for r in cross)}


def reading(summary: dict) -> str:
    """One sentence on what the in-file / cross-file comparison says about repository-level packing."""
    by_mode, pair = summary["by_mode"], summary.get("paired")
    if pair is None:
        return summary.get("note", "In-file only: no cross-file comparison.")
    em = 100 * (by_mode["cross-file"]["exact_match"] - by_mode["in-file"]["exact_match"])
    es = 100 * (by_mode["cross-file"]["edit_similarity"] - by_mode["in-file"]["edit_similarity"])
    better, worse = pair["cross_file_better"], pair["in_file_better"]
    counts = f"closer on {better} lines, further on {worse}, the same on {pair['same']}"
    if better > worse and es > 0:
        verdict = "the model uses the imported files that the repository format puts before the line"
    elif worse > better and es < 0:
        verdict = "the other files distract the model more than they help it"
    else:
        verdict = "no clear gain from the other files"
    room = ""
    if pair["with_context"] < pair["cross_file_prompts"]:
        room = (f" Only {pair['with_context']} of {pair['cross_file_prompts']} cross-file prompts had room for any "
                "other file: the line's own file fills the rest of the context window.")
    return (f"Cross-file context changes exact match by {em:+.1f} points and edit similarity by {es:+.1f} "
            f"({counts}): {verdict}.{room}")


def report_markdown(summary: dict) -> str:
    modes = list(summary["by_mode"])
    rows = [(metric, *(100 * summary["by_mode"][m][key] for m in modes))
            for metric, key in (("exact match", "exact_match"), ("edit similarity", "edit_similarity"))]
    lines = ["# Repository-level completion", "",
             f"{summary['tasks']} tasks (lines that use a name defined in another file of their repository) from "
             f"{len(summary['repos'])} repositories; {summary['skipped']} candidates skipped, with reasons, in "
             "skipped.jsonl. Greedy; the answer is the completion's first non-blank line.", "",
             markdown_table(["metric (%)", *modes], rows), ""]
    if summary.get("note"):
        lines += [summary["note"], ""]
    if summary.get("paired"):
        lines += [reading(summary), ""]
    if "cross-file" in summary["by_mode"]:
        lines += [f"Cross-file context: {summary['context']['files_mean']:.1f} files a task on average; "
                  f"{summary['context']['truncated']} of {summary['tasks']} prompts had it cut from the left to fit "
                  f"({summary['context']['kept_fraction'] * 100:.1f}% of its {summary['context']['unit']} kept "
                  "overall).", ""]
    lines += ["## Per repository", "", markdown_table(
        ["repository", "tasks", *(f"{m} EM (%)" for m in modes), *(f"{m} ES (%)" for m in modes)],
        [(repo, next(iter(v.values()))["tasks"], *(100 * v[m]["exact_match"] for m in modes if m in v),
          *(100 * v[m]["edit_similarity"] for m in modes if m in v)) for repo, v in summary["by_repo"].items()])]
    return "\n".join(lines) + "\n"


def evaluate(out: Path, *, repos: list[tuple[str, Path]], model=None, tokenizer=None, endpoint=None,
             reference: bool = False, params=None, limit: int | None = None, seed: int = 0,
             max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> dict:
    """The whole `ocg eval repo`: tasks, samples (model, endpoint, or the targets themselves with `reference`),
    scores in both modes, outputs in `out` (tasks.jsonl, skipped.jsonl, samples.jsonl, results.jsonl,
    summary.json, report.md, repo_completion.png)."""
    from ..sampling import SamplingParams
    from .repo_tasks import build_tasks
    out = Path(out)
    tasks, skipped, repositories = build_tasks(repos, limit=limit, seed=seed)
    write_jsonl(out / "tasks.jsonl", [t.__dict__ for t in tasks])
    write_jsonl(out / "skipped.jsonl", skipped)
    params = params or SamplingParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    params = replace(params, temperature=0.0)  # greedy, as RepoBench and CrossCodeEval score
    modes, note = MODES, None
    if tokenizer is not None and repo_ids(tokenizer) is None:
        modes = ("in-file",)
        note = ("The tokenizer has no <|repo_name|>/<|file_sep|> tokens (the model was not trained on repository "
                "documents), so there is no cross-file prompt in its format: in-file only, on the bare file.")
    if reference:
        samples = [{"task_id": t.task_id, "mode": m, "completion": t.target + "\n"} for t in tasks for m in modes]
    elif endpoint is not None:
        endpoint.resume_from(out)
        samples = sample_endpoint(endpoint, tasks, repositories, modes, params, max_prompt_chars)
    elif model is not None:
        samples = sample_model(model, tokenizer, tasks, repositories, modes, params, Journal(out / JOURNAL))
    else:
        raise UserError("nothing to evaluate: give --model DIR, --endpoint URL or --reference")
    results, scores = score(tasks, samples)
    cross = [r for r in results if r["mode"] == "cross-file"]
    total = sum(r.get("context_tokens", 0) for r in cross)
    summary = {"benchmark": "repo", "tasks": len(tasks), "repos": sorted({t.repo for t in tasks}),
               "skipped": len(skipped), "seed": seed, "limit": limit, "max_new_tokens": params.max_new_tokens,
               **scores,
               "context": {"files_mean": sum(r.get("context_files", 0) for r in cross) / max(1, len(cross)),
                           "truncated": sum(r.get("context_kept", 0) < r.get("context_tokens", 0) for r in cross),
                           "kept_fraction": sum(r.get("context_kept", 0) for r in cross) / total if total else 1.0,
                           "unit": "characters" if endpoint is not None else "tokens",
                           "prefix_cut": sum(bool(r.get("prefix_cut")) for r in results)},
               "answers_from_journal": sum(bool(s.get("from_journal")) for s in samples)}
    if note:
        summary["note"] = note
    if summary["context"]["prefix_cut"]:
        log(f"repo: {summary['context']['prefix_cut']} prompts had the start of their own file cut to fit")
    write_run(out, samples=samples, results=results, summary=summary, report=report_markdown(summary))
    plot_bars(out / "repo_completion.png",
              {m: {"exact match": v["exact_match"], "edit similarity": v["edit_similarity"]}
               for m, v in summary["by_mode"].items()}, "Repository-level line completion", "score (%)")
    return summary
