"""`ocg eval repo`: repository-level line completion (RepoBench / CrossCodeEval manner) on held-out repositories,
with and without cross-file context, scored by exact match and edit similarity.

Tasks come from repo_tasks.py: a line that uses a name defined in another file of its repository. Each task is
asked twice, greedily, in the repository format the model was trained on (prompt_format.py):

    in-file     <|repo_name|>{repo}\\n<|file_sep|>{path}\\n{the file before the line}
    cross-file  <|repo_name|>{repo}\\n<|file_sep|>{defining file}\\n{its text}\\n...<|file_sep|>{path}\\n{the file
                before the line}

so the only difference between the two is the cross-file context, measured the CrossCodeEval way: the prompt's room
(context - max_new_tokens) is split, and both modes get the SAME in-file part (the last tokens of the line's own
file, cut from its start when longer), while the cross-file mode also fills its reserved share (--cross-file-share)
with other files of the repository: the files the current file imports from, in the order the corpus builder packs
a repository (dependencies first), then the files that define the names the line uses, each as far as those
definitions' signatures and docstrings. When they do not fit, the first files go first and the earliest kept one
keeps its header and the end of its text. Through an --endpoint the same prompt is sent as text (the server must
read the control tokens as special tokens, as vLLM and llama.cpp do for the model's own tokens), fitted to
--max-prompt-chars instead of tokens and split by the same share.

The answer is the first non-blank line of the completion. Scores, as CrossCodeEval defines them, on both stripped of
surrounding whitespace: exact match (1 or 0) and edit similarity 1 - Levenshtein(prediction, target) /
max(len(prediction), len(target)) (1 for two empty strings). A model without the repository tokens is scored in-file
only, on the bare file prefix, and the report says why.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..progress import log, progress_task
from ..prompt_format import EOS, FILE_END, FILE_SEP, REPO_NAME, encode_pieces, fim_end_ids, repo_head, repo_ids
from .compare import randomization_p
from .context import prompt_room
from .journal import Journal
from .report import markdown_table, plot_bars, write_jsonl, write_run
from .repo_tasks import RepoTask, Repository, header_end

MODES = ("in-file", "cross-file")
JOURNAL = "model_samples.journal.jsonl"  # --model answers as they finish, for resuming (endpoint.py has its own)
DEFAULT_MAX_NEW_TOKENS = 48
DEFAULT_MAX_PROMPT_CHARS = 16000  # --endpoint: the server's tokenizer is unknown here; ~4 chars a token
# Of the prompt's room, the share reserved for the other files. CrossCodeEval gives them 512 of 2048 tokens; at the
# quickstart's 768-token window a quarter (about 180 tokens) holds little more than one small file's end, so half.
DEFAULT_CROSS_FILE_SHARE = 0.5


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
    """(path, text) of the other files a cross-file prompt places before the line, in packing order, except that the
    files defining a name the line uses come last, each cut after that definition's signature and docstring: the
    reserved share keeps the end of what it is given, so a share smaller than these files holds the definitions the
    line needs rather than the unrelated ends of long files (CrossCodeEval retrieves such snippets, nearest last)."""
    repo = repos[task.repo]
    ends: dict[str, int] = {}
    for use in task.uses:
        path, name = use.rsplit(":", 1)
        line = header_end(repo.files[path], name) if path in repo.files and path != task.path else None
        if line is not None:
            ends[path] = max(ends.get(path, 0), line)
    wanted = set(task.context) - set(ends)
    return [(p, repo.files[p]) for p in repo.order if p in wanted] + [
        (p, "".join(repo.files[p].splitlines(keepends=True)[:ends[p]])) for p in repo.order if p in ends]


def fit_files(files: Sequence[tuple], end, budget: int):
    """The files (header, text) as one sequence no longer than `budget`, keeping its end: the last files whole, then
    the one before them with its header and only the end of its text (a model reads which file the cut text comes
    from); `end` closes each file. Works on token lists and on strings. Returns (kept, files with something kept)."""
    kept, n = end[:0], 0
    for header, text in reversed(files):
        free = budget - len(kept)
        if len(header) + len(text) + len(end) <= free:
            kept, n = header + text + end + kept, n + 1
            continue
        room = free - len(header) - len(end)
        if room > 0:
            kept, n = header + text[len(text) - room:] + end + kept, n + 1
        break
    return kept, n


def split_room(room: int, share: float) -> tuple[int, int]:
    """(in-file, cross-file) parts of a prompt's room: the cross-file part is reserved for other files, and both
    modes get the same in-file part, so the line's own file is cut to the same last tokens with and without them."""
    cross = int(room * share)
    return room - cross, cross


