"""The held-out files that bits per byte is measured on: whole Mono repositories (standard-library packages and
top-level modules) that no training stage sees.

They are the Mono corpus's validation split, chosen by the very function and settings the corpus tokenizer uses
(`choose_valid_repos`), so the training run's validation curve and the final measurement are on the same files; the
quickstart checks after tokenizing that the tokenizer chose the same repositories. The standard library is also part
of Multi, so Multi (and NL) are decontaminated against the raw text of these files: any file that contains one of
them is dropped, with the reason, before it can reach a training shard. The tokenizer is not trained on them either."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from ..data.tokenize import TokenizeConfig, choose_valid_repos
from ..errors import UserError
from ..eval.report import write_jsonl, write_text


def documents(corpus: Path) -> Iterator[dict]:
    """The corpus's repository documents: {"text", "id", "metadata": {"repo", "files": [[path, lang, chars]], ...}}."""
    for shard in sorted((corpus / "data").glob("*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def choose_repos(mono_corpus: Path, cfg: TokenizeConfig) -> list[str]:
    repos = [json.loads(line) for line in (mono_corpus / "repos.jsonl").read_text().splitlines() if line.strip()]
    return sorted(choose_valid_repos(repos, cfg.valid_fraction, cfg.seed))


def corpus_files(mono_corpus: Path, repos: set[str]) -> list[tuple[str, str]]:
    """(repo/path, text) of the files of `repos` as the corpus holds them (filtered, PII-redacted): the text their
    validation shards are made of. A repository document is its files' texts concatenated, in metadata order."""
    out = []
    for doc in documents(mono_corpus):
        meta = doc["metadata"]
        if meta["repo"] not in repos:
            continue
        offset = 0
        for path, _lang, n in meta["files"]:
            out.append((f"{meta['repo']}/{path}", doc["text"][offset:offset + n]))
            offset += n
    return sorted(out)


def raw_texts(mono_corpus: Path, repos: set[str]) -> list[str]:
    """The same files as they are on disk, before PII redaction: what another part's copy of them looks like when
    decontamination compares it."""
    texts = []
    for line in (mono_corpus / "work" / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item.get("kind") == "file" and item.get("repo") in repos:
            texts.append((Path(item["root"]) / item["rel"]).read_text(encoding="utf-8", errors="replace"))
    return texts


def heldout_repos(run_dir: Path) -> list[tuple[str, Path]]:
    """(name, directory) of a finished quickstart run's held-out repositories, as `build` wrote them: what `ocg eval
    repo` completes lines of by default."""
    record = Path(run_dir) / "stages" / "heldout.json"
    try:
        repos = json.loads(record.read_text(encoding="utf-8"))["repos"]
    except (OSError, ValueError, KeyError):
        raise UserError(f"{record}: no held-out repositories recorded there (run `ocg quickstart` first, or give "
                        "--repos DIR with one subdirectory per repository)") from None
    found = [(name, Path(run_dir) / "heldout" / "files" / name) for name in repos]
    missing = [str(path) for _, path in found if not path.is_dir()]
    if missing:
        raise UserError(f"{run_dir}: held-out repositories recorded but missing on disk: {', '.join(missing[:3])}")
    return found


def build(out: Path, mono_corpus: Path, cfg: TokenizeConfig) -> dict:
    """heldout/files/<repo>/<path> (the evaluation text: `ocg eval bpb --files` reads it) and
    heldout/decontaminate.jsonl (raw texts, one record each, for DecontamConfig.benchmark_files)."""
    repos = choose_repos(mono_corpus, cfg)
    files = corpus_files(mono_corpus, set(repos))
    if not files:
        raise UserError(f"{mono_corpus}: no repository could be held out for bits per byte (the Mono corpus needs "
                        "at least two repositories)")
    for name, text in files:
        write_text(out / "files" / name, text)
    # Only a "text" field: decontamination treats every string of a record as an item to look for.
    write_jsonl(out / "decontaminate.jsonl", [{"text": t} for t in raw_texts(mono_corpus, set(repos))])
    return {"repos": repos, "files": len(files), "bytes": sum(len(t.encode("utf-8")) for _, t in files),
            "valid_fraction": cfg.valid_fraction, "seed": cfg.seed}
