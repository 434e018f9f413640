"""Language of a file from its name, and the names The Stack uses for the same languages.

One table so that sources (which assign a language), filters (which select languages) and repository packing (which
parses imports per language) agree on the names."""

from __future__ import annotations

from pathlib import PurePosixPath

# extension (lower case, with dot) -> language
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".java": "java",
    ".c": "c", ".h": "c",  # a .h header may be C++ too; it is C unless a source says otherwise
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".h++": "cpp", ".tcc": "cpp", ".ipp": "cpp",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".go": "go", ".rs": "rust", ".rb": "ruby", ".sh": "shell", ".bash": "shell",
    ".txt": "text", ".md": "text", ".rst": "text",
}

# Documentation files that usually come without an extension (/usr/share/doc/*/README, copyright, NEWS ...).
TEXT_NAMES = {"readme", "copyright", "news", "changelog", "changes", "authors", "thanks", "todo", "install",
              "license", "copying", "history", "faq", "bugs", "credits", "changelog.debian", "news.debian",
              "readme.debian", "notice", "hacking", "contributors"}

# The Stack's `lang` values -> our names
STACK_LANGS: dict[str, str] = {
    "python": "python", "java": "java", "c": "c", "c++": "cpp", "cpp": "cpp", "javascript": "javascript",
    "typescript": "typescript", "go": "go", "rust": "rust", "ruby": "ruby", "shell": "shell", "markdown": "text",
    "text": "text",
}


def strip_compression(name: str) -> str:
    """'NEWS.gz' -> 'NEWS': a gzip-compressed document is read decompressed and typed by its inner name."""
    return name[:-3] if name.endswith(".gz") else name


def language_of(path: str, default: str | None = None) -> str | None:
    """Language by extension; `default` for names without a known extension (e.g. C++ standard headers)."""
    p = PurePosixPath(strip_compression(path))
    lang = EXTENSIONS.get(p.suffix.lower())
    if lang:
        return lang
    if p.name.lower() in TEXT_NAMES or p.name.lower().split(".")[0] in TEXT_NAMES:
        return "text"
    if not p.suffix:
        return default
    return None


def stack_language(lang: object, path: str) -> str | None:
    """The Stack gives `lang`; fall back to the path's extension when it is missing or unknown."""
    if isinstance(lang, str) and lang.strip().lower() in STACK_LANGS:
        return STACK_LANGS[lang.strip().lower()]
    return language_of(path)
