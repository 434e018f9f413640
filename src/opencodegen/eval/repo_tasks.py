"""Repository-level completion tasks (RepoBench / CrossCodeEval manner), built from repositories on disk with `ast`.

A task is a line of a Python file that uses a name (function, class, constant) defined in ANOTHER file of the same
repository, reached through an import of that file:

    from .util import parse, LIMIT        ->  a later line reading `parse(...)` or `LIMIT`
    from pkg.util import *                ->  any use of a name util.py defines
    from . import util / import util      ->  a line reading `util.parse(...)`

Imports resolve to the repository's own files only: relative ones against the importing file's package; absolute
ones through the repository's own name when it is a package (stdlib packages import themselves as
`idlelib.config`), or by their dotted path from the repository's root when the root is not a package. A name a file only re-exports (its
own `from .x import name`) is followed to the file that defines it, a few hops deep.

The model sees the file up to the line (the prompt ends with the line before it) and writes the line; the context
files are the files the importing file imports from the repository, in the order the corpus builder packs a
repository (data/repo.py's dependency order), so a model trained on repository documents reads them as it was
trained. Every file and every candidate line is kept as a task or logged with the reason (`skipped`).
"""

from __future__ import annotations

import ast
import functools
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..data.repo import dependency_edges, dependency_order
from ..errors import UserError
from .py_scopes import shadowed_loads

FOLLOW_HOPS = 4  # re-exports followed before a name counts as not found


class NoTasks(UserError):
    """The repositories have no line that uses a name another of their files defines."""


@dataclass(frozen=True)
class RepoTask:
    task_id: str  # "repo/path:line"
    repo: str
    path: str
    line: int  # 1-based
    prefix: str  # the file before the line (ends with a newline, or empty)
    target: str  # the line, without its newline
    uses: tuple[str, ...]  # "defining/path.py:name" of each cross-file name the line uses
    context: tuple[str, ...]  # the files the importing file imports from, in packing order (never `path` itself)


@dataclass
class Repository:
    name: str
    files: dict[str, str]  # path -> text, Python files that parse
    order: list[str] = field(default_factory=list)  # every file of `files` in packing order


def module_key(path: str) -> tuple[str, ...]:
    parts = tuple(path[:-3].split("/"))
    return parts[:-1] if parts[-1] == "__init__" else parts


def read_repository(name: str, root: Path, skipped: list[dict]) -> Repository:
    """The repository's Python files that decode and parse; every other file is logged in `skipped`."""
    files, langs = {}, {}
    everything = sorted(q for q in root.rglob("*") if q.is_file())
    if not everything:
        skipped.append({"repo": name, "path": "", "reason": "the repository has no files"})
    for p in everything:
        rel = p.relative_to(root).as_posix()
        where = {"repo": name, "path": rel}
        if p.suffix != ".py":
            skipped.append({**where, "reason": "not a Python file"})
            continue
        try:
            text = p.read_text(encoding="utf-8")
            ast.parse(text)
        except UnicodeDecodeError:
            skipped.append({**where, "reason": "not UTF-8"})
            continue
        except (SyntaxError, ValueError) as e:
            skipped.append({**where, "reason": f"does not parse ({type(e).__name__}: {e})"})
            continue
        files[rel] = text
        langs[rel] = "python"
    paths = list(files)
    order = dependency_order(paths, dependency_edges(paths, [files[p] for p in paths], [langs[p] for p in paths]))
    return Repository(name, files, [paths[i] for i in order])