def _left_cut(seq, keep: int):
    return seq[len(seq) - keep:] if len(seq) > keep else seq


def token_prompt(tokenizer, task: RepoTask, repos: dict[str, Repository], mode: str, room: int,
                 share: float = DEFAULT_CROSS_FILE_SHARE) -> tuple[list[int], dict]:
    """Token ids of the task's prompt in `mode`, fitted to `room` (the in-file part of it in both modes, the
    reserved cross-file part holding other files in cross-file mode only), and what fitting kept."""
    ids = repo_ids(tokenizer)
    prefix = tokenizer.encode(task.prefix)
    if ids is None:  # no repository format: the bare file, in-file only, in the whole room
        return _left_cut(prefix, room), {"prefix_cut": len(prefix) > room, "context_files": 0,
                                         "context_tokens": 0, "context_kept": 0, "context_files_kept": 0}
    own, reserved = split_room(room, share)
    head = encode_pieces(tokenizer, repo_head(ids, task.repo))
    current_head = encode_pieces(tokenizer, [ids.file_sep, task.path + "\n"])
    keep_prefix = max(0, own - len(head) - len(current_head))
    files = context_files(task, repos) if mode == "cross-file" else []
    pieces = [(encode_pieces(tokenizer, [ids.file_sep, path + "\n"]), list(_encoded(tokenizer, text)))
              for path, text in files]
    end = tokenizer.encode(FILE_END)
    kept, n = fit_files(pieces, end, reserved)
    return head + kept + current_head + _left_cut(prefix, keep_prefix), {
        "prefix_cut": len(prefix) > keep_prefix, "context_files": len(files),
        "context_tokens": sum(len(h) + len(t) + len(end) for h, t in pieces), "context_kept": len(kept),
        "context_files_kept": n}


def text_prompt(task: RepoTask, repos: dict[str, Repository], mode: str, max_chars: int,
                share: float = DEFAULT_CROSS_FILE_SHARE) -> tuple[str, dict]:
    """The same prompt spelled as text (the control tokens as their strings), fitted to max_chars."""
    own, reserved = split_room(max_chars, share)
    head, current = f"{REPO_NAME}{task.repo}\n", f"{FILE_SEP}{task.path}\n"
    keep_prefix = max(0, own - len(head) - len(current))
    files = context_files(task, repos) if mode == "cross-file" else []
    pieces = [(f"{FILE_SEP}{path}\n", text) for path, text in files]
    kept, n = fit_files(pieces, FILE_END, reserved)
    return head + kept + current + _left_cut(task.prefix, keep_prefix), {
        "prefix_cut": len(task.prefix) > keep_prefix, "context_files": len(files),
        "context_tokens": sum(len(h) + len(t) + len(FILE_END) for h, t in pieces), "context_kept": len(kept),
        "context_files_kept": n}


@functools.lru_cache(maxsize=256)
def _encoded(tokenizer, text: str) -> tuple[int, ...]:
    """A context file's ids: a repository's tasks share their context files, so each is encoded once (the cache holds
    the tokenizer itself, so its key never names another one)."""
    return tuple(tokenizer.encode(text))


