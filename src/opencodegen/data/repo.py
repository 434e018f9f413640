"""Repository-level packing (CodeGemma, DeepSeek-Coder, Qwen2.5-Coder): a repository's files become one document,
ordered so that a file comes after the files it imports, with each test file right after the file it tests.

Grouping: datatrove has no group-by, so the clean stage writes each file to `buckets/<hash(repo) % B>/` and one pack
task per bucket reads its bucket and groups in memory (a bucket is a small slice of the corpus).

Ordering: imports/includes are parsed with regexes (Python, Java, C/C++, JavaScript/TypeScript) and resolved to the
repository's files by the longest matching path suffix (`from pkg.sub import mod` prefers `src/pkg/sub/mod.py` over
`other/mod.py`); ties go to the file sharing the longest directory prefix with the importer, then the smaller path.
There is an edge B -> A when A depends on B. Within each connected part of the graph the file with the smallest
remaining in-degree is placed next (DeepSeek-Coder), ties by path: a topological order when there is one, and a
sensible order through cycles. Parts are placed in order of their smallest path.

The document's text is the files' contents concatenated, and metadata["files"] lists (path, lang, chars) in order, so
the tokenizer can render the Qwen2.5-Coder repository format (`<|repo_name|>name\\n<|file_sep|>path\\ncontent...`) with
real special-token ids, apply FIM per file, or emit single files (file-level format)."""

from __future__ import annotations

import heapq
import json
import os
import posixpath
import re
import zlib
from pathlib import Path, PurePosixPath

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.jsonl import JsonlReader

# ---------------------------------------------------------------------------------------------------------------
# import parsing

_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+\(?([\w, \t*]+)", re.M)
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)",
                        re.M)
_JAVA_IMPORT = re.compile(r"^[ \t]*import[ \t]+(?:static[ \t]+)?([\w.]+)(\.\*)?[ \t]*;", re.M)
_C_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]', re.M)
_JS_IMPORT = re.compile(r"""(?:\bimport\s+(?:[\w*{}\s,$]+\s+from\s+)?|\bexport\s+[\w*{}\s,$]+\s+from\s+|\brequire\s*\(\s*|\bimport\s*\(\s*)(['"])([^'"\n]+)\1""")

JS_EXTS = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts")


class Import:
    """One dependency: `exact` repository paths to try first (relative imports), then `module` components matched
    by longest suffix (at least `min_len` of them); `wildcard` matches every file in a package directory (Java .*)."""

    __slots__ = ("exact", "module", "min_len", "wildcard", "fallback")

    def __init__(self, exact=(), module=(), min_len=1, wildcard=False, fallback=()):
        self.exact, self.module, self.min_len, self.wildcard, self.fallback = exact, module, min_len, wildcard, fallback


