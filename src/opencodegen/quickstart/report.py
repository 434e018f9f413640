"""The quickstart report: report.md (images beside it, linked) and a self-contained report.html (images inlined, code
highlighted with inline styles), both rendered from one results dict so they never disagree; and the short results
table the console shows at the end."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from rich.table import Table

from ..eval.report import completion_counts_text, write_text
from ..progress import console
from .contention import CONTENDED_SHARE
from .published import HUMANEVAL_SMALL_MODELS
from .train_schedule import steps_run

# A report is a list of blocks; each block renders to both formats.
Block = tuple[str, Any]  # ("h1"|"h2", text) | ("p", text) | ("table", (header, rows)) | ("img", path) | ("code", text)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def headline_rows(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    if r["bpb"]:
        rows += [["held-out bits/byte, model (end of pretraining)", _num(r["bpb"]["model"])],
                 ["held-out bits/byte, xz -9 (same files, one stream)", _num(r["bpb"]["xz_concat"])]]
    he = r["humaneval"]
    rows += [["HumanEval greedy pass@1", _pct(he["greedy_pass@1"])]]
    rows += [[f"HumanEval {k} (n={he['n']}, T={he['temperature']})", _pct(v)] for k, v in he["pass_at_k"].items()]
    papers = he.get("papers_protocol")
    if papers:
        rows += [[f"HumanEval {k}, best temperature of {'/'.join(sorted(papers['by_temperature']))} (the papers' protocol)",
                  f"{_pct(v['value'])} (T={v['temperature']:g})"] for k, v in papers["best"].items()]
    rows += [["HumanEval problems solved by any sample", f"{len(he['solved'])} of {he['tasks']}"]]
    for row in (r.get("time_to_target") or {}).get("rows", []):
        if row["reached"]:
            minutes = row.get("train_seconds")
            rows += [[f"{row['model']}'s row reached by", f"{row['stage']} step {row['step']}"
                      + (f", {minutes / 60:.1f} training min" if minutes is not None else "")]]
    rows += [["MTPB multi-turn pass rate", _pct(r["mtpb"]["multi_turn"])],
             ["MTPB single-turn pass rate", _pct(r["mtpb"]["single_turn"])],
             ["FIM single-line exact match", _pct(r["fim"]["exact_match"])],
             ["wall time", f"{r['total_seconds'] / 60:.1f} min"], ["peak memory", f"{r['peak_rss_mib']:.0f} MiB"]]
    return rows


def time_to_target_rows(t: dict) -> list[list[str]]:
    return [[row["model"], f"{row['stage']} step {row['step']}" if row["reached"] else "not reached",
             f"{row['train_seconds'] / 60:.1f} min" if row.get("train_seconds") is not None else "-"]
            for row in t["rows"]]


def sizing_text(sizing: dict | None, n: int) -> str:
    """How n was chosen, when a pilot chose it (a sentence, or nothing)."""
    if not sizing:
        return ""
    left = sizing["seconds_left"]
    goal = "" if left is None else f", within the {max(left, 0):.0f} s the run's time goal left"
    fixed = sizing.get("fixed_seconds")
    fixed = "" if fixed is None else f" and {fixed:.1f} s a pass"
    return (f"n = {n} is what fitted at the {1000 * sizing['seconds_per_program']:.1f} ms a program{fixed} that pilots "
            f"measured{goal} (at least {sizing['least']}, at most {sizing['most']}). ")


def humaneval_comparison(r: dict[str, Any]) -> list[list[str]]:
    he, m = r["humaneval"], r["model"]
    ours = [f"this run (greedy pass@1 {_pct(he['greedy_pass@1'])})", f"{m['params'] / 1e6:.1f}M"]
    ours += [_pct(he["pass_at_k"].get(f"pass@{k}")) for k in (1, 10, 100)] + [f"measured here, T={he['temperature']}"]
    papers = he.get("papers_protocol")
    if papers:
        best = papers["best"]
        ours = [ours, ["this run, each k's best temperature", ours[1]]
                + [_pct(best[f"pass@{k}"]["value"]) if f"pass@{k}" in best else "–" for k in (1, 10, 100)]
                + [f"measured here, T {'/'.join(sorted(papers['by_temperature']))} as the papers sample"]]
    else:
        ours = [ours]
    return ours + [[name, f"{params / 1e6:.0f}M", f"{p1:.2f}%", f"{p10:.2f}%", f"{p100:.2f}%", src]
                     for name, params, p1, p10, p100, src in HUMANEVAL_SMALL_MODELS]


def build_blocks(r: dict[str, Any]) -> list[Block]:
    m, load = r["model"], r["load_average_1min"]
    # Only the reading at the start says anything about other work: by the end the load includes this run's own
    # processes (sandbox workers, parked programs).
    busy = (": other processes shared the cores, so the times are pessimistic"
            if (load["start"] or 0) > r["cores"] / 2 else "")
    b: list[Block] = [("h1", "opencodegen quickstart report")]
    b.append(("p", f"Run finished {r['date']} on {r['machine']}. Model: {m['n_layer']} layers × {m['n_embd']} wide, "
                   f"{m['n_head']} heads, context {m['block_size']}, vocabulary {m['vocab_size']} "
                   f"({m['params'] / 1e6:.1f}M parameters). Total {r['total_seconds'] / 60:.1f} min, peak memory "
                   f"{r['peak_rss_mib']:.0f} MiB; 1-minute load average {load['start']} at the start and "
                   f"{load['end']} at the end{busy}."))
    b.append(("p", "Everything below was measured in this run on this machine. The corpus is this machine's own "
                   "sources, which nobody on this project wrote; the exercises the model is post-trained on were "
                   "generated and mined in this run, each kept only if it runs, and decontaminated against HumanEval "
                   "and MTPB."))
    b.append(("h2", "Results"))
    b.append(("table", (["measure", "value"], headline_rows(r))))

    b.append(("h2", "Corpus"))
    rows = [[part, str(s["files_in"]), str(s["files_kept"]), f"{s['bytes_kept'] / 1e6:.1f}", str(s["repos"]),
             f"{s['tokens_train']:,}", f"{s['tokens_valid']:,}",
             ", ".join(f"{k} {v}" for k, v in s["drops"].items()) or "–"] for part, s in r["corpus"].items()]
    b.append(("table", (["part", "files in", "kept", "MB kept", "repositories", "train tokens", "valid tokens",
                         "dropped (reason count)"], rows)))
    for note in r["corpus_notes"]:
        b.append(("p", f"Note: {note}."))
    b.append(("p", f"Tokenizer: byte-level BPE with CodeGen's whitespace-run tokens and the FIM/repository control "
                   f"tokens, {r['tokenizer']['vocab_size']} ids, trained on the parts' training repositories. "
                   "Documents are whole repositories (Qwen2.5-Coder's repository format), half of the files "
                   "fill-in-the-middle transformed; 5% of each part's repositories are its validation split."))

    ex = r.get("exercises")
    if ex:
        b.append(("h2", "Exercises"))
        rows = [[src, str(v["candidates"]), str(v["kept"]), _pct(v["kept_fraction"]),
                 ", ".join(f"{k} {n}" for k, n in v["rejected"].items()) or "–"] for src, v in ex["sources"].items()]
        b.append(("table", (["source", "candidates", "kept", "kept share", "rejected (reason count)"], rows)))
        removed = ex["decontamination"]["removed"]
        multi = ex["sources"].get("multi_turn")
        rows_note = (f" The {multi['kept']} multi-turn programs gave {multi.get('rows', 0)} of these rows: one per "
                     "turn (the history, then its instruction) and one single-turn row each." if multi else "")
        b.append(("p", f"{ex['exercises']} exercises ({ex['sft_only']} of them SFT-only pairs without a runnable test)."
                       f"{rows_note} "
                       "Decontamination against " + ", ".join(ex["decontamination"]["benchmarks"]) + " removed "
                       + (", ".join(f"{n} for {bench} ({', '.join(f'{k} {v}' for k, v in why.items())})"
                                    for bench, why in removed.items() for n in [sum(why.values())]) or "nothing")
                       + ": every exercise whose prompt or solution shares an n-gram of code or docstring text with "
                         "a benchmark problem, or has a problem's function name and signature."
                       + _pretraining_note(ex.get("pretraining_tokens"))))

    b.append(("h2", "Training"))
    rows = [[name, s.get("kind", "pretrain"), str(s["steps"]), f"{s['tokens'] / 1e6:.2f}M", _num(s["final_loss"]),
             _num(s.get("val_loss")), _num(s["valid_bpb"]), f"{s['tokens_per_s'] or 0:,.0f}", f"{s['seconds']:.0f}"]
            for name, s in r["train"].items()]
    b.append(("table", (["stage", "kind", "steps", "tokens", "final train loss", "valid loss", "valid bits/byte",
                         "tokens/s", "seconds"], rows)))
    if r["train_plan"]:
        b.append(("p", f"Steps were fitted to a {r['train_plan']['minutes']:g}-minute training budget from the step "
                       "time measured at the start of the run, in the proportions of the recipe's steps. Before each "
                       "stage started, the stages left were fitted again to the time left, at the pace the stages "
                       "before them kept."))
        if r["train_plan"].get("shortened_from"):
            b.append(("p", f"The budget was {r['train_plan']['shortened_from']:g} minutes, shortened by the run's time "
                           "goal: the stages before training took long enough on this machine that the full budget "
                           "would have left the evaluation too little time."))
        foreign = r["train_plan"].get("foreign_cpu_share")
        if foreign is not None and foreign > CONTENDED_SHARE:
            b.append(("p", f"Other processes used {foreign:.0%} of the cores while the plan timed its steps, so the "
                           "model shape may be smaller than this machine trains best when it is quiet (the plan is "
                           "made again only if the first stage runs 1.5 times faster than planned)."))
        replanned = (r.get("train_schedule") or {}).get("replanned")
        if replanned:
            then = (f"it chose {replanned['shape']} instead of {replanned['first_shape']}, and training started over "
                    f"({replanned['seconds_before']:.0f} s of the budget had gone into the first plan's training and "
                    "the new plan)" if "plan" in replanned else f"it chose the same shape ({replanned['shape']}), and "
                    "training went on")
            b.append(("p", f"The first stage ran at {1 / replanned['pace']:.1f} times the speed the plan had measured, "
                           f"so the plan was made again for the time left ({replanned['seconds']:.0f} s; its step "
                           f"times scaled by {replanned['calibration']:.2f}, the first stage's seconds a step over a "
                           f"probe's just before): {then}."))
        decided = (r.get("train_schedule") or {}).get("stages", {})
        run_steps = {name: steps_run(d) for name, d in decided.items()}  # (an open-ended stage's steps are a bound)
        if any(run_steps[name] != d["planned_steps"] for name, d in decided.items()):
            rows = [[name, str(d["planned_steps"]), str(run_steps[name]), f"{d['seconds_left']:.0f}",
                     f"{d['seconds']:.0f}" if "seconds" in d else "–"] for name, d in decided.items()]
            b.append(("table", (["stage", "planned steps", "steps run", "seconds left at its start", "seconds"],
                                rows)))
        shape = r["train_plan"].get("shape")
        if shape:
            b.append(("p", f"Model shape {shape['chosen']} ({shape['params'] / 1e6:.1f}M parameters): "
                           f"{shape['rule']}, timed on this machine in {r['train_plan']['autocast']}."
                           + timed_at_sentence(r["train_plan"].get("stages_timed_at"))))
            rows = [[c["shape"], f"{c['params'] / 1e6:.1f}M",
                     f"{c['seconds_per_step']:.2f}" if c["seconds_per_step"] else "not timed",
                     f"{c['tokens'] / 1e6:.2f}M" if c["tokens"] else "–",
                     f"{c['tokens_per_param']:.2f}" if c["tokens_per_param"] else "–"] for c in shape["candidates"]]
            b.append(("table", (["shape", "parameters", "Mono step s", "pretraining tokens", "tokens/param"], rows)))
    for s in r["train"].values():
        if s["loss_png"]:
            b.append(("img", s["loss_png"]))

    b.append(("h2", "Bits per byte on held-out standard-library files"))
    bpb, held = r["bpb"], r["heldout"]
    if bpb:
        b.append(("p", f"{bpb['files']} files ({bpb['bytes'] / 1e6:.2f} MB) from {len(held['repos'])} standard-library "
                       "repositories (packages and top-level modules) that are Mono's validation split: no stage "
                       "trained on them (Multi and NL were decontaminated against them) and the tokenizer never saw "
                       f"them. The model scored is the last pretraining stage's (post-training teaches exercises, "
                       f"not this code). Each file is scored from the end-of-text token in windows of the context "
                       f"it was pretrained at ({bpb['context']} tokens) starting {bpb['stride']} tokens apart, each "
                       "token once."))
        b.append(("table", (["compressor", "bits/byte"], [["this model (Mono)", _num(bpb["model"])],
                                                          ["xz -9, files concatenated", _num(bpb["xz_concat"])],
                                                          ["xz -9, each file alone", _num(bpb["xz_per_file"])]])))
        b.append(("img", bpb["png"]))
    else:
        b.append(("p", "Not measured: this machine has no Python standard library corpus to hold files out of."))

    he = r["humaneval"]
    b.append(("h2", "HumanEval"))
    b.append(("p", f"As the Codex and CodeGen papers measure it: {he['tasks']} tasks, greedy pass@1, and pass@k "
                   f"from {he['n']} samples per task at temperature {he['temperature']}, top-p 0.95, with the unbiased "
                   f"estimator (the papers draw 200). {sizing_text(he.get('sizing'), he['n'])}"
                   f"{he['programs']} programs ran in the sandbox "
                   f"({', '.join(f'{k} {v}' for k, v in he['statuses'].items())} among the samples)."))
    b.append(("table", (["model", "parameters", "pass@1", "pass@10", "pass@100", "source"],
                        humaneval_comparison(r))))
    b.append(("p", "Solved by at least one sample: " + (", ".join(he["solved"]) if he["solved"] else "none") + "."
                   + (f" Rows reached: {', '.join(he['reached'])}." if he.get("reached") else "")))
    papers = he.get("papers_protocol")
    if papers:
        ks = list(papers["best"])
        b.append(("p", f"The papers' protocol: {he['n']} samples a task at each temperature, and for each k the best "
                       "temperature's pass@k. Rows reached that way: "
                       + (", ".join(papers["reached"]) if papers["reached"] else "none") + "."))
        b.append(("table", (["temperature"] + ks,
                            [[t] + [_pct(v["pass_at_k"].get(k)) for k in ks]
                             for t, v in sorted(papers["by_temperature"].items())])))
    for run, counts in he.get("completions", {}).items():
        b.append(("p", completion_counts_text(counts, f"{run} completions")))
    b.append(("img", he["png"]))
    if r.get("time_to_target"):
        b.append(("h2", "HumanEval: time to target"))
        b.append(("table", (["published row", "first checkpoint that reaches it", "training time"],
                            time_to_target_rows(r["time_to_target"]))))
        b.append(("p", "Training time is the optimiser steps' own time from the start of training (validation, "
                       "checkpoint writes and evaluation excluded). Checkpoints are searched, oldest first, only "
                       "for rows the final checkpoint reaches; each is scored as the final one was. Scored on the "
                       "way: " + ", ".join(f"{e['stage']} step {e['step']}"
                                           for e in r["time_to_target"]["evaluated"]) + "."))

    mt = r["mtpb"]
    b.append(("h2", "MTPB (the project's own MTPB-format problems)"))
    rows = [[cat, _pct(v.get("multi_turn")), _pct(v.get("single_turn"))] for cat, v in sorted(mt["by_category"].items())]
    rows.append(["all", _pct(mt["multi_turn"]), _pct(mt["single_turn"])])
    b.append(("table", (["category", "multi-turn pass rate", "single-turn pass rate"], rows)))
    b.append(("p", f"{mt['problems']} problems, {mt['programs']} programs (problems × 5 test cases × "
                   f"{mt.get('n', 1)} samples × 2 modes), temperature 0.2, top-p 0.95."))
    if "completions" in mt:
        b.append(("p", completion_counts_text(mt["completions"], "turn completions")))
    b.append(("img", mt["png"]))

    f = r["fim"]
    b.append(("h2", "Fill-in-the-middle (HumanEval single-line infilling)"))
    b.append(("table", (["tasks", "exact match", "pass@1"], [[str(f["tasks"]), _pct(f["exact_match"]),
                                                              _pct(f.get("pass@1"))]])))
    if "completions" in f:
        b.append(("p", completion_counts_text(f["completions"], "middles")))

    rc = r.get("repo_completion")
    if rc and not rc["tasks"]:
        b.append(("h2", "Repository-level completion (held-out repositories, the pretrained Mono model)"))
        b.append(("p", rc["note"]))
    elif rc:  # Budget.repo_tasks > 0
        modes = list(rc["by_mode"])
        b.append(("h2", "Repository-level completion (held-out repositories, the pretrained Mono model)"))
        b.append(("table", (["metric", *modes], [[name, *(_pct(rc["by_mode"][m][key]) for m in modes)]
                                                 for name, key in (("exact match", "exact_match"),
                                                                   ("edit similarity", "edit_similarity"))])))
        b.append(("p", f"{rc['tasks']} lines that use a name defined in another file of their repository, greedy, "
                       "scored on the last pretraining checkpoint (the one trained on repository documents; "
                       "post-training teaches exercises in another format). Both modes see the same end of the "
                       "line's own file; cross-file also gets a reserved share of the window holding the files it "
                       "imports from, in the repository format, before it (the definitions the line uses last)."
                       + (" " + rc["note"] if rc.get("note") else "")))
        if rc.get("reading"):
            b.append(("p", rc["reading"]))
        b.append(("img", rc["png"]))

    b.append(("h2", "Samples (greedy)"))
    for s in r["samples"]:
        b.append(("code", s["prompt"] + s["completion"]))

    synth = r.get("synth")
    if synth:
        b.append(("h2", "Multi-turn sessions (ocg synth)"))
        b.append(("p", f"{len(synth['sessions'])} short sessions through `ocg synth`'s session (MTPB's format, "
                       f"temperature 0.2, seed 0), each program run in the sandbox as `:run` runs it: "
                       f"{synth['ran']} ran to the end, {synth['correct']} printed the expected value."))
        for row in synth["sessions"]:
            b.append(("code", row["program"].rstrip() + f"\n# -> {row['status']}: "
                      + (row["stdout"].strip() or row["reason"])[:200] + f"  (expected {row['expected']})"))

    b.append(("h2", "Time and memory per stage"))
    b.append(("table", (["stage", "seconds", "peak RSS MiB"],
                        [[k, f"{v['seconds']:.0f}", f"{v['peak_rss_mib']:.0f}"] for k, v in r["stages"].items()])))

    b.append(("h2", "Next"))
    b.append(("code", "\n".join(r["next_commands"])))
    return b


def _relative(path: str, run_dir: Path) -> str:
    return os.path.relpath(Path(path).resolve(), run_dir.resolve())


def to_markdown(blocks: list[Block], run_dir: Path) -> str:
    out = []
    for kind, x in blocks:
        if kind == "h1":
            out.append(f"# {x}\n")
        elif kind == "h2":
            out.append(f"## {x}\n")
        elif kind == "p":
            out.append(f"{x}\n")
        elif kind == "table":
            header, rows = x
            out.append("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
            out.extend("| " + " | ".join(row) + " |" for row in rows)
            out.append("")
        elif kind == "img":
            out.append(f"![{Path(x).stem}]({_relative(x, run_dir)})\n")
        elif kind == "code":
            out.append(f"```python\n{x.rstrip()}\n```\n")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}pre{padding:.6rem;overflow-x:auto;border-radius:4px}"""


