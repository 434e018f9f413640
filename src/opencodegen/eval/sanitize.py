"""evalplus's completion sanitizer, with `ast`: from a chat-style answer (prose, markdown fences, a test harness
around the code) keep the program that defines the entry point and what it needs.

The procedure is evalplus's (evalplus/sanitize.py, which walks a tree-sitter tree; rewritten here on `ast`):
1. The code: the longest run of lines (at least two) that parses, measured in non-blank lines; among equally long
   runs the one that starts first, then the shortest. A fenced block wins over the prose around it because prose
   does not parse.
2. Its top-level statements, in order:
   - every import is kept;
   - a class, a function that contains a `return`, or a variable assigned at the top level (`NAME = ...`), each
     kept under its name, only the first definition of a name (a later redefinition, a test's helper that reuses
     a name, is dropped);
   - anything else (calls, prints, `if __name__ == "__main__":` blocks, asserts) is dropped.
3. With an entry point (or several), only the definitions they reach are kept: a definition depends on every name
   written in it, and the entry points' dependencies are followed transitively.
4. The result is the imports, then the kept definitions in their original order, each as written.

Differences from evalplus: a decorated function or class is kept with its decorators (tree-sitter gives it another
node type, which evalplus drops); `a, b = ...` (no single name) is dropped, as in evalplus.
"""

from __future__ import annotations

import ast
import codeop
from typing import Sequence

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


# The parser's own "could more lines complete this?" (what the interactive prompt asks; Python 3.11+), or None.
_ALLOW_INCOMPLETE = getattr(codeop, "PyCF_ALLOW_INCOMPLETE_INPUT", None)


def _dead_end(lines: list[str], i: int, j: int) -> int | None:
    """For a run lines[i..j] that does not parse: the first k <= j such that no run lines[i..k'], k' >= k, parses,
    or None when more lines might still complete it.

    The parser fails "incomplete" when it ran out of input with a parse still possible (an open bracket, string or
    block at the end); any other error was found among tokens every longer run shares (the tokenizer reads line by
    line), so adding lines cannot repair it. The error's own line, when earlier, is tried as a shorter dead end."""
    if _ALLOW_INCOMPLETE is None:
        return None

    def error_line(k: int) -> int | None:
        try:
            compile("\n".join(lines[i:k + 1]), "<run>", "exec", ast.PyCF_ONLY_AST | _ALLOW_INCOMPLETE,
                    dont_inherit=True)
        except SyntaxError as e:
            return None if e.msg == "incomplete input" else min(max(i + (e.lineno or 1) - 1, i), k)
        except (ValueError, MemoryError, RecursionError):
            return None
        return None  # parses with the flag: nothing to conclude

    line = error_line(j)
    if line is None:
        return None
    return line if line < j and error_line(line) is not None else j


def extract_code(text: str) -> str:
    """Step 1: the longest run of at least two lines that parses (evalplus's code_extract), counted in non-blank
    lines; among the longest, the one that starts first, then the shortest. A text with no such run gives its first
    line, as evalplus does.

    evalplus parses every run, O(lines^2) parses; here each start's runs are tried from the longest down, skipping
    runs past a dead end (_dead_end: an error no longer run can repair, such as a line of prose) and runs that
    cannot beat the best found, so prose costs a parse or two a line. The answer is the same."""
    lines = text.split("\n")
    filled = [0]
    for line in lines:
        filled.append(filled[-1] + bool(line.strip()))
    best = (0, 0, 0)  # (non-blank lines, i, j) of the best run found; starts go in order, so an equal count loses
    for i in range(len(lines) - 1):
        # a first line no run can follow (most prose) rules out its start at the cost of one short parse
        j = len(lines) - 1 if _dead_end(lines, i, i) is None else i
        while j > i and filled[j + 1] - filled[i] > best[0]:
            if parses("\n".join(lines[i:j + 1])):
                count, shortest = filled[j + 1] - filled[i], j
                while j - 1 > i and filled[j] - filled[i] == count:  # as many lines, ending in blank ones
                    j -= 1
                    if parses("\n".join(lines[i:j + 1])):
                        shortest = j
                best = (count, i, shortest)
                break
            dead = _dead_end(lines, i, j)
            j = j - 1 if dead is None else dead - 1
    count, i, j = best
    return "\n".join(lines[i:j + 1]) if count else lines[0]


def extract_code_every_run(text: str) -> str:
    """extract_code by its definition: every run of at least two lines parsed, the first with the most non-blank lines
    wins. O(lines^2) parses: the reference that tests and benchmarks/bench_sanitize.py hold the fast search to."""
    lines = text.split("\n")
    best, pick = 0, (0, 0)
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            if parses("\n".join(lines[i:j + 1])):
                count = sum(1 for line in lines[i:j + 1] if line.strip())
                if count > best:
                    best, pick = count, (i, j)
    return "\n".join(lines[pick[0]:pick[1] + 1])


def _name(node: ast.stmt) -> str | None:
    """The name a top-level statement defines (step 2), or None when it defines none evalplus keeps."""
    if isinstance(node, _DEFINITIONS):
        if isinstance(node, ast.ClassDef) or any(isinstance(n, ast.Return) for n in ast.walk(node)):
            return node.name
        return None
    target = None
    if isinstance(node, ast.Assign):
        target = node.targets[0]
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target = node.target
    return target.id if isinstance(target, ast.Name) else None


def _names_in(node: ast.AST) -> set[str]:
    """Every identifier written in `node` (what tree-sitter calls identifiers: names, attributes, parameters,
    nested definitions)."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, _DEFINITIONS):
            out.add(n.name)
    return out


def _source(lines: list[str], node: ast.stmt) -> str:
    """The statement as written, decorators included."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
    text = lines[first - 1:node.end_lineno]
    text[-1] = text[-1][:node.end_col_offset]  # a statement after `;` on its last line is not part of it
    return "\n".join(text)


def sanitize(text: str, entry_point: str | Sequence[str] | None = None) -> str:
    """The program in `text` that defines `entry_point` (or each of several, as an MBPP check calls them) and what
    they reach (see the module docstring)."""
    code = extract_code(text)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return ""  # only a one-line text that does not parse gets here
    lines = code.split("\n")
    imports, definitions = [], {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif (name := _name(node)) is not None and name not in definitions:
            definitions[name] = node
    keep = set(definitions)
    todo = [] if entry_point is None else [entry_point] if isinstance(entry_point, str) else list(entry_point)
    if todo:
        deps = {name: _names_in(node) & set(definitions) for name, node in definitions.items()}
        keep = set(todo)
        while todo:
            for dep in deps.get(todo.pop(), ()):
                if dep not in keep:
                    keep.add(dep)
                    todo.append(dep)
    kept = [node for name, node in definitions.items() if name in keep]
    return "\n".join(_source(lines, node) for node in imports + kept)
