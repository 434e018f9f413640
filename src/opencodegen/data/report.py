"""stats.json and the summary table, from the counters every step keeps.

Steps count with datatrove's `stat_update` under labels `in/...`, `drop/<reason>`, `kept/...`, `dedup/...`,
`pii/<kind>`, `tokens/<split>/<lang>`; datatrove saves them per task in `logs/<stage>/stats/<rank>.json`. Summing
those files (not the executor's merged stats.json, which only covers the tasks run by the last invocation) gives
totals that stay right when a rerun skipped completed tasks."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep
from rich.table import Table


def _total(v: Any) -> float:
    return v.get("total", 0) if isinstance(v, dict) else (v or 0)


def _ascii(step_name: str) -> str:
    """'🔻 - FILTER: 📏 code quality' -> 'FILTER: code quality' (datatrove decorates step names with emoji)."""
    return re.sub(r"\s+", " ", re.sub(r"[^\x00-\x7f]+", "", step_name)).strip(" -")


def stage_counters(logs_dir: Path) -> dict[str, dict[str, Any]]:
    """{stage: {"counters": {label: total}, "step_seconds": {step: cpu seconds summed over tasks}, "tasks": n}}."""
    out: dict[str, dict[str, Any]] = {}
    for stage_dir in sorted(p for p in logs_dir.iterdir() if p.is_dir()) if logs_dir.is_dir() else []:
        counters: dict[str, float] = defaultdict(float)
        seconds: dict[str, float] = defaultdict(float)
        files = sorted((stage_dir / "stats").glob("*.json"))
        for f in files:
            for step in json.loads(f.read_text()):
                seconds[_ascii(step["name"])] += _total(step.get("time_stats"))
                for label, v in step.get("stats", {}).items():
                    if "/" in label:
                        counters[label] += _total(v)
        out[stage_dir.name] = {"counters": dict(counters), "step_seconds": dict(seconds), "tasks": len(files)}
    return out


def _ints(d: dict[str, float]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(d.items())}


def corpus_stats(out_dir: Path) -> dict[str, Any]:
    stages = stage_counters(out_dir / "logs")
    c: dict[str, float] = defaultdict(float)
    for s in stages.values():
        for k, v in s["counters"].items():
            c[k] += v
    drops = {k.split("/", 1)[1]: int(v) for k, v in c.items() if k.startswith("drop/")}
    by_lang: dict[str, dict[str, int]] = defaultdict(dict)
    for k, v in c.items():
        parts = k.split("/")
        if parts[0] == "kept" and len(parts) == 3:
            by_lang[parts[2]][parts[1]] = int(v)
    matches = []
    for f in sorted((out_dir / "rejects" / "decontam").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            matches.append({"file": r["id"], "item": r["detail"]})
    files_in, kept = int(c["in/files"]), int(c["kept/files"])
    return {
        "files_in": files_in,
        "bytes_in": int(c["in/bytes"]),
        "files_kept": kept,
        "bytes_kept": int(c["kept/bytes"]),
        "drops": dict(sorted(drops.items())),
        "accounted": files_in == kept + sum(drops.values()),
        "by_language": dict(sorted(by_lang.items())),
        "repos": int(c["kept/repos"]),
        "documents": int(c["kept/docs"]),
        "dedup": {k.split("/", 1)[1]: int(v) for k, v in sorted(c.items()) if k.startswith("dedup/")},
        "decontamination": {"files": len(matches), "items": sorted({m["item"] for m in matches}),
                            "matches": matches},
        "pii": {k.split("/", 1)[1]: int(v) for k, v in sorted(c.items()) if k.startswith("pii/")},
        "repo_packing": {k.split("/", 1)[1]: int(v) for k, v in sorted(c.items())
                         if k.startswith("repo/")},
        "stages": {name: {"tasks": s["tasks"], "step_seconds": {k: round(v, 3) for k, v in s["step_seconds"].items()}}
                   for name, s in stages.items()},
    }


def token_stats(logs_dir: Path) -> dict[str, Any]:
    c: dict[str, float] = defaultdict(float)
    for s in stage_counters(logs_dir).values():
        for k, v in s["counters"].items():
            c[k] += v
    out: dict[str, Any] = {}
    for split in ("train", "valid"):
        langs = {k.split("/")[2]: int(v) for k, v in c.items() if k.startswith(f"tokens/{split}/")}
        out[split] = {"tokens": sum(langs.values()), "documents": int(c[f"docs/{split}"]),
                      "by_language": dict(sorted(langs.items()))}
    return out


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def merge_repo_index(repos_dir: Path, out: Path) -> None:
    lines = []
    for f in sorted(repos_dir.glob("*.jsonl")):
        lines += [line for line in f.read_text().splitlines() if line]
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(sorted(line + "\n" for line in lines)))
    os.replace(tmp, out)


class WriteCorpusReport(PipelineStep):
    """Last stage (one task): stats.json and repos.jsonl. A pipeline step, so it runs on Slurm/Ray too."""

    type = "📊 - STATS"
    name = "📊 report"

    def __init__(self, out_dir: str):
        super().__init__()
        self.out_dir = out_dir

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        out = Path(self.out_dir)
        merge_repo_index(out / "work" / "repos", out / "repos.jsonl")
        write_json_atomic(out / "stats.json", corpus_stats(out))
        return
        yield


def summary_png(stats: dict[str, Any], path: Path) -> None:
    """Two bar charts: where the input went (kept or each drop reason) and kept MB per language."""
    import matplotlib  # here, not at the top: slow to import, and only the final summary plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    fates = {"kept": stats["files_kept"], **dict(sorted(stats["drops"].items(), key=lambda kv: -kv[1]))}
    a.barh(list(fates)[::-1], list(fates.values())[::-1], color=["#999"] * (len(fates) - 1) + ["#2a7"])
    a.set_xscale("symlog")
    a.set_title(f"{stats['files_in']:,} input files: kept or dropped, by reason")
    langs = {k: v.get("bytes", 0) / 1e6 for k, v in stats["by_language"].items()}
    b.bar(list(langs), list(langs.values()), color="#27a")
    b.set_ylabel("MB kept")
    b.set_title(f"{stats['bytes_kept'] / 1e6:.1f} MB kept, by language")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def summary_table(stats: dict[str, Any], title: str):
    t = Table(title=title)
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("files in", f"{stats['files_in']:,} ({stats['bytes_in'] / 1e6:.1f} MB)")
    t.add_row("files kept", f"{stats['files_kept']:,} ({stats['bytes_kept'] / 1e6:.1f} MB)")
    for reason, n in sorted(stats["drops"].items(), key=lambda kv: -kv[1]):
        t.add_row(f"  dropped: {reason}", f"{n:,}")
    t.add_row("accounted (in = kept + dropped)", "yes" if stats["accounted"] else "NO")
    for lang, v in stats["by_language"].items():
        t.add_row(f"  kept {lang}", f"{v.get('files', 0):,} files, {v.get('bytes', 0) / 1e6:.1f} MB")
    t.add_row("repositories / documents", f"{stats['repos']:,} / {stats['documents']:,}")
    d = stats["dedup"]
    t.add_row("duplicate clusters", f"{d.get('clusters', 0):,} (exact {d.get('exact_removed', 0):,}, "
                                    f"near {d.get('near_removed', 0):,} removed)")
    dc = stats["decontamination"]
    t.add_row("decontaminated", f"{dc['files']:,} files, {len(dc['items']):,} benchmark items")
    t.add_row("PII redacted", ", ".join(f"{k} {v:,}" for k, v in stats["pii"].items()) or "none")
    for split, v in stats.get("tokens", {}).items():
        t.add_row(f"tokens {split}", f"{v['tokens']:,} in {v['documents']:,} documents")
    return t