def parse_imports(path: str, text: str, lang: str | None) -> list[Import]:
    here = posixpath.dirname(path)
    out: list[Import] = []
    if lang == "python":
        for m in _PY_IMPORT.finditer(text):
            for part in m.group(1).split(","):
                mod = part.split()[0]
                comps = tuple(mod.split("."))
                out.append(Import(module=comps, min_len=min(len(comps), 2)))
        for m in _PY_FROM.finditer(text):
            dots, mod, names = m.group(1), m.group(2), [n.split()[0] for n in m.group(3).split(",") if n.strip()]
            comps = tuple(c for c in mod.split(".") if c)
            if dots:  # relative: resolved against this file's package, exactly
                package = tuple(here.split("/")) if here else ()
                if len(dots) - 1 > len(package):
                    continue  # above the repository's root: not one of its files
                root = package[:len(package) - (len(dots) - 1)] + comps
                for n in names:
                    if n != "*":  # a submodule, else a name the package's __init__.py defines
                        out.append(Import(exact=(_py_path(*root, n), _py_path(*root, n, "__init__"),
                                                 _py_path(*root, "__init__"))))
                if comps:
                    out.append(Import(exact=(_py_path(*root), _py_path(*root, "__init__"))))
                continue
            for n in names:
                if n != "*":
                    full = comps + (n,)
                    out.append(Import(module=full, min_len=min(len(full), 2), fallback=comps))
            if not names or "*" in names:
                out.append(Import(module=comps, min_len=min(len(comps), 2)))
    elif lang == "java":
        for m in _JAVA_IMPORT.finditer(text):
            comps = tuple(m.group(1).split("."))
            if m.group(2):
                out.append(Import(module=comps, min_len=min(len(comps), 2), wildcard=True))
            else:  # a static import names a member: fall back to its class
                out.append(Import(module=comps, min_len=min(len(comps), 2), fallback=comps[:-1]))
    elif lang in ("c", "cpp"):
        for m in _C_INCLUDE.finditer(text):
            target = m.group(2).strip()
            exact = (posixpath.normpath(posixpath.join(here, target)),) if m.group(1) == '"' else ()
            out.append(Import(exact=exact, module=tuple(p for p in target.split("/") if p not in ("", "."))))
    elif lang in ("javascript", "typescript"):
        for m in _JS_IMPORT.finditer(text):
            spec = m.group(2)
            if spec.startswith("."):
                base = posixpath.normpath(posixpath.join(here, spec))
                out.append(Import(exact=(base, *(base + e for e in JS_EXTS), *(f"{base}/index{e}" for e in JS_EXTS))))
            else:
                comps = tuple(spec.split("/"))
                out.append(Import(module=comps, min_len=min(len(comps), 2)))
    return out


def _py_path(*components: str) -> str:
    """("pkg", "util") -> "pkg/util.py"; a file at the repository's root has no leading "/"."""
    return "/".join(components) + ".py"


def module_key(path: str, lang: str | None) -> tuple[str, ...]:
    """The components an import names a file by: a/b/c.py -> (a, b, c); a/b/__init__.py -> (a, b);
    x/index.js -> (x,); C/C++ headers keep their extension (includes name files)."""
    p = PurePosixPath(path)
    if lang in ("c", "cpp"):
        return p.parts
    parts = p.with_suffix("").parts if p.suffix else p.parts
    if parts and ((lang == "python" and parts[-1] == "__init__") or
                  (lang in ("javascript", "typescript") and parts[-1] == "index")):
        parts = parts[:-1]
    return parts


def _shared_dirs(a: str, b: str) -> int:
    here, there = PurePosixPath(a).parent.parts, PurePosixPath(b).parent.parts
    n = 0
    while n < min(len(here), len(there)) and here[n] == there[n]:
        n += 1
    return n


def closest(path: str, cands: list[int], paths: list[str]) -> int:
    """The candidate sharing the longest directory prefix with `path`, then the smallest path."""
    return min(cands, key=lambda i: (-_shared_dirs(path, paths[i]), paths[i]))


class RepoIndex:
    """Resolves imports to file indices of one repository."""

    def __init__(self, paths: list[str], langs: list[str | None]):
        self.paths = paths
        self.by_path = {p: i for i, p in enumerate(paths)}
        self.by_suffix: dict[tuple[str, ...], list[int]] = {}
        self.by_dir_suffix: dict[tuple[str, ...], list[int]] = {}
        for i, (p, lang) in enumerate(zip(paths, langs)):
            key = module_key(p, lang)
            for k in range(1, len(key) + 1):
                self.by_suffix.setdefault(key[-k:], []).append(i)
            d = PurePosixPath(p).parent.parts
            for k in range(1, len(d) + 1):
                self.by_dir_suffix.setdefault(d[-k:], []).append(i)

    def _closest(self, importer: int, cands: list[int]) -> int:
        return closest(self.paths[importer], cands, self.paths)

    def resolve(self, importer: int, imp: Import) -> list[int]:
        for p in imp.exact:
            i = self.by_path.get(p)
            if i is not None and i != importer:
                return [i]
        for module in (imp.module, imp.fallback):
            for start in range(0, len(module) - imp.min_len + 1):  # longest suffix first
                suffix = module[start:]
                if not suffix:
                    break
                table = self.by_dir_suffix if imp.wildcard and module is imp.module else self.by_suffix
                cands = [i for i in table.get(suffix, ()) if i != importer]
                if cands:
                    return sorted(cands) if imp.wildcard else [self._closest(importer, cands)]
        return []


