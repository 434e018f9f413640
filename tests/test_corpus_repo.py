"""Repository packing: import parsing per language, longest-suffix resolution, dependency order through cycles,
tests next to the code they test."""

from __future__ import annotations

from opencodegen.data import repo
from opencodegen.data.repo import dependency_edges, dependency_order, place_tests


def order_of(files: dict[str, str], langs: dict[str, str] | None = None) -> list[str]:
    paths = sorted(files)
    langs_l = [(langs or {}).get(p) or {"py": "python", "java": "java", "c": "c", "h": "c", "js": "javascript"}[
        p.rsplit(".", 1)[1]] for p in paths]
    deps = dependency_edges(paths, [files[p] for p in paths], langs_l)
    order, _ = place_tests(dependency_order(paths, deps), paths, deps)
    return [paths[i] for i in order]


def edges(files: dict[str, str], lang: str) -> dict[str, set[str]]:
    paths = sorted(files)
    deps = dependency_edges(paths, [files[p] for p in paths], [lang] * len(paths))
    return {paths[a]: {paths[b] for b in bs} for a, bs in deps.items() if bs}


def test_python_imports_absolute_relative_and_longest_suffix():
    files = {
        "src/pkg/__init__.py": "",
        "src/pkg/core.py": "import os\nfrom .util import helper\n",
        "src/pkg/util.py": "from pkg.sub import mod\n",
        "src/pkg/sub/__init__.py": "",
        "src/pkg/sub/mod.py": "x = 1\n",
        "other/mod.py": "y = 2\n",  # same module name: the longer suffix pkg/sub/mod must win
        "scripts/run.py": "import pkg.core as c, json\nfrom pkg import util\n",
    }
    assert edges(files, "python") == {
        "src/pkg/core.py": {"src/pkg/util.py"},
        "src/pkg/util.py": {"src/pkg/sub/mod.py"},
        "scripts/run.py": {"src/pkg/core.py", "src/pkg/util.py"},
    }


def test_java_c_js_imports():
    java = {"src/com/acme/App.java": "package com.acme;\nimport com.acme.util.Strings;\nimport java.util.List;\n",
            "src/com/acme/util/Strings.java": "package com.acme.util;\nimport static com.acme.util.Chars.upper;\n",
            "src/com/acme/util/Chars.java": "package com.acme.util;\n",
            "src/com/acme/model/A.java": "package com.acme.model;\n",
            "src/com/acme/model/B.java": "package com.acme.model;\n",
            "src/com/acme/Main.java": "import com.acme.model.*;\n"}
    assert edges(java, "java") == {
        "src/com/acme/App.java": {"src/com/acme/util/Strings.java"},
        "src/com/acme/util/Strings.java": {"src/com/acme/util/Chars.java"},
        "src/com/acme/Main.java": {"src/com/acme/model/A.java", "src/com/acme/model/B.java"},
    }
    c = {"lib/list.c": '#include "list.h"\n#include <stdio.h>\n', "lib/list.h": '#include "../include/types.h"\n',
         "include/types.h": "typedef int T;\n", "app/main.c": "#include <mylib/list.h>\n",
         "mylib/list.h": "/* public */\n"}
    assert edges(c, "c") == {"lib/list.c": {"lib/list.h"}, "lib/list.h": {"include/types.h"},
                             "app/main.c": {"mylib/list.h"}}
    js = {"src/index.js": "const u = require('./util');\nimport {a} from './lib';\nimport 'react';\n",
          "src/util.js": "export const x = 1;\n", "src/lib/index.js": "export * from '../util'\n"}
    assert edges(js, "javascript") == {"src/index.js": {"src/util.js", "src/lib/index.js"},
                                       "src/lib/index.js": {"src/util.js"}}


def test_dependency_order_is_topological_and_survives_cycles():
    files = {"a.py": "import b\n", "b.py": "import c\n", "c.py": "x = 1\n", "d.py": "import e\n",
             "e.py": "import d\n", "f.py": "import a\nimport d\n"}
    order = order_of(files)
    pos = {p: i for i, p in enumerate(order)}
    assert sorted(order) == sorted(files)
    assert pos["c.py"] < pos["b.py"] < pos["a.py"] < pos["f.py"]
    # the d <-> e cycle: both have in-degree 1, so the smaller path goes first
    assert pos["d.py"] < pos["e.py"] < pos["f.py"]


def test_tests_are_placed_after_the_code_they_test():
    files = {"pkg/parser.py": "import pkg.lexer\n", "pkg/lexer.py": "", "pkg/zeta.py": "",
             "tests/test_parser.py": "from pkg import parser\n", "tests/test_lexer.py": "import pkg.lexer\n",
             "tests/lexer_test.py": "", "tests/conftest.py": ""}
    order = order_of(files)
    i = order.index
    assert i("tests/test_lexer.py") == i("pkg/lexer.py") + 1 or i("tests/lexer_test.py") == i("pkg/lexer.py") + 1
    assert {order[i("pkg/lexer.py") + 1], order[i("pkg/lexer.py") + 2]} == {"tests/test_lexer.py",
                                                                            "tests/lexer_test.py"}
    assert order[i("pkg/parser.py") + 1] == "tests/test_parser.py"
    assert i("pkg/lexer.py") < i("pkg/parser.py")


def test_test_file_names_map_to_the_tested_stem():
    tested_stem = repo.tested_stem
    assert tested_stem("tests/test_parser.py") == "parser"
    assert tested_stem("src/FooTest.java") == "Foo"
    assert tested_stem("src/TestFoo.java") == "Foo"
    assert tested_stem("lib/a.spec.ts") == "a"
    assert tested_stem("x_test.go") == "x"
    assert tested_stem("tests/helpers.py") == "helpers"
    assert tested_stem("tests/__init__.py") is None
    assert tested_stem("src/contest.py") is None


def test_relative_imports_from_the_repository_root():
    # `from . import x` in a root-level file names x.py at the root (not "/x.py"); `from .. import` above the root
    # names no file of the repository; `from . import name` where name is no module names the package's __init__.py
    files = {"__init__.py": "from . import util\nfrom .core import run\n", "util.py": "x = 1\n",
             "core.py": "from . import util\nfrom .. import outside\n", "outside.py": "",
             "sub/__init__.py": "helper = 1\n",
             "sub/leaf.py": "from .. import util\nfrom ..core import run\nfrom . import helper\n"}
    assert edges(files, "python") == {"__init__.py": {"util.py", "core.py"}, "core.py": {"util.py"},
                                      "sub/leaf.py": {"util.py", "core.py", "sub/__init__.py"}}
    order = order_of(files)
    assert order.index("util.py") < order.index("core.py") < order.index("__init__.py")