def check_share(share: float) -> float:
    if not 0 < share < 1:
        raise UserError(f"--cross-file-share {share}: must be above 0 and below 1 (the share of the prompt's room "
                        "reserved for other files; the rest holds the end of the line's own file)")
    return share


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
                 params, journal: Journal | None = None,
                 share: float = DEFAULT_CROSS_FILE_SHARE, compile: bool = False) -> list[dict]:
    """One greedy answer per (task, mode). With a journal, each answer is recorded as it completes and a
    rerun takes recorded answers (same prompt ids, settings and weights) instead of generating them again.
    compile: decode steps run compiled (engine.generate; the same tokens, so the journal's answers stand)."""
    from ..engine import generate  # torch: only sampling needs it
    room = prompt_room(model, params.max_new_tokens)
    params = replace(params, n=1, stop_token_ids=tuple(params.stop_token_ids) + fim_end_ids(tokenizer))
    settings = json.dumps([model_fingerprint(model), repr(params)])
    jobs = []
    for t in tasks:
        for m in modes:
            ids, info = token_prompt(tokenizer, t, repos, m, room, share)
            # the task and mode too: a cross-file prompt whose context was all cut is the in-file prompt's ids
            key = hashlib.sha256(json.dumps([settings, t.task_id, m, ids]).encode()).hexdigest()
            jobs.append((t, m, ids, info, key))
    done = {key: {**journal.get(key)[0], "from_journal": True} for *_, key in jobs
            if journal is not None and journal.get(key)}
    if done:
        log(f"repo: resuming with {len(done)} of {len(jobs)} answers from {journal.path}")
    todo = [j for j in jobs if j[4] not in done]
    with progress_task("sample repo", total=len(todo), unit="prompt") as bar:
        def answered(i: int, _sample_index: int, c) -> None:  # journaled as each answer comes
            task, mode, _, info, key = todo[i]
            done[key] = {"task_id": task.task_id, "mode": mode, "completion": c.text,
                         "finish_reason": c.finish_reason, "n_tokens": len(c.token_ids), **info}
            if journal is not None:
                journal.add(key, [done[key]])
            bar.advance(1)
        if todo:
            generate(model, tokenizer, [ids for _, _, ids, _, _ in todo], params, compile=compile, on_done=answered)
    return [done[key] for *_, key in jobs]


