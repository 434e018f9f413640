"""Which uses of a name in a Python file may refer to what the file imports, and which a local binding shadows.

    from .util import parse
    def f(parse):          # a parameter: `parse` in f's body is the argument, not util.parse
        return parse(1)

A use is shadowed when the name is bound, other than by an import, in a scope that encloses it: a function (its
parameters, assignments, loop and `with` targets, `except ... as`, nested def/class names, match captures), a
comprehension, the class body it sits directly in (class scopes do not reach their methods, as Python defines), or the
module itself. A module-level rebinding (`parse = wrap(parse)`, `except ImportError: parse = None`) makes every use
in the file ambiguous, so all of them count as shadowed: a repository task must use the imported definition for
certain. Names declared `global` or `nonlocal` in a function are not its own.
"""

from __future__ import annotations

import ast

_FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSION = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_NEW_SCOPE = (*_FUNCTION, ast.ClassDef, *_COMPREHENSION)


def _bound_here(scope: ast.AST) -> set[str]:
    """Names `scope` binds itself (not through an import, not inside a nested scope)."""
    names: set[str] = set()
    declared: set[str] = set()
    if isinstance(scope, _FUNCTION):
        a = scope.args
        names |= {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x is not None}
        body = scope.body if isinstance(scope.body, list) else [scope.body]
    elif isinstance(scope, _COMPREHENSION):
        body = [g.target for g in scope.generators]
    else:
        body = scope.body
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            stack += [*node.decorator_list, *getattr(node, "bases", ()), *(k.value for k in getattr(node, "keywords", ()))]
            continue  # its body is its own scope
        if isinstance(node, (ast.Lambda, *_COMPREHENSION)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared |= set(node.names)
        stack += list(ast.iter_child_nodes(node))
    return names - declared


def shadowed_loads(tree: ast.Module) -> set[int]:
    """id() of every ast.Name in `tree` that a local binding shadows (see the module docstring)."""
    out: set[int] = set()

    def visit(node: ast.AST, shadow: frozenset, class_names: frozenset) -> None:
        if isinstance(node, ast.Name):
            if node.id in shadow or node.id in class_names:
                out.add(id(node))
            return
        if isinstance(node, _FUNCTION):
            # decorators, defaults and annotations are evaluated where the function is defined
            outer = [*getattr(node, "decorator_list", ()), *node.args.defaults,
                     *(d for d in node.args.kw_defaults if d is not None),
                     *(x.annotation for x in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                                              node.args.vararg, node.args.kwarg) if x is not None and x.annotation),
                     *([node.returns] if getattr(node, "returns", None) else [])]
            for child in outer:
                visit(child, shadow, class_names)
            inner = shadow | _bound_here(node)
            for child in (node.body if isinstance(node.body, list) else [node.body]):
                visit(child, inner, frozenset())
            return
        if isinstance(node, ast.ClassDef):
            for child in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
                visit(child, shadow, class_names)
            here = frozenset(_bound_here(node))
            for child in node.body:
                visit(child, shadow, here)
            return
        if isinstance(node, _COMPREHENSION):
            # the first iterable is evaluated in the enclosing scope, the rest in the comprehension's own
            visit(node.generators[0].iter, shadow, class_names)
            inner = shadow | _bound_here(node)
            for g in node.generators:
                visit(g.target, inner, frozenset())
                if g is not node.generators[0]:
                    visit(g.iter, inner, frozenset())
                for cond in g.ifs:
                    visit(cond, inner, frozenset())
            for part in ((node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,)):
                visit(part, inner, frozenset())
            return
        for child in ast.iter_child_nodes(node):
            visit(child, shadow, class_names)

    visit(tree, frozenset(_bound_here(tree)), frozenset())
    return out