def dependency_edges(paths: list[str], texts: list[str], langs: list[str | None]) -> dict[int, set[int]]:
    """deps[a] = the files a imports."""
    index = RepoIndex(paths, langs)
    deps: dict[int, set[int]] = {i: set() for i in range(len(paths))}
    for i, (p, t, lang) in enumerate(zip(paths, texts, langs)):
        for imp in parse_imports(p, t, lang):
            deps[i].update(index.resolve(i, imp))
    return deps


def dependency_order(paths: list[str], deps: dict[int, set[int]]) -> list[int]:
    """Connected parts in order of their smallest path; within a part, repeatedly the file with the fewest
    unplaced dependencies (DeepSeek-Coder's minimum in-degree rule), ties by path."""
    n = len(paths)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    dependents: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, ds in deps.items():
        for b in ds:
            dependents[b].append(a)
            parent[find(a)] = find(b)
    parts: dict[int, list[int]] = {}
    for i in range(n):
        parts.setdefault(find(i), []).append(i)
    order: list[int] = []
    for members in sorted(parts.values(), key=lambda m: min(paths[i] for i in m)):
        indeg = {i: len(deps[i]) for i in members}
        heap = [(indeg[i], paths[i], i) for i in members]
        heapq.heapify(heap)
        placed: set[int] = set()
        while heap:
            d, _, i = heapq.heappop(heap)
            if i in placed or d != indeg[i]:
                continue  # stale entry
            placed.add(i)
            order.append(i)
            for a in dependents[i]:
                if a not in placed:
                    indeg[a] -= 1
                    heapq.heappush(heap, (indeg[a], paths[a], a))
    return order


# ---------------------------------------------------------------------------------------------------------------
# tests next to the code they test

_TEST_NAME = [
    re.compile(r"^test_(?P<stem>.+)$"), re.compile(r"^(?P<stem>.+)_test$"), re.compile(r"^(?P<stem>.+)_tests$"),
    re.compile(r"^(?P<stem>[A-Z]\w*?)Tests?$"), re.compile(r"^Test(?P<stem>[A-Z]\w*)$"),
]
_DOTTED_TEST = re.compile(r"^(?P<stem>[^.]+)\.(?:test|spec)\.")  # a.test.js, a.spec.ts
_TEST_DIRS = {"test", "tests", "__tests__", "testing", "spec"}


def tested_stem(path: str) -> str | None:
    """'tests/test_parser.py' -> 'parser'; 'FooTest.java' -> 'Foo'; 'a.spec.js' -> 'a'; None if not a test file."""
    p = PurePosixPath(path)
    m = _DOTTED_TEST.match(p.name)
    if m:
        return m.group("stem")
    stem = p.stem
    for pat in _TEST_NAME:
        m = pat.match(stem)
        if m:
            return m.group("stem")
    if any(part in _TEST_DIRS for part in p.parent.parts) and stem not in ("__init__", "conftest"):
        return stem
    return None


def place_tests(order: list[int], paths: list[str], deps: dict[int, set[int]]) -> tuple[list[int], int]:
    """Move each test file to just after the file it tests: a non-test file with the tested stem, preferring one the
    test imports, then the closest by directory. Returns (new order, number of tests placed)."""
    stems: dict[str, list[int]] = {}
    is_test = {i: tested_stem(paths[i]) for i in order}
    for i in order:
        if is_test[i] is None:
            stems.setdefault(PurePosixPath(paths[i]).stem, []).append(i)
    target: dict[int, int] = {}
    for i in order:
        stem = is_test[i]
        cands = stems.get(stem, []) if stem else []
        if cands:
            imported = [c for c in cands if c in deps.get(i, ())]
            target[i] = closest(paths[i], imported or cands, paths)
    followers: dict[int, list[int]] = {}
    for i in order:
        if i in target:
            followers.setdefault(target[i], []).append(i)
    out: list[int] = []
    for i in order:
        if i in target:
            continue
        out.append(i)
        out += followers.get(i, [])
    return out, len(target)