def to_html(blocks: list[Block]) -> str:
    formatter = HtmlFormatter(noclasses=True, style="friendly")
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>opencodegen quickstart</title>"
             f"<style>{_CSS}</style></head><body>"]
    for kind, x in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{html.escape(x)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(x)}</p>")
        elif kind == "table":
            header, rows = x
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            parts.extend("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            parts.append("</table>")
        elif kind == "img":  # inlined, so the page is one file that can be mailed or attached
            data = base64.b64encode(Path(x).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(Path(x).stem)}' src='data:image/png;base64,{data}'></p>")
        elif kind == "code":
            parts.append(highlight(x, PythonLexer(), formatter))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results: dict[str, Any], run_dir: Path) -> tuple[Path, Path]:
    blocks = build_blocks(results)
    md, page = run_dir / "report.md", run_dir / "report.html"
    write_text(md, to_markdown(blocks, run_dir))
    write_text(page, to_html(blocks))
    return md, page


def print_results(r: dict[str, Any]) -> None:
    """The console's last words: the headline numbers, where the report is, and what to try next."""
    table = Table(title="quickstart results")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in headline_rows(r):
        table.add_row(*row)
    console.print(table)
    run_dir = Path(r["run_dir"])
    console.print(f"report: {run_dir / 'report.html'} (and report.md beside it)")
    console.print("next, with this run's model:")
    for cmd in r["next_commands"]:
        console.print(f"  {cmd}", markup=False, highlight=False)


def timed_at_sentence(shapes: list[str] | None) -> str:
    if not shapes:
        return ""
    return (f" Every stage's step was timed at {', then '.join(shapes)}: the smallest shape gives pretraining's share "
            "of the budget, which the choice needs, and each shape chosen with it is timed in turn until the choice "
            "holds.")


def _pretraining_note(tokens: dict | None) -> str:
    """What of the exercises pretraining reads (tokens/exercises), when the run wrote it."""
    if not tokens:
        return ""
    train, valid = tokens["train"], tokens["valid"]
    return (f" {train['documents']} of them ({train['tokens'] / 1e6:.2f}M tokens) are also pretraining documents "
            f"(tokens/exercises, which the recipe's Mono stage mixes in); the {valid['documents']} that SFT validates "
            "on are held out of them.")
