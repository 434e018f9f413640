"""Mine exercises from real code: functions and methods with a docstring and a short, self-contained body.

Sources are directories of .py files (`--mine-dir`) or corpora written by `ocg corpus build` (`--mine-corpus`; a
corpus's held-out repositories, chosen as the quickstart and `ocg corpus tokenize` choose them, are never read).
A function is a candidate when it has a docstring, a body of 1 to `max_body_lines` lines after it, no decorator
other than @staticmethod, is not a generator, and every free name in it is a parameter, a builtin or a module-level
import of its file (those imports go into the prompt). A method that never uses `self`/`cls` becomes a function
without that parameter; one that does is skipped (it needs its class).

Test inputs, all run through the original body in the sandbox (validate.py) to get the expected values:
  - the function's own doctest calls (`>>> name(literal args)`);
  - call sites with literal arguments anywhere in the same repository;
  - `hypothesis` draws for the parameters, from their type hints and from the values the doctests and call sites
    pass (sampled directly, and as bounds for the type's strategy), else from how the body uses the parameter
    (string methods, arithmetic, iteration); seeded, so the same source and seed give the same inputs. Draws whose
    call raises are dropped, not the function.
A function with no way to build an input is kept as an SFT-only pair (no tests)."""

from __future__ import annotations

import ast
import builtins
import doctest
import gzip
import json
import textwrap
import zlib
from collections import defaultdict
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator
from unittest.mock import patch

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from .. import host
from ..errors import UserError
from ..progress import progress_task
from .validate import Candidate

BUILTINS = frozenset(dir(builtins))
MAX_CALLS = 12  # argument tuples per function (doctests and call sites first, then hypothesis draws)
_HINT_NAMES = {"List": "list", "Sequence": "list", "Iterable": "list", "Tuple": "tuple", "Set": "set",
               "FrozenSet": "set", "Dict": "dict", "Mapping": "dict", "Optional": "optional"}


@dataclass
class SourceFile:
    repo: str  # call sites are looked up within a repository
    path: str
    text: str
    origin: str  # where the file is, for meta and ids: <dir name>/<relative path> or <repo>/<path in repo>


# ------------------------------------------------------------------------------------------------- reading sources
def dir_files(root: Path) -> Iterator[SourceFile]:
    if not root.is_dir():
        raise UserError(f"--mine-dir {root}: not a directory")
    for p in sorted(root.rglob("*.py")):
        if p.is_file():
            rel = p.relative_to(root)
            repo = f"{root.name}/{rel.parts[0]}" if len(rel.parts) > 1 else root.name
            try:
                yield SourceFile(repo, str(rel), p.read_text(encoding="utf-8", errors="replace"), f"{root.name}/{rel}")
            except OSError:
                continue


def held_out_repos(corpus: Path) -> set[str]:
    """The corpus's validation repositories, chosen as `ocg corpus tokenize` and the quickstart choose them."""
    from ..data.tokenize import TokenizeConfig
    from ..quickstart.heldout import choose_repos
    return set(choose_repos(corpus, TokenizeConfig())) if (corpus / "repos.jsonl").is_file() else set()


def corpus_files(corpus: Path) -> tuple[Iterator[SourceFile], set[str]]:
    if not (corpus / "data").is_dir():
        raise UserError(f"--mine-corpus {corpus}: no data/ directory (expected a directory written by "
                        "`ocg corpus build`)")
    held = held_out_repos(corpus)

    def files() -> Iterator[SourceFile]:
        for shard in sorted((corpus / "data").glob("*.jsonl.gz")):
            with gzip.open(shard, "rt", encoding="utf-8") as f:
                for line in f:
                    doc = json.loads(line)
                    meta = doc.get("metadata", {})
                    if meta.get("repo") in held:
                        continue
                    offset = 0
                    for path, lang, n in meta.get("files", []):
                        text = doc["text"][offset:offset + n]
                        offset += n
                        if lang == "python" or path.endswith(".py"):
                            repo = meta.get("repo", "")
                            yield SourceFile(repo, path, text, f"{repo}/{path}")
    return files(), held


