"""Where corpus files come from: local directories and git repositories, zip archives of sources (the JDK's src.zip),
and JSONL/Parquet tables in The Stack's schema.

Inputs are planned once, in the parent process, into a manifest (`work/manifest.jsonl`, one input per line): every task
then reads its share of lines, the progress total is known up front, and a rerun sees exactly the same inputs. A
source path that does not exist, or a directory that cannot be listed, becomes a manifest line too, so the reader
accounts for it like any other input instead of failing the run.

Every document carries: source, repo, path (inside the repo), lang, stars, commit (git HEAD or None), bytes."""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from .languages import language_of, stack_language, strip_compression
from .rejects import reject_writer, rejected
from .task_progress import ProgressWriter

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".tox", ".mypy_cache", ".pytest_cache"}


@dataclass
class Source:
    """One input. kind: "dir" (a directory or git repository), "zip" (an archive of source files) or "stack"
    (a .jsonl/.jsonl.gz/.parquet file, or a directory of them, with The Stack's columns).

    repo_depth: how many leading path components name a repository. 0 = the whole directory is one repository;
      1 = each child directory is one (a folder of cloned repos, the stdlib's packages); None = decide: 0 when the
      directory is a git repository, 1 when its children are, else 0. A file shallower than the depth is its own
      repository, named by the file's stem.
    languages: keep only files of these languages (others are not inputs); None keeps everything and lets the
      language filter drop unknown extensions with a reason.
    default_lang: language for files without an extension (C++ standard headers have none).
    max_bytes: select whole repositories, in a seeded order, until this many bytes on disk (a sample of a big
      source; a .gz document counts with its compressed size).
    """

    kind: str
    path: str
    name: str | None = None
    repo_depth: int | None = None
    languages: list[str] | None = None
    default_lang: str | None = None
    max_bytes: int | None = None
    stars: int = 0
    # a dir source may list extra roots (e.g. several node_modules trees); they share the budget
    extra_paths: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)  # relative directories to leave out (e.g. "site-packages")

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name or self.path


