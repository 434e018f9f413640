"""The built-in corpus: what this machine ships, in the three CodeGen stages.

  nl    English documentation under /usr/share/doc (READMEs, changelogs, copyright texts; .gz read decompressed)
  multi the JDK's lib/src.zip (Java), C/C++ headers under /usr/include, JavaScript under node_modules, and the
        Python standard library
  mono  the Python standard library (a BigPython in miniature)

Each part is looked for where Debian-like systems keep it; a part that is absent is skipped with a note saying so.
`max_bytes` caps a part (split evenly between the sources found for it; whole repositories are chosen in a seeded
order until a source's share is used), so the quickstart can build a part in a minute or two."""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

from .sources import Source

PARTS = ("nl", "multi", "mono")


def python_stdlib(max_bytes: int | None) -> Source | None:
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        return None
    # each top-level package is a repository (json, asyncio, test, ...); each top-level module is its own
    return Source("dir", str(root), name="python-stdlib", repo_depth=1, languages=["python"], max_bytes=max_bytes,
                  exclude=["site-packages", "dist-packages", "lib2to3/tests/data", "test/badsyntax_pep3120.py"])


def jdk_sources(max_bytes: int | None, roots: tuple[str, ...] = ("/usr/lib/jvm", "/usr/local/lib/jvm", "/opt")
                ) -> Source | None:
    found = sorted({str(Path(p).resolve()) for r in roots for pattern in ("*/lib/src.zip", "*/src.zip")
                    for p in glob.glob(f"{r}/{pattern}") if Path(p).is_file()})
    if not found:
        return None
    # repository = module/package/subpackage (java.base/java/util): the JDK is too big to be one repository
    return Source("zip", found[-1], name="jdk", repo_depth=3, languages=["java"], max_bytes=max_bytes)


def c_headers(max_bytes: int | None, root: str = "/usr/include") -> Source | None:
    if not Path(root).is_dir():
        return None
    # C++ standard headers have no extension (<vector>); they are the only extensionless files there
    return Source("dir", root, name="usr-include", repo_depth=1, languages=["c", "cpp"], default_lang="cpp",
                  max_bytes=max_bytes)


def node_modules(max_bytes: int | None, roots: tuple[str, ...] = ("/usr/lib/node_modules",
                                                                  "/usr/local/lib/node_modules",
                                                                  "/usr/share/nodejs")) -> Source | None:
    """Every node_modules tree (nested ones too) is a root whose packages are repositories; a nested tree is left
    out of its parent's packages so that no file is read twice."""
    found: list[Path] = []
    for r in roots:
        if Path(r).is_dir():
            found.append(Path(r))
            found += sorted(p for p in Path(r).rglob("node_modules") if p.is_dir())
    if not found:
        return None
    nested = sorted({str(n.relative_to(r)) for r in found for n in found if n != r and r in n.parents})
    return Source("dir", str(found[0]), name="node_modules", repo_depth=1, languages=["javascript", "typescript"],
                  max_bytes=max_bytes, extra_paths=[str(p) for p in found[1:]], exclude=nested)


def english_docs(max_bytes: int | None, root: str = "/usr/share/doc") -> Source | None:
    if not Path(root).is_dir():
        return None
    return Source("dir", root, name="usr-share-doc", repo_depth=1, languages=["text"], max_bytes=max_bytes)


def system_corpus(part: str, max_bytes: int | None = None) -> tuple[list[Source], list[str]]:
    """(sources, notes) for one part of about `max_bytes` in all; notes say which pieces this machine lacks."""
    if part not in PARTS:
        raise ValueError(f"system corpus part must be one of {', '.join(PARTS)}, not {part!r}")
    wanted = {"nl": [("English docs (/usr/share/doc)", english_docs)],
              "multi": [("Java (JDK lib/src.zip)", jdk_sources), ("C/C++ headers (/usr/include)", c_headers),
                        ("JavaScript (node_modules)", node_modules), ("Python standard library", python_stdlib)],
              "mono": [("Python standard library", python_stdlib)]}[part]
    sources, notes = [], []
    for label, find in wanted:
        src = find(None)
        if src is None:
            notes.append(f"{part}: {label} not found on this machine, skipped")
        else:
            sources.append(src)
    for src in sources:
        src.max_bytes = max_bytes // len(sources) if max_bytes is not None else None
    return sources, notes
