"""What every `ocg eval ...` leaves behind, in one place: samples.jsonl, results.jsonl, summary.json, report.md and
PNG plots, all written atomically (a half-written results file must never look like a finished one)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.table import Table

from ..progress import console

from ..filemodes import as_if_created  # noqa: E402


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        as_if_created(tmp)  # mkstemp's file is private (0600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    _atomic_write(path, lambda f: f.writelines((json.dumps(r, default=repr) + "\n").encode() for r in rows))


def write_json(path: Path, data) -> None:
    _atomic_write(path, lambda f: f.write((json.dumps(data, indent=2, default=repr) + "\n").encode()))


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def save_figure(fig, path: Path) -> None:
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)


def plot_lines(path: Path, series: dict[str, dict[float, float]], title: str, xlabel: str, ylabel: str,
               logx: bool = False) -> None:
    """series: label -> {x: fraction in [0, 1]}, drawn in percent."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, points in series.items():
        xs = sorted(points)
        ax.plot(xs, [100 * points[x] for x in xs], marker="o", label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    save_figure(fig, path)


def plot_pass_at_k(path: Path, curves: dict[str, dict[int, float]], title: str) -> None:
    """k on a log axis, as in the Codex and CodeGen papers."""
    plot_lines(path, curves, title, "k", "pass@k (%)", logx=True)


def plot_bars(path: Path, groups: dict[str, dict[str, float]], title: str, ylabel: str, percent: bool = True) -> None:
    """groups: series label -> {category: value}; grouped bars per category. percent: values are fractions in
    [0, 1], drawn as percentages."""
    categories = sorted({c for series in groups.values() for c in series})
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(categories) + 2), 3.5))
    width = 0.8 / max(1, len(groups))
    for i, (label, series) in enumerate(groups.items()):
        xs = [j + i * width for j in range(len(categories))]
        ax.bar(xs, [(100 if percent else 1) * series.get(c, 0.0) for c in categories], width=width, label=label)
    ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(len(categories))], categories, rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(groups) > 1:
        ax.legend()
    save_figure(fig, path)


def completion_counts(rows: Iterable[tuple[str, str | None, int | None]]) -> dict[str, int]:
    """Counts over completions given as (text, finish_reason, generated tokens): how many are empty (nothing but
    whitespace) and how many stopped at their first token (an end token or a stop string completed by the first
    token sampled, e.g. a HumanEval completion starting with "\\ndef"). The second counts only completions whose
    finish is known (samples read from a file may not say); "finish_known" then says how many that is."""
    total = empty = known = first = 0
    for text, finish_reason, n_tokens in rows:
        total += 1
        empty += not text.strip()
        if finish_reason is not None and n_tokens is not None:
            known += 1
            first += finish_reason == "stop" and n_tokens == 1
    counts = {"total": total, "empty": empty}
    if known:
        counts["stopped_at_first_token"] = first
        if known < total:
            counts["finish_known"] = known
    return counts


def completion_counts_text(counts: dict[str, int], what: str = "completions") -> str:
    """One sentence for a report, e.g. "3280 completions: 1182 empty (36.0%), 1150 stopped at their first token
    (35.1%)."."""
    total = counts["total"]

    def share(n: int, of: int) -> str:
        return f"{n} ({100 * n / of:.1f}%)" if of else str(n)
    text = f"{total} {what}: {share(counts['empty'], total)} empty"
    if "stopped_at_first_token" in counts:
        known = counts.get("finish_known", total)
        text += f", {share(counts['stopped_at_first_token'], known)} stopped at their first token"
        if known < total:
            text += f" (of the {known} whose finish is known)"
    return text + "."


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    def cell(v) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    table = Table(title=title)
    for h in header:
        table.add_column(h)
    for row in rows:
        table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def write_run(out: Path, *, samples: list[dict], results: list[dict], summary: dict, report: str) -> None:
    """The three data files and the report; plots are written by each evaluation beside them."""
    write_jsonl(out / "samples.jsonl", samples)
    write_jsonl(out / "results.jsonl", results)
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", report)