def git_head(directory: Path) -> str | None:
    """The commit a git checkout's HEAD points at, read from .git without running git."""
    git = directory / ".git"
    try:
        if git.is_file():  # worktree / submodule: "gitdir: <path>"
            git = (directory / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        ref_file = git / ref
        if ref_file.is_file():
            return ref_file.read_text().strip()
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except (OSError, IndexError):
        return None
    return None


def _stable_order(key: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{key}".encode())


def _repo_of(rel: str, depth: int, label: str) -> tuple[str, str]:
    """('json/decoder.py', 1, 'stdlib') -> ('stdlib/json', 'decoder.py'); a shallow file is its own repo."""
    parts = rel.split("/")
    if depth == 0:
        return label, rel
    if len(parts) <= depth:
        stem = strip_compression(parts[-1]).rsplit(".", 1)[0] or parts[-1]
        return "/".join([label, *parts[:-1], stem]), parts[-1]
    return "/".join([label, *parts[:depth]]), "/".join(parts[depth:])


def _walk_files(root: Path, notes: list[dict], exclude: list[str] = ()) -> Iterator[tuple[str, int]]:
    """(relative path, size) of every file under root, sorted; unlistable directories are recorded in notes."""
    def onerror(e: OSError) -> None:
        notes.append({"kind": "unreadable", "path": str(e.filename), "detail": e.strerror or str(e)})

    excluded = {root / e for e in exclude}
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and Path(dirpath) / d not in excluded)
        for fn in sorted(filenames):
            full = Path(dirpath) / fn
            try:
                size = full.lstat().st_size if not full.is_symlink() or not full.exists() else full.stat().st_size
            except OSError:
                size = 0
            yield full.relative_to(root).as_posix(), size


def _auto_depth(root: Path) -> int:
    if (root / ".git").exists():
        return 0
    try:
        if any((c / ".git").exists() for c in root.iterdir() if c.is_dir()):
            return 1
    except OSError:
        pass
    return 0


def _select(items: list[dict], source: Source, seed: int) -> list[dict]:
    """Languages first (files of other languages are not inputs), then whole repositories up to the byte budget."""
    if source.languages is not None:
        wanted = set(source.languages)
        items = [it for it in items if it["kind"] != "file" and it["kind"] != "zip"
                 or language_of(it["path"], source.default_lang) in wanted]
    if source.max_bytes is None:
        return items
    by_repo: dict[str, list[dict]] = {}
    for it in items:
        by_repo.setdefault(it.get("repo", ""), []).append(it)
    chosen, used = [], 0
    for repo in sorted(by_repo, key=lambda r: _stable_order(r, seed)):
        for it in by_repo[repo]:
            if used + it.get("size", 0) > source.max_bytes:
                continue  # skip what does not fit; smaller files further on may still fit
            chosen.append(it)
            used += it.get("size", 0)
        if used >= source.max_bytes:
            break
    return chosen


def plan_source(source: Source, seed: int = 0) -> list[dict]:
    """The manifest lines for one source."""
    label = source.label
    base = {"source": label}
    roots = [Path(source.path), *map(Path, source.extra_paths)]
    items: list[dict] = []
    if source.kind == "stack":
        for root in roots:
            if not root.exists():
                items.append({**base, "kind": "missing", "path": str(root)})
            elif root.is_dir():
                items += [{**base, "kind": "table", "file": str(p), "path": p.name} for p in sorted(root.rglob("*"))
                          if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz", ".json", ".parquet"))]
            else:
                items.append({**base, "kind": "table", "file": str(root), "path": root.name})
        return items
    for root in roots:
        if not root.exists():
            items.append({**base, "kind": "missing", "path": str(root)})
            continue
        if source.kind == "zip":
            depth = 1 if source.repo_depth is None else source.repo_depth
            try:
                with zipfile.ZipFile(root) as zf:
                    for info in sorted(zf.infolist(), key=lambda i: i.filename):
                        if info.is_dir():
                            continue
                        repo, rel = _repo_of(info.filename, depth, label)
                        items.append({**base, "kind": "zip", "archive": str(root), "member": info.filename,
                                      "repo": repo, "path": rel, "size": info.file_size})
            except (OSError, zipfile.BadZipFile) as e:
                items.append({**base, "kind": "unreadable", "path": str(root), "detail": str(e)})
            continue
        if source.kind != "dir":
            raise ValueError(f"unknown source kind {source.kind!r}")
        if root.is_file():  # a single file is a one-file repository
            items.append({**base, "kind": "file", "root": str(root.parent), "rel": root.name, "repo": label,
                          "path": root.name, "size": root.stat().st_size, "commit": None})
            continue
        depth = _auto_depth(root) if source.repo_depth is None else source.repo_depth
        notes: list[dict] = []
        commits: dict[str, str | None] = {}
        sub_label = label if root == roots[0] else f"{label}/{root.parent.name}/{root.name}"
        for rel, size in _walk_files(root, notes, source.exclude):
            repo, path = _repo_of(rel, depth, sub_label)
            prefix = "/".join(rel.split("/")[:depth]) if depth and rel.count("/") >= depth else ""
            if prefix not in commits:
                commits[prefix] = git_head(root / prefix) if prefix or depth == 0 else None
            items.append({**base, "kind": "file", "root": str(root), "rel": rel, "repo": repo, "path": path,
                          "size": size, "commit": commits[prefix]})
        items += [{**base, **n} for n in notes]
    return _select(items, source, seed)


def plan_inputs(sources: list[Source], manifest: Path, seed: int = 0) -> int:
    """Write the manifest (atomically) and return the number of inputs in it."""
    manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_name(manifest.name + ".tmp")
    n = 0
    with open(tmp, "w") as f:
        for source in sources:
            for item in plan_source(source, seed):
                if source.default_lang:
                    item["default_lang"] = source.default_lang
                if source.stars:
                    item["stars"] = source.stars
                f.write(json.dumps(item) + "\n")
                n += 1
    os.replace(tmp, manifest)
    return n


def decode_text(data: bytes) -> tuple[str | None, str]:
    """(text, "") or (None, reason) for content that is not text we can train on."""
    if not data.strip():
        return None, "empty"
    if b"\x00" in data[:8192]:
        return None, "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not_utf8"
    return text.removeprefix("\ufeff"), ""


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_table_rows(path: str) -> Iterator[tuple[int, Any]]:
    """(row number, parsed row or the exception that stopped it) for JSONL (optionally gzipped) and Parquet."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq  # here, not at the top: slow to import, and only Parquet sources need it

        pf = pq.ParquetFile(path)
        i = 0
        for batch in pf.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield i, row
                i += 1
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for i, line in enumerate(io.BufferedReader(f) if opener is gzip.open else f):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except ValueError as e:
                yield i, e


class SourceReader(PipelineStep):
    """Reads this task's share of the manifest into Documents; anything unreadable is rejected with its reason."""

    type = "📖 - READER"
    name = "🗂 sources"
    step_key = "read"

    def __init__(self, manifest: str, rejects_dir: str, max_file_bytes: int = 1_000_000,
                 progress_dir: str | None = None):
        super().__init__()
        self.rejects = reject_writer(rejects_dir, self.step_key)
        self._rank = 0
        self.manifest = manifest
        self.max_file_bytes = max_file_bytes
        self.progress_dir = progress_dir

    # -- one input item -> documents ---------------------------------------------------------------------------
    def _doc(self, item: dict, repo: str, path: str, text: str, nbytes: int, lang: str | None, stars: int = 0,
             commit: str | None = None) -> Document:
        meta = {"source": item["source"], "repo": repo, "path": path, "lang": lang, "stars": stars,
                "commit": commit, "bytes": nbytes}
        return Document(text=text, id=f"{item['source']}:{repo}/{path}", metadata=meta)

    def reject(self, doc_id: str, metadata: dict[str, Any], reason: str, detail: str = "") -> None:
        self.stat_update(f"drop/{reason}")
        self.rejects.write(rejected(doc_id, metadata, reason, detail), self._rank)

    def _count_in(self, nbytes: int) -> None:
        self.stat_update("in/files")
        self.stat_update("in/bytes", value=nbytes, unit="file")

    def _from_bytes(self, item: dict, data: bytes | None, why: str) -> Iterator[Document]:
        meta = {"source": item["source"], "repo": item["repo"], "path": item["path"], "bytes": item.get("size", 0)}
        doc_id = f"{item['source']}:{item['repo']}/{item['path']}"
        self._count_in(item.get("size", 0))
        if data is None:
            self.reject(doc_id, meta, why[0], why[1])
            return
        if item["path"].endswith(".gz"):
            try:
                with gzip.open(io.BytesIO(data)) as gz:
                    data = gz.read(self.max_file_bytes + 1)
            except (OSError, EOFError, zlib.error) as e:
                self.reject(doc_id, meta, "unreadable", f"bad gzip: {e}")
                return
            if len(data) > self.max_file_bytes:  # sizes are planned on disk; a gzip can expand past the cap
                self.reject(doc_id, meta, "too_large", f">{self.max_file_bytes} bytes decompressed")
                return
        text, reason = decode_text(data)
        if text is None:
            self.reject(doc_id, meta, reason)
            return
        lang = language_of(item["path"], item.get("default_lang"))
        yield self._doc(item, item["repo"], item["path"], text, len(data), lang, item.get("stars", 0),
                        item.get("commit"))

    def _read_file(self, item: dict) -> Iterator[Document]:
        full = Path(item["root"]) / item["rel"]
        if full.is_symlink() and not full.exists():
            return self._from_bytes(item, None, ("broken_symlink", os.readlink(full)))
        if item.get("size", 0) > self.max_file_bytes:
            return self._from_bytes(item, None, ("too_large", f"{item['size']} bytes"))
        try:
            if not full.is_file():
                return self._from_bytes(item, None, ("unreadable", "not a regular file"))
            with open(full, "rb") as f:
                data = f.read(self.max_file_bytes + 1)
        except OSError as e:
            return self._from_bytes(item, None, ("unreadable", e.strerror or str(e)))
        if len(data) > self.max_file_bytes:  # grew since planning
            return self._from_bytes(item, None, ("too_large", f">{self.max_file_bytes} bytes"))
        return self._from_bytes(item, data, ("", ""))

    def _read_zip(self, item: dict, archives: dict[str, zipfile.ZipFile]) -> Iterator[Document]:
        if item.get("size", 0) > self.max_file_bytes:
            return self._from_bytes(item, None, ("too_large", f"{item['size']} bytes"))
        try:
            zf = archives.get(item["archive"]) or archives.setdefault(item["archive"], zipfile.ZipFile(item["archive"]))
            data = zf.read(item["member"])
        except (OSError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            return self._from_bytes(item, None, ("unreadable", str(e)))
        return self._from_bytes(item, data, ("", ""))

    def _read_table(self, item: dict) -> Iterator[Document]:
        try:
            for i, row in _read_table_rows(item["file"]):
                rid = f"{item['source']}:{item['path']}#{i}"
                if isinstance(row, Exception) or not isinstance(row, dict) or not isinstance(row.get("content"), str):
                    self._count_in(0)
                    detail = str(row)[:200] if isinstance(row, Exception) else "no string 'content' field"
                    self.reject(rid, {"source": item["source"], "path": f"{item['path']}#{i}"}, "malformed_record",
                                detail)
                    continue
                content = row["content"]
                nbytes = len(content.encode("utf-8", "surrogatepass"))
                repo = str(row.get("max_stars_repo_name") or row.get("repo_name") or item["path"])
                path = str(row.get("max_stars_repo_path") or row.get("path") or f"row{i}")
                stars = row.get("max_stars_count") or 0
                meta = {"source": item["source"], "repo": repo, "path": path, "bytes": nbytes}
                self._count_in(nbytes)
                if not _is_utf8(content):  # JSON can carry lone surrogates, which no UTF-8 writer accepts
                    self.reject(f"{item['source']}:{repo}/{path}", meta, "not_utf8", "lone surrogate")
                    continue
                if nbytes > self.max_file_bytes:
                    self.reject(f"{item['source']}:{repo}/{path}", meta, "too_large", f"{nbytes} bytes")
                    continue
                if not content.strip():
                    self.reject(f"{item['source']}:{repo}/{path}", meta, "empty")
                    continue
                yield self._doc(item, repo, path, content, nbytes, stack_language(row.get("lang"), path),
                                int(stars) if isinstance(stars, (int, float)) else 0,
                                row.get("max_stars_repo_head_hexsha") or row.get("commit"))
        except (OSError, ValueError, EOFError, zlib.error) as e:  # a truncated gzip or unreadable parquet
            self._count_in(0)
            self.reject(f"{item['source']}:{item['path']}", {"source": item["source"], "path": item["path"]},
                        "unreadable", f"stopped reading: {e}")

    def _items(self, rank: int, world_size: int) -> Iterator[dict]:
        with open(self.manifest) as f:
            for i, line in enumerate(f):
                if i % world_size == rank:
                    yield json.loads(line)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        archives: dict[str, zipfile.ZipFile] = {}
        progress = ProgressWriter(self.progress_dir, rank)
        self._rank = rank
        with self.rejects:
            for item in self._items(rank, world_size):
                kind = item["kind"]
                with self.track_time():
                    if kind == "file":
                        docs = list(self._read_file(item))
                    elif kind == "zip":
                        docs = list(self._read_zip(item, archives))
                    elif kind == "table":
                        docs = self._read_table(item)
                    else:  # "missing" source path or "unreadable" directory: one input, dropped with its reason
                        self._count_in(0)
                        self.reject(f"{item['source']}:{item['path']}", item, "missing_source" if kind == "missing"
                                    else "unreadable", item.get("detail", "path does not exist"))
                        docs = []
                for doc in docs:
                    yield doc
                progress.advance()
        progress.close()
        for zf in archives.values():
            zf.close()