def sample_endpoint(endpoint, tasks: Sequence[RepoTask], repos: dict[str, Repository], modes: Sequence[str], params,
                    max_chars: int, share: float = DEFAULT_CROSS_FILE_SHARE) -> list[dict]:
    from .endpoint import sample_rows
    params = replace(params, stop=tuple(params.stop) + (EOS, FILE_SEP))
    prompts = {(t.task_id, m): text_prompt(t, repos, m, max_chars, share) for t in tasks for m in modes}
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
                        **{k: s[k] for k in ("prefix_cut", "context_files", "context_tokens", "context_kept",
                                             "context_files_kept") if k in s}})
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
    counts say whether cross-file context helps on most lines or on a few; with the two-sided paired sign-flip
    p-value of the mean difference (compare.py's test)."""
    es = {(r["task_id"], r["mode"]): r["edit_similarity"] for r in results}
    tasks = sorted({tid for tid, _ in es})
    diffs = [es[t, "cross-file"] - es[t, "in-file"] for t in tasks if (t, "in-file") in es and (t, "cross-file") in es]
    cross = [r for r in results if r["mode"] == "cross-file"]
    return {"cross_file_better": sum(d > 0 for d in diffs), "in_file_better": sum(d < 0 for d in diffs),
            "same": sum(d == 0 for d in diffs), "cross_file_prompts": len(cross),
            # a cross-file prompt with nothing kept is the in-file prompt: it cannot differ
            "with_context": sum(r.get("context_kept", 0) > 0 for r in cross),
            "p_value": randomization_p(np.array(diffs, dtype=float))}


def reading(summary: dict) -> str:
    """One sentence on what the in-file / cross-file comparison says about repository-level packing."""
    by_mode, pair = summary["by_mode"], summary.get("paired")
    if pair is None:
        return summary.get("note", "In-file only: no cross-file comparison.")
    em = 100 * (by_mode["cross-file"]["exact_match"] - by_mode["in-file"]["exact_match"])
    es = 100 * (by_mode["cross-file"]["edit_similarity"] - by_mode["in-file"]["edit_similarity"])
    better, worse = pair["cross_file_better"], pair["in_file_better"]
    counts = f"closer on {better} lines, further on {worse}, the same on {pair['same']}"
    p = pair.get("p_value")
    chance = "" if p is None else f" (paired p {'< 0.0001' if p < 1e-4 else f'= {p:.2g}'})"
    if p is not None and p >= 0.05:
        verdict = f"no difference these tasks can tell from chance{chance}"
    elif better > worse and es > 0:
        verdict = f"the model uses the other files that the repository format puts before the line{chance}"
    elif worse > better and es < 0:
        verdict = f"the other files distract the model more than they help it{chance}"
    else:
        verdict = f"no clear gain from the other files{chance}"
    room = ""
    if pair["with_context"] < pair["cross_file_prompts"]:
        room = (f" Only {pair['with_context']} of {pair['cross_file_prompts']} cross-file prompts held any other "
                "file; the others equal their in-file prompt.")
    lead = "Cross-file context"
    if summary.get("window"):
        w = summary["window"]
        lead = (f"With the same {w['in_file']}-{w['unit'][:-1]} in-file part (the end of the line's own file) in both "
                f"modes, adding up to {w['cross_file']} {w['unit']} of other files")
    return (f"{lead} changes exact match by {em:+.1f} points and edit similarity by {es:+.1f} ({counts}): "
            f"{verdict}.{room}")


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
             max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS, cross_file_share: float = DEFAULT_CROSS_FILE_SHARE,
             compile: bool = False) -> dict:
    """The whole `ocg eval repo`: tasks, samples (model, endpoint, or the targets themselves with `reference`),
    scores in both modes, outputs in `out` (tasks.jsonl, skipped.jsonl, samples.jsonl, results.jsonl,
    summary.json, report.md, repo_completion.png). compile: the model's decode steps run compiled
    (engine.generate)."""
    from ..sampling import SamplingParams
    from .repo_tasks import build_tasks
    out = Path(out)
    share = check_share(cross_file_share)
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
    window = None
    if reference:
        samples = [{"task_id": t.task_id, "mode": m, "completion": t.target + "\n"} for t in tasks for m in modes]
    elif endpoint is not None:
        endpoint.resume_from(out)
        samples = sample_endpoint(endpoint, tasks, repositories, modes, params, max_prompt_chars, share)
        window = split_room(max_prompt_chars, share) + ("characters",)
    elif model is not None:
        samples = sample_model(model, tokenizer, tasks, repositories, modes, params, Journal(out / JOURNAL),
                               share=share, compile=compile)
        window = split_room(prompt_room(model, params.max_new_tokens), share) + ("tokens",)
    else:
        raise UserError("nothing to evaluate: give --model DIR, --endpoint URL or --reference")
    results, scores = score(tasks, samples)
    cross = [r for r in results if r["mode"] == "cross-file"]
    total = sum(r.get("context_tokens", 0) for r in cross)
    summary = {"benchmark": "repo", "tasks": len(tasks), "repos": sorted({t.repo for t in tasks}),
               "skipped": len(skipped), "seed": seed, "limit": limit, "max_new_tokens": params.max_new_tokens,
               "cross_file_share": share, **scores,
               "context": {"files_mean": sum(r.get("context_files", 0) for r in cross) / max(1, len(cross)),
                           "truncated": sum(r.get("context_kept", 0) < r.get("context_tokens", 0) for r in cross),
                           "kept_fraction": sum(r.get("context_kept", 0) for r in cross) / total if total else 1.0,
                           "unit": "characters" if endpoint is not None else "tokens",
                           "with_context": sum(r.get("context_kept", 0) > 0 for r in cross),
                           "prefix_cut": sum(bool(r.get("prefix_cut")) for r in results)},
               "answers_from_journal": sum(bool(s.get("from_journal")) for s in samples)}
    if window is not None and "cross-file" in modes:
        summary["window"] = {"in_file": window[0], "cross_file": window[1], "unit": window[2]}
    if note:
        summary["note"] = note
    if summary["context"]["prefix_cut"]:
        log(f"repo: {summary['context']['prefix_cut']} prompts had the start of their own file cut to fit")
    write_run(out, samples=samples, results=results, summary=summary, report=report_markdown(summary))
    plot_bars(out / "repo_completion.png",
              {m: {"exact match": v["exact_match"], "edit similarity": v["edit_similarity"]}
               for m, v in summary["by_mode"].items()}, "Repository-level line completion", "score (%)")
    return summary