# ---------------------------------------------------------------------------------------------------------------
# datatrove steps

def repo_bucket(repo: str, buckets: int) -> int:
    return zlib.crc32(repo.encode("utf-8", "surrogatepass")) % buckets


class AssignRepoBucket(PipelineStep):
    """Tags each file with its repository's bucket; the writer after it files it under `${repo_bucket}/`."""

    type = "📦 - REPO"
    name = "🪣 bucket by repo"

    def __init__(self, buckets: int):
        super().__init__()
        self.buckets = buckets

    def run(self, data, rank: int = 0, world_size: int = 1):
        for doc in data:
            doc.metadata["repo_bucket"] = f"{repo_bucket(doc.metadata['repo'], self.buckets):05d}"
            yield doc


class RepoPacker(PipelineStep):
    """One task per bucket: group files by repository, order them, emit repository documents (at most
    `max_doc_chars` each; a bigger repository continues in further parts, in the same order)."""

    type = "📦 - REPO"
    name = "🧱 pack repositories"

    def __init__(self, buckets_dir: str, repos_dir: str, max_doc_chars: int = 1_000_000):
        super().__init__()
        self.buckets_dir = buckets_dir
        self.repos_dir = repos_dir
        self.max_doc_chars = max_doc_chars

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        folder = Path(self.buckets_dir) / f"{rank:05d}"
        repos: dict[str, list[Document]] = {}
        if folder.is_dir():
            reader = JsonlReader(str(folder), compression=None)
            for doc in reader.read_files_shard(sorted(p.name for p in folder.glob("*.jsonl"))):
                repos.setdefault(doc.metadata["repo"], []).append(doc)
        index_lines = []
        for repo in sorted(repos):
            with self.track_time():
                files = sorted(repos[repo], key=lambda d: d.metadata["path"])
                paths = [d.metadata["path"] for d in files]
                texts = [d.text for d in files]
                langs = [d.metadata.get("lang") for d in files]
                deps = dependency_edges(paths, texts, langs)
                order, n_tests = place_tests(dependency_order(paths, deps), paths, deps)
                self.stat_update("repo/dependency_edges", value=sum(map(len, deps.values())))
                self.stat_update("repo/tests_placed", value=n_tests)
                docs = list(self._documents(repo, [files[i] for i in order]))
            nbytes = sum(len(d.text.encode("utf-8", "surrogatepass")) for d in files)
            index_lines.append(json.dumps({"repo": repo, "files": len(files), "bytes": nbytes, "docs": len(docs)}))
            self.stat_update("kept/repos")
            yield from docs
        out = Path(self.repos_dir) / f"{rank:05d}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in index_lines))
        os.replace(tmp, out)

    def _documents(self, repo: str, files: list[Document]):
        part: list[Document] = []
        size = 0
        n = 0
        for d in files + [None]:
            if d is None or (part and size + len(d.text) > self.max_doc_chars):
                first = part[0].metadata
                meta = {"repo": repo, "part": n, "source": first["source"], "stars": first.get("stars", 0),
                        "commit": first.get("commit"),
                        "files": [[f.metadata["path"], f.metadata.get("lang"), len(f.text)] for f in part]}
                self.stat_update("kept/docs")
                yield Document(text="".join(f.text for f in part), id=f"{repo}#{n}", metadata=meta)
                n += 1
                part, size = [], 0
            if d is not None:
                part.append(d)
                size += len(d.text)
                lang = d.metadata.get("lang") or "unknown"
                nbytes = len(d.text.encode("utf-8", "surrogatepass"))
                self.stat_update("kept/files")
                self.stat_update("kept/bytes", value=nbytes)
                self.stat_update(f"kept/files/{lang}")
                self.stat_update(f"kept/bytes/{lang}", value=nbytes)
