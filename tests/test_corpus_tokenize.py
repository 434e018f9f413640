"""Tokenization into datatrove shards: the repository format with real special ids, FIM round trips, EOS after every
document, validation split by repository, seeded global shuffle independent of the task count, and the CLI.

Written against the CodeTokenizer contract (HELPERS.md) while opencodegen.tokenizer was being written alongside it,
and checked then against a stand-in implementing that contract; the module is skipped only until it exists."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from opencodegen.cli import main as ocg
from opencodegen.data.fim import FimConfig
from opencodegen.data.pipeline import BuildOptions, TokenizeOptions, build_corpus, tokenize_corpus
from opencodegen.data.sources import Source
from opencodegen.data.tokenize import TokenizeConfig
from opencodegen.eval.perplexity import read_token_split

train_tokenizer = pytest.importorskip("opencodegen.tokenizer").train_tokenizer

FILES = {
    "ant/ant/__init__.py": "",
    "ant/ant/colony.py": "from .worker import Worker\n\n\nclass Colony:\n    def __init__(self, n):\n"
                         "        self.workers = [Worker(i) for i in range(n)]\n",
    "ant/ant/worker.py": "class Worker:\n    def __init__(self, i):\n        self.i = i\n",
    "bee/hive.py": "MARKER = '<|fim_prefix|> and <|endoftext|> are plain text in source code'\n\n\n"
                   "def honey(n):\n    return [n] * n\n",
    "bee/tests/test_hive.py": "from hive import honey\n\n\ndef test_honey():\n    assert honey(2) == [2, 2]\n",
    "cat/meow.js": "const purr = require('./purr');\nmodule.exports = () => purr() + '!';\n",
    "cat/purr.js": "module.exports = () => 'purr';\n",
    "dog/bark.py": "def bark(times):\n    return 'woof ' * times\n",
    "eel/zap.c": "#include \"zap.h\"\nint zap(int v) { return v * 3; }\n",
    "eel/zap.h": "int zap(int v);\n",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tok")
    for rel, text in FILES.items():
        (root / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / rel).write_text(text)
    out = root / "corpus"
    build_corpus([Source("dir", str(root / "src"), repo_depth=1)], out, BuildOptions(workers=1), print_summary=False)
    return out


@pytest.fixture(scope="module")
def tok(corpus):
    texts = list(FILES.values()) * 20
    return train_tokenizer(texts, vocab_size=400)


def corpus_docs(corpus: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((corpus / "data").glob("*.gz")) for line in gzip.open(f, "rt")]


def tokenize(corpus, tok, out, **cfg) -> dict:
    tasks = cfg.pop("tasks", 1)
    cfg.setdefault("valid_fraction", 0.0)
    cfg.setdefault("fim", FimConfig(rate=0.0))
    return tokenize_corpus(corpus, tok, out, TokenizeOptions(workers=1, tasks=tasks, config=TokenizeConfig(**cfg)),
                           print_summary=False)


def split_files(doc: dict) -> list[tuple[str, str]]:
    out, offset = [], 0
    for path, _lang, n in doc["metadata"]["files"]:
        out.append((path, doc["text"][offset: offset + n]))
        offset += n
    return out


def test_repository_format_with_spliced_special_ids(corpus, tok, tmp_path):
    stats = tokenize(corpus, tok, tmp_path / "t")
    got = sorted(map(tuple, read_token_split(tmp_path / "t" / "train")))
    repo_id, sep = tok.special_id("<|repo_name|>"), tok.special_id("<|file_sep|>")
    expected = []
    for d in corpus_docs(corpus):
        ids = [repo_id, *tok.encode(d["metadata"]["repo"] + "\n")]
        files = split_files(d)
        for k, (path, text) in enumerate(files):
            ids += [sep, *tok.encode(path + "\n"), *tok.encode(text)]
            ids += tok.encode("\n") if k + 1 < len(files) else [tok.eos_id]
        expected.append(tuple(ids))
    assert got == sorted(expected)
    # the literal control-token text inside bee/hive.py was encoded as text, not as control ids
    flat = [t for doc in got for t in doc]
    assert flat.count(tok.special_id("<|fim_prefix|>")) == 0
    assert flat.count(tok.eos_id) == len(got)  # exactly one EOS per document, at its end
    assert stats["train"]["tokens"] == len(flat) and stats["valid"]["tokens"] == 0
    meta = (tmp_path / "t" / "train" / "00000.ds.metadata").read_text().splitlines()
    assert meta[0].endswith("|2") and int(meta[1]) == len(flat)  # uint16 ids for a small vocabulary
    assert (tmp_path / "t" / "train" / "00000.ds").stat().st_size == 2 * len(flat)


def test_dependency_order_inside_repository_documents(corpus):
    docs = {d["metadata"]["repo"]: [p for p, _ in split_files(d)] for d in corpus_docs(corpus)}
    assert docs["src/ant"].index("ant/worker.py") < docs["src/ant"].index("ant/colony.py")
    assert docs["src/cat"] == ["purr.js", "meow.js"]
    assert docs["src/eel"] == ["zap.h", "zap.c"]
    assert docs["src/bee"] == ["hive.py", "tests/test_hive.py"]


def _pieces(ids: list[int], specials: set[int]) -> list:
    out, cur = [], []
    for t in ids:
        if t in specials:
            out += [cur, t] if cur else [t]
            cur = []
        else:
            cur.append(t)
    return out + ([cur] if cur else [])


def test_file_format_with_fim_round_trips(corpus, tok, tmp_path):
    tokenize(corpus, tok, tmp_path / "f", format="file", fim=FimConfig(rate=1.0, spm_rate=0.5), seed=3)
    P, M, S = (tok.special_id(n) for n in ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"))
    specials = {P, M, S, tok.eos_id}
    recovered, layouts = [], set()
    for doc in read_token_split(tmp_path / "f" / "train"):
        parts = [p if isinstance(p, int) else tok.decode(p) for p in _pieces(doc, specials)]
        assert parts[0] == P and parts[-1] == tok.eos_id
        body = parts[1:-1]
        if body[0] == S:  # SPM: <PRE> <SUF> suffix <MID> prefix+middle
            layouts.add("spm")
            i = body.index(M)
            suffix = "".join(x for x in body[1:i] if isinstance(x, str))
            recovered.append("".join(x for x in body[i + 1:] if isinstance(x, str)) + suffix)
        else:  # PSM: <PRE> prefix <SUF> suffix <MID> middle
            layouts.add("psm")
            i, j = body.index(S), body.index(M)
            pre = "".join(x for x in body[:i] if isinstance(x, str))
            suf = "".join(x for x in body[i + 1:j] if isinstance(x, str))
            mid = "".join(x for x in body[j + 1:] if isinstance(x, str))
            recovered.append(pre + mid + suf)
    kept = sorted(t for d in corpus_docs(corpus) for _, t in split_files(d))
    assert sorted(recovered) == kept
    assert layouts == {"psm", "spm"}


def test_validation_split_by_repository_and_seeded_shuffle(corpus, tok, tmp_path):
    a = tokenize(corpus, tok, tmp_path / "a", valid_fraction=0.3, seed=5, tasks=1)
    tokenize(corpus, tok, tmp_path / "b", valid_fraction=0.3, seed=5, tasks=3)
    for split in ("train", "valid"):  # identical bytes whatever the number of tasks
        assert (tmp_path / "a" / split / "00000.ds").read_bytes() == (tmp_path / "b" / split / "00000.ds").read_bytes()
    assert a["valid"]["documents"] >= 1 and a["train"]["documents"] >= 1
    repo_id = tok.special_id("<|repo_name|>")

    def repos(split: str) -> set[str]:
        return {tok.decode(d[1:d.index(tok.encode("\n")[0], 1)]) for d in read_token_split(tmp_path / "a" / split)
                if d[0] == repo_id}

    assert repos("train") and repos("valid") and not repos("train") & repos("valid")
    c = tokenize(corpus, tok, tmp_path / "c", valid_fraction=0.3, seed=6)
    docs_a = read_token_split(tmp_path / "a" / "train") + read_token_split(tmp_path / "a" / "valid")
    docs_c = read_token_split(tmp_path / "c" / "train") + read_token_split(tmp_path / "c" / "valid")
    assert sorted(map(tuple, docs_a)) == sorted(map(tuple, docs_c))  # same documents ...
    assert c["train"]["tokens"] + c["valid"]["tokens"] == a["train"]["tokens"] + a["valid"]["tokens"]
    stats = json.loads((corpus / "stats.json").read_text())
    assert stats["tokens"]["train"]["by_language"]  # tokens per language recorded with the corpus
    assert stats["tokens_train"] == c["train"]["tokens"] and stats["tokens_valid"] == c["valid"]["tokens"]


def test_cli_build_and_tokenize(tmp_path, tok, capsys):
    src = tmp_path / "src" / "proj"
    src.mkdir(parents=True)
    (src / "main.py").write_text("import helper\n\nprint(helper.VALUE)\n")
    (src / "helper.py").write_text("VALUE = 42\n")
    tok.save(str(tmp_path / "tok"))
    assert ocg(["corpus", "build", "--dir", str(tmp_path / "src"), "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    stats = json.loads((tmp_path / "c" / "stats.json").read_text())
    assert stats["files_kept"] == 2 and stats["accounted"]
    assert ocg(["corpus", "tokenize", str(tmp_path / "c"), "--tokenizer", str(tmp_path / "tok"), "--out",
                str(tmp_path / "t"), "--workers", "1", "--fim-rate", "0.5"]) == 0
    assert read_token_split(tmp_path / "t" / "train")
    assert ocg(["corpus", "tokenize", str(tmp_path / "nope"), "--tokenizer", str(tmp_path / "tok"), "--out",
                str(tmp_path / "t2")]) == 2
    assert "not a built corpus" in capsys.readouterr().err
    assert ocg(["corpus", "build", "--out", str(tmp_path / "x")]) == 2  # no sources: one clear error