# ------------------------------------------------------------------------------------------------- static analysis
def _module_imports(tree: ast.Module) -> dict[str, str]:
    """Name bound at module level by an import -> that import statement."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                out[(a.asname or a.name).split(".")[0]] = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"from {node.module} import {a.name}" + (
                        f" as {a.asname}" if a.asname else "")
    return out


def _bound_names(fn: ast.FunctionDef) -> set[str]:
    """Names the function binds itself: parameters, assignments, loop and comprehension targets, nested defs,
    imports, except-as names (over-approximated: any Store anywhere inside)."""
    bound = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not fn:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _free_names(fn: ast.FunctionDef) -> set[str]:
    loaded = {n.id for stmt in fn.body for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    # Annotations and defaults are evaluated at definition time: they need their names too.
    for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:
        if a.annotation is not None:
            loaded |= {n.id for n in ast.walk(a.annotation) if isinstance(n, ast.Name)}
    if fn.returns is not None:
        loaded |= {n.id for n in ast.walk(fn.returns) if isinstance(n, ast.Name)}
    for d in fn.args.defaults + [d for d in fn.args.kw_defaults if d is not None]:
        loaded |= {n.id for n in ast.walk(d) if isinstance(n, ast.Name)}
    return loaded - _bound_names(fn) - BUILTINS


def _literal_calls(tree: ast.AST) -> Iterator[tuple[str, tuple]]:
    """(called name, positional literal arguments) of every call whose arguments are all literals."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not node.keywords and node.args and \
                not any(isinstance(a, ast.Starred) for a in node.args):
            name = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else None)
            if name is None:
                continue
            try:
                yield name, tuple(ast.literal_eval(a) for a in node.args)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue


def _doctest_calls(doc: str, name: str) -> list[tuple]:
    calls = []
    try:
        examples = doctest.DocTestParser().get_examples(doc)
    except ValueError:
        return []
    for ex in examples:
        try:
            tree = ast.parse(ex.source)
        except SyntaxError:
            continue
        calls += [args for called, args in _literal_calls(tree) if called == name]
    return calls