class Resolver:
    """Imports of one repository resolved to its files, and names to the files that define them."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.modules = {module_key(p): p for p in repo.files}
        self.trees = {p: ast.parse(t) for p, t in repo.files.items()}
        self.own_name = repo.name.rsplit("/", 1)[-1]
        self.defined = {p: _top_level_names(tree) for p, tree in self.trees.items()}
        self.bindings = {p: self._bindings(p) for p in repo.files}
        self.dotted = {p: self._dotted(p) for p in repo.files}

    def module(self, importer: str, dotted: str | None, level: int) -> str | None:
        comps = tuple(c for c in (dotted or "").split(".") if c)
        if level:
            base = tuple(importer.split("/")[:-1])
            if level - 1 > len(base):
                return None
            base = base[:len(base) - (level - 1)]
            return self.modules.get(base + comps)
        if not comps:
            return None
        if comps[0] == self.own_name and (found := self.modules.get(comps[1:])) is not None:
            return found
        # A bare `import sibling` reaches the repository's root only when the root is not itself a package (a
        # package's modules import each other relatively or through its name; `import __main__` in idlelib is not
        # idlelib/__main__.py).
        return None if () in self.modules else self.modules.get(comps)

    def _bindings(self, path: str) -> dict[str, tuple[str, str | None]]:
        """local name -> (file, name defined there) for `from m import name`, (file, None) for a module."""
        out: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(self.trees[path]):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        target = self.module(path, node.module, node.level)
                        if target is not None:
                            for name in self.defined[target]:
                                if not name.startswith("_"):
                                    out.setdefault(name, (target, name))
                        continue
                    dotted = f"{node.module}.{alias.name}" if node.module else alias.name
                    submodule = self.module(path, dotted, node.level)
                    if submodule is not None:
                        out[alias.asname or alias.name] = (submodule, None)
                        continue
                    target = self.module(path, node.module, node.level)
                    if target is not None:
                        out[alias.asname or alias.name] = (target, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname is None and "." in alias.name:
                        continue  # `import a.b` binds `a`: see _dotted
                    target = self.module(path, alias.name, 0)
                    if target is not None:
                        out[alias.asname or alias.name] = (target, None)
        return out

    def _dotted(self, path: str) -> dict[str, str]:
        """dotted module name -> file, for each `import a.b.c` without an alias and the packages it imports on the
        way (`a`, `a.b`): the file reads `a.b.c.name`, which is `name` in a/b/c.py."""
        out: dict[str, str] = {}
        for node in ast.walk(self.trees[path]):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname is None and "." in alias.name:
                        comps = alias.name.split(".")
                        for k in range(1, len(comps) + 1):
                            dotted = ".".join(comps[:k])
                            if (target := self.module(path, dotted, 0)) is not None:
                                out[dotted] = target
        return out

    def definition(self, path: str, name: str, hops: int = FOLLOW_HOPS) -> str | None:
        """The file that defines `name` as seen from `path` (following re-exports), or None."""
        if name in self.defined[path]:
            return path
        bound = self.bindings[path].get(name)
        if hops == 0 or bound is None or bound[1] is None:
            return None
        return self.definition(bound[0], bound[1], hops - 1)

    def cross_file_uses(self, path: str) -> dict[int, list[str]]:
        """line -> ["defining/file.py:name", ...] for every use in `path` of a name another file defines."""
        bindings, dotted = self.bindings[path], self.dotted[path]
        shadowed = shadowed_loads(self.trees[path])
        uses: dict[int, list[str]] = {}
        for node in ast.walk(self.trees[path]):
            found = None
            if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in bindings
                    and id(node) not in shadowed):
                target, name = bindings[node.id]
                if name is not None:
                    found = (self.definition(target, name), name)
            elif isinstance(node, ast.Attribute) and (module := self._module_read(node.value, path, shadowed)):
                found = (self.definition(module, node.attr), node.attr)
            if found and found[0] is not None and found[0] != path:
                entry = f"{found[0]}:{found[1]}"
                uses.setdefault(node.lineno, [])
                if entry not in uses[node.lineno]:
                    uses[node.lineno].append(entry)
        return uses

    def _module_read(self, value: ast.expr, path: str, shadowed: set[int]) -> str | None:
        """The file `value` names when it is an imported module: `u` after `import units as u` or `from . import
        units`, `a.b` after `import a.b`; None otherwise (or when a local binding shadows its first name)."""
        chain = []
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or id(value) in shadowed:
            return None
        if not chain:
            bound = self.bindings[path].get(value.id)
            if bound is not None and bound[1] is None:
                return bound[0]
        return self.dotted[path].get(".".join([value.id, *reversed(chain)]))

    def context(self, path: str) -> tuple[str, ...]:
        """The files `path` imports from (and the files defining what it imports), in packing order."""
        dotted = self.dotted[path]
        # the modules `import a.b` names, not the packages on the way (those are imported only to reach a.b)
        wanted = {f for d, f in dotted.items() if not any(other.startswith(d + ".") for other in dotted)}
        for target, name in self.bindings[path].values():
            wanted.add(target)
            if name is not None and (where := self.definition(target, name)) is not None:
                wanted.add(where)
        wanted.discard(path)
        return tuple(p for p in self.repo.order if p in wanted)


def header_end(text: str, name: str) -> int | None:
    """The last line of the top-level definition of `name` in `text` that tells a reader how to use it: a function's
    signature and docstring (not its body), a class's as far as its `__init__`'s signature and docstring (how it is
    built), an assignment whole; None when `text` does not define it."""
    return _header_ends(text).get(name)


@functools.lru_cache(maxsize=64)
def _header_ends(text: str) -> dict[str, int]:
    """header_end of every top-level name of `text` (the first definition of each), parsed once: a repository's
    lines ask for the same defining files again and again."""
    ends: dict[str, int] = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            init = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                         and n.name == "__init__"), None) if isinstance(node, ast.ClassDef) else None
            ends.setdefault(node.name, _signature_end(init or node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for n in (n for t in targets for n in ast.walk(t)):
                if isinstance(n, ast.Name):
                    ends.setdefault(n.id, node.end_lineno)
    return ends


def _signature_end(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno  # the docstring
    return max(node.lineno, first.lineno - 1)


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def repository_tasks(repo: Repository, skipped: list[dict]) -> list[RepoTask]:
    """Every line of `repo` that uses a name defined in another of its files; files with none are logged."""
    resolver = Resolver(repo)
    tasks = []
    for path in sorted(repo.files):
        uses = resolver.cross_file_uses(path)
        if not uses:
            reason = ("the repository has no other Python file" if len(repo.files) == 1 else
                      "uses no name defined in another file of the repository")
            skipped.append({"repo": repo.name, "path": path, "reason": reason})
            continue
        lines = repo.files[path].splitlines(keepends=True)
        context = resolver.context(path)
        for line in sorted(uses):
            tasks.append(RepoTask(task_id=f"{repo.name}/{path}:{line}", repo=repo.name, path=path, line=line,
                                  prefix="".join(lines[:line - 1]), target=lines[line - 1].rstrip("\r\n"),
                                  uses=tuple(uses[line]), context=context))
    return tasks


def discover(root: Path) -> list[tuple[str, Path]]:
    """--repos DIR: (name, directory) of each subdirectory, one repository each."""
    if not root.exists():
        raise UserError(f"--repos {root}: no such directory")
    if not root.is_dir():
        raise UserError(f"--repos {root}: not a directory (give a directory with one subdirectory per repository)")
    repos = sorted((p.name, p) for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not repos:
        raise UserError(f"--repos {root}: no subdirectories (give a directory with one subdirectory per "
                        "repository)")
    return repos


def build_tasks(repos: list[tuple[str, Path]], limit: int | None = None, seed: int = 0
                ) -> tuple[list[RepoTask], list[dict], dict[str, Repository]]:
    """(tasks, skipped, repositories). With `limit`, a seeded random choice of that many tasks (in task order); the
    others are logged as not chosen."""
    skipped: list[dict] = []
    tasks, by_name = [], {}
    for name, root in repos:
        repo = read_repository(name, root, skipped)
        by_name[name] = repo
        tasks += repository_tasks(repo, skipped)
    if not tasks:
        raise NoTasks(f"no repository-level task in {', '.join(str(r) for _, r in repos)}: no Python file uses a "
                        "name defined in another file of its repository (see the reasons in skipped.jsonl)")
    if limit is not None and limit < len(tasks):
        chosen = set(random.Random(seed).sample(range(len(tasks)), limit))
        skipped += [{"repo": t.repo, "path": t.path, "line": t.line,
                     "reason": f"not among the {limit} tasks chosen (--limit {limit}, seed {seed})"}
                    for i, t in enumerate(tasks) if i not in chosen]
        tasks = [t for i, t in enumerate(tasks) if i in chosen]
    return tasks, skipped, by_name