# ------------------------------------------------------------------------------------------------- hypothesis
def _hint_strategy(node: ast.AST | None):
    """A strategy for a parameter from its annotation, or None when the hint is absent or not a plain type."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
        try:
            return _hint_strategy(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
        parts = [_hint_strategy(node.left), _hint_strategy(node.right)]
        return st.one_of(*[p for p in parts if p is not None]) if any(p is not None for p in parts) else None
    if isinstance(node, ast.Constant) and node.value is None:
        return st.none()
    name = node.id if isinstance(node, ast.Name) else (node.attr if isinstance(node, ast.Attribute) else None)
    if name is not None:
        return {"int": st.integers(-50, 100), "str": st.text("abcdefgHIJ xyz019_-.,", max_size=12),
                "float": st.floats(-100, 100, allow_nan=False, allow_infinity=False),
                "bool": st.booleans(), "bytes": st.binary(max_size=12)}.get(name)
    if isinstance(node, ast.Subscript):
        base = node.value.id if isinstance(node.value, ast.Name) else (
            node.value.attr if isinstance(node.value, ast.Attribute) else "")
        base = _HINT_NAMES.get(base, base)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        inner = [_hint_strategy(a) for a in args]
        if any(i is None for i in inner):
            return None
        if base in ("list", "set") and len(inner) == 1:
            return st.lists(inner[0], max_size=6).map(list if base == "list" else set)
        if base == "tuple":
            return st.tuples(*inner) if not (len(args) == 2 and isinstance(args[1], ast.Constant)
                                              and args[1].value is Ellipsis) else None
        if base == "dict" and len(inner) == 2:
            return st.dictionaries(inner[0], inner[1], max_size=4)
        if base == "optional" and len(inner) == 1:
            return st.one_of(st.none(), inner[0])
    return None


_STR_METHODS = frozenset({"upper", "lower", "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith",
                          "replace", "find", "rfind", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower",
                          "title", "capitalize", "casefold", "splitlines", "partition", "rpartition", "zfill",
                          "center", "ljust", "rjust", "expandtabs", "encode", "swapcase", "isidentifier"})
_LIST_METHODS = frozenset({"append", "extend", "pop", "insert", "sort", "reverse", "remove"})


def _usage_strategy(fn: ast.FunctionDef, name: str):
    """For a parameter with no hint and no example value: a strategy from how the body uses it (string methods ->
    str; arithmetic with an int constant, range() -> int; list methods, iteration, len() or indexing -> a list of
    ints), or None when the body says nothing. Draws that do not suit the function raise and are dropped."""
    votes = {"str": 0, "int": 0, "list": 0}
    is_p = lambda n: isinstance(n, ast.Name) and n.id == name  # noqa: E731
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and is_p(node.value):
            votes["str"] += node.attr in _STR_METHODS
            votes["list"] += node.attr in _LIST_METHODS
        elif isinstance(node, ast.BinOp) and (is_p(node.left) or is_p(node.right)):
            other = node.right if is_p(node.left) else node.left
            if isinstance(other, ast.Constant):
                votes["int"] += type(other.value) is int
                votes["str"] += isinstance(other.value, str) and isinstance(node.op, ast.Add)
        elif isinstance(node, ast.Compare) and (is_p(node.left) or any(is_p(c) for c in node.comparators)):
            for c in [node.left, *node.comparators]:
                if isinstance(c, ast.Constant):
                    votes["int"] += type(c.value) is int and not isinstance(node.ops[0], (ast.Eq, ast.NotEq))
                    votes["str"] += isinstance(c.value, str)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and any(is_p(a) for a in node.args):
            votes["int"] += node.func.id in ("range", "bin", "hex", "oct", "chr")
            votes["list"] += node.func.id in ("sorted", "sum", "max", "min", "enumerate")
        elif isinstance(node, (ast.For, ast.comprehension)) and is_p(node.iter):
            votes["list"] += 1
        elif isinstance(node, ast.Subscript) and is_p(node.value):
            votes["list"] += 1
    kind, n = max(votes.items(), key=lambda kv: kv[1])
    if n == 0 or list(votes.values()).count(n) > 1:
        return None
    return {"str": st.text("abcdefgHIJ xyz019_-.,", max_size=12), "int": st.integers(-20, 100),
            "list": st.lists(st.integers(-20, 50), max_size=8)}[kind]


def _value_strategy(values: list):
    """A strategy seeded from the values a parameter was seen with: those values, and more of their kind."""
    sampled = st.sampled_from(values)
    kinds = {type(v) for v in values}
    if kinds == {int}:
        lo, hi = min(values), max(values)
        return st.one_of(sampled, st.integers(lo - 10, hi + 10))
    if kinds == {str}:
        alphabet = "".join(sorted(set("".join(values)))) or "abc"
        return st.one_of(sampled, st.text(alphabet, max_size=max(len(v) for v in values) + 4))
    if kinds == {float}:
        return st.one_of(sampled, st.floats(min(values) - 10, max(values) + 10, allow_nan=False, allow_infinity=False))
    if kinds and kinds <= {list} and all(all(isinstance(x, int) for x in v) for v in values):
        ints = [x for v in values for x in v] or [0]
        return st.one_of(sampled, st.lists(st.integers(min(ints) - 5, max(ints) + 5), max_size=8))
    return sampled


def hypothesis_calls(strategies: list, n: int, key: str) -> list[tuple]:
    """n argument tuples drawn by hypothesis, deterministically for a given key (function identity and seed)."""
    drawn: list[tuple] = []

    @seed(zlib.crc32(key.encode()))
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.tuples(*strategies))
    def collect(args):
        drawn.append(args)

    try:
        with _no_local_constants():
            collect()
    except Exception:  # a strategy that cannot draw (e.g. an unsatisfiable filter): no hypothesis inputs
        return []
    return drawn


@contextmanager
def _no_local_constants():
    """Hypothesis (since 6.131) also draws, now and then, constants it finds in the source of the process's "local"
    modules: here opencodegen's own when it is installed editable, and only those imported so far. The same source
    and seed would then give other inputs in another process, another install or after another import. Mining
    turns that pool off (its global constants, such as edge-case floats, stay). It is private API: on a hypothesis
    without it there is nothing to turn off."""
    try:
        from hypothesis.internal.conjecture import providers
        empty, cache, _ = providers.Constants(), providers.CONSTANTS_CACHE.cache, providers._get_local_constants
    except (ImportError, AttributeError):
        yield
        return
    cache.clear()  # the allowed constants it has worked out so far include the local pool, and will again after
    try:
        with patch.object(providers, "_get_local_constants", lambda: empty):
            yield
    finally:
        cache.clear()


# ------------------------------------------------------------------------------------------------- candidates
def _positional(fn: ast.FunctionDef) -> list[ast.arg]:
    return fn.args.posonlyargs + fn.args.args


def _function_candidate(fn: ast.FunctionDef, cls: str | None, sf: SourceFile, lines: list[str],
                        imports: dict[str, str], call_sites: dict[str, list[tuple]], max_body_lines: int,
                        n_hypothesis: int, run_seed: int) -> tuple[Candidate | None, str, str]:
    """(candidate, "", "") or (None or an SFT-only candidate, reason, detail)."""
    origin = f"{sf.origin}:{fn.lineno}"
    meta: dict[str, Any] = {"origin": origin, "repo": sf.repo, "path": sf.path, "line": fn.lineno, "class": cls}
    stub = Candidate(id=f"mined/{origin}:{fn.name}", source="mined", entry_point=fn.name, params=[],
                     header=f"def {fn.name}(...):", solution="", calls=[], strict=False, meta=meta)
    doc = ast.get_docstring(fn, clean=False)
    if isinstance(fn, ast.AsyncFunctionDef):
        return stub, "async", ""
    if len(fn.body) < 2:
        return stub, "empty_body", ""
    decorators = [ast.unparse(d) for d in fn.decorator_list]
    if [d for d in decorators if d != "staticmethod"]:
        return stub, "decorated", ", ".join(decorators)
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(fn)):
        return stub, "generator", ""
    start, end = fn.body[1].lineno, fn.body[-1].end_lineno or fn.body[-1].lineno
    first = min([start] + [getattr(d, "lineno", start) for d in fn.body[1].__dict__.get("decorator_list", [])])
    if end - first + 1 > max_body_lines:
        return stub, "body_too_long", f"{end - first + 1} lines"
    params = _positional(fn)
    if cls is not None and "staticmethod" not in decorators:
        if not params:
            return stub, "uses_self", "a method without parameters"
        me = params[0].arg
        used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        if me in used or "super" in used or "__class__" in used:
            return stub, "uses_self", f"uses {me}"
        fn = ast.FunctionDef(**{**fn.__dict__, "args": ast.arguments(**{
            **fn.args.__dict__, "posonlyargs": fn.args.posonlyargs[1:] if fn.args.posonlyargs else [],
            "args": fn.args.args[1:] if not fn.args.posonlyargs else fn.args.args})})
        params = _positional(fn)
    free = _free_names(fn) - set(imports)
    if free:
        return stub, "not_self_contained", ", ".join(sorted(free)[:8])
    needed = sorted({imports[n.id] for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id in imports})
    signature = ast.unparse(ast.FunctionDef(**{**fn.__dict__, "body": [ast.Pass()], "decorator_list": []}))
    defline = signature.rsplit("\n", 1)[0]
    ds = fn.body[0]
    doc_text = textwrap.dedent("".join(lines[ds.lineno - 1:ds.end_lineno]))
    body = textwrap.dedent("".join(lines[first - 1:end]))
    if not doc_text.strip() or not body.strip():
        return stub, "empty_body", ""
    header = ("\n".join(needed) + "\n\n\n" if needed else "") + defline
    prompt = f"{header}\n{textwrap.indent(doc_text, '    ')}"
    if not prompt.endswith("\n"):
        prompt += "\n"
    solution = textwrap.indent(body, "    ")
    if not solution.endswith("\n"):
        solution += "\n"
    names = [a.arg for a in params]
    required = len(params) - len(fn.args.defaults)
    doctests = _doctest_calls(doc or "", fn.name)
    sites = call_sites.get(fn.name, [])
    seen = [c for c in doctests + sites if required <= len(c) <= len(params)]
    calls = _unique(seen)[:MAX_CALLS]
    strategies = []
    for i, a in enumerate(params[:required]):
        values = [c[i] for c in seen if len(c) > i]
        hint = _hint_strategy(a.annotation)
        if hint is None and not values:
            hint = _usage_strategy(fn, a.arg)
        strategies.append(_value_strategy(values) if values and hint is None else
                          (st.one_of(_value_strategy(values), hint) if values else hint))
    drawn = []
    if required and all(s is not None for s in strategies) and n_hypothesis:
        drawn = hypothesis_calls(strategies, n_hypothesis, f"{run_seed}:{origin}:{fn.name}")
    elif not required and not calls:
        drawn = [()]
    calls = _unique(calls + drawn)[:MAX_CALLS]
    meta.update({"inputs": {"doctest": len(doctests), "call_sites": len(sites), "hypothesis": len(drawn)},
                 "sft_eligible": True})
    cand = Candidate(id=stub.id, source="mined", entry_point=fn.name, params=names, header=header,
                     solution=solution, calls=calls, prompt=prompt, strict=False, meta=meta)
    if not calls:
        return cand, "no_test_inputs", "no doctest call, literal call site or type hint to draw inputs from"
    return cand, "", ""


def _unique(calls: list[tuple]) -> list[tuple]:
    seen, out = set(), []
    for c in calls:
        key = repr(c)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def file_candidates(sf: SourceFile, tree: ast.Module, call_sites: dict[str, list[tuple]], max_body_lines: int,
                    n_hypothesis: int, run_seed: int) -> Iterator[tuple[Candidate | None, str, str]]:
    lines = sf.text.splitlines(keepends=True)
    imports = _module_imports(tree)
    for node in tree.body:
        owners = [(node, None)] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else (
            [(m, node.name) for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
            if isinstance(node, ast.ClassDef) else [])
        for fn, cls in owners:
            if ast.get_docstring(fn) is None:
                continue  # only documented functions are candidates
            yield _function_candidate(fn, cls, sf, lines, imports, call_sites, max_body_lines, n_hypothesis, run_seed)


def repo_candidates(files: list[SourceFile], max_body_lines: int, n_hypothesis: int, run_seed: int
                    ) -> list[tuple[Candidate | None, str, str]]:
    """One repository's candidates (with the reason when one is rejected before execution), in file order. Each
    file is parsed once, for the repository's call sites and for its functions; a file that does not parse has
    neither."""
    trees = []
    for sf in sorted(files, key=lambda f: f.path):
        try:
            trees.append((sf, ast.parse(sf.text)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    sites: dict[str, list[tuple]] = defaultdict(list)
    for _, tree in trees:
        try:
            for name, args in _literal_calls(tree):
                if len(sites[name]) < MAX_CALLS:
                    sites[name].append(args)
        except (ValueError, RecursionError, MemoryError):  # a pathological file gives the sites found so far
            continue
    return [c for sf, tree in trees for c in file_candidates(sf, tree, sites, max_body_lines, n_hypothesis, run_seed)]


def mine_candidates(dirs: list[Path], corpora: list[Path], max_body_lines: int, n_hypothesis: int, run_seed: int,
                    collected, workers: int | None = None) -> tuple[list[Candidate], list[str]]:
    """Candidates ready for validation; the ones rejected before any execution go straight into `collected`
    (as rejects, or as SFT-only material: see build.sft_only_pairs). workers: processes that read the repositories
    (default: one per core)."""
    from .validate import Outcome

    notes: list[str] = []
    by_repo: dict[str, list[SourceFile]] = defaultdict(list)
    for d in dirs:
        for sf in dir_files(Path(d)):
            by_repo[sf.repo].append(sf)
    for c in corpora:
        files, held = corpus_files(Path(c))
        for sf in files:
            by_repo[sf.repo].append(sf)
        if held:
            notes.append(f"{c}: {len(held)} held-out repositories not mined ({', '.join(sorted(held)[:5])}"
                         f"{', ...' if len(held) > 5 else ''})")
    if not by_repo:
        raise UserError("nothing to mine: the given directories and corpora hold no Python files")
    ready: list[Candidate] = []
    early = Outcome()
    rep = collected.report("mined")
    repos = sorted(by_repo)
    work = partial(repo_candidates, max_body_lines=max_body_lines, n_hypothesis=n_hypothesis, run_seed=run_seed)
    # Parsing and walking every file is pure Python: the repositories are spread over the cores, largest first so
    # that none is left running alone at the end; results are taken in name order, so the output does not depend
    # on how many processes ran.
    order = sorted(repos, key=lambda r: -sum(len(f.text) for f in by_repo[r]))
    results: dict[str, list] = {}
    with progress_task("mine repositories", total=len(repos), unit="repo") as task:
        processes = min(workers or host.cores(), len(repos))
        if processes > 1:
            # spawn: the caller may have threads (torch's, the progress display) that a forked child would lack
            with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(work, by_repo[r]): r for r in order}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    task.advance(1)
        else:
            for r in order:
                results[r] = work(by_repo[r])
                task.advance(1)
    for repo in repos:
        for cand, reason, detail in results[repo]:
            if reason:
                early.reject(cand, reason, detail)
            else:
                ready.append(cand)
    rep.candidates += len(early.rejected)
    rep.rejected.update(r["reason"] for r in early.rejected)
    collected.rejects.setdefault("mined", []).extend(early.rejected)
    return ready, notes
