"""`ocg eval repo` on a fixture repository of our own (tests/data/repos: `shop`, whose files import each other in
every way repo_tasks follows, and `solo`, a single file): the tasks checked by hand, every other file accounted for
with its reason, a seeded --limit; exact match and edit similarity against hand-computed values; the prompts in the
repository format, cross-file context before the file and cut from the left to fit; end to end on a tiny random
model (with and without the repository tokens), through a fake endpoint, and as a reference self-check; clear errors
for a bad --repos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endpoint_fixtures import FakeServer, vllm_body
from eval_tiny import ByteTokenizer, tiny_model
from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.eval import repo_completion as rc
from opencodegen.eval.endpoint import Endpoint
from opencodegen.eval.repo_tasks import build_tasks, discover, read_repository
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT
from opencodegen.sampling import SamplingParams

REPOS = Path(__file__).parent / "data" / "repos"
SHOP = REPOS / "shop"

# (task id, target line, cross-file uses), worked out by reading the fixture
EXPECTED = [
    ("shop/app.py:3", "total = with_tax(5)", ("pricing.py:with_tax",)),  # re-exported by __init__.py
    ("shop/cart.py:11", "        return with_tax(gross)", ("pricing.py:with_tax",)),
    ("shop/cart.py:14", "        return Discount(10)", ("pricing.py:Discount",)),
    ("shop/cart.py:17", "        return units.grams(len(self.items))", ("units.py:grams",)),  # from . import units
    ("shop/report.py:6", '    return f"{amount} + tax = {with_tax(amount)}"', ("pricing.py:with_tax",)),  # import *
    ("shop/report.py:9", "RATE = TAX_RATE", ("pricing.py:TAX_RATE",)),  # a constant, via `shop.pricing`
    ("shop/report.py:10", "print(u.grams(2), u.missing)", ("units.py:grams",)),  # u.missing is defined nowhere
]
SKIPPED = {("shop", "broken.py"): "does not parse", ("shop", "notes.txt"): "not a Python file",
           ("shop", "__init__.py"): "uses no name defined in another file of the repository",
           ("shop", "helpers.py"): "uses no name defined in another file of the repository",
           ("shop", "pricing.py"): "uses no name defined in another file of the repository",
           ("shop", "units.py"): "uses no name defined in another file of the repository",
           ("solo", "main.py"): "the repository has no other Python file"}


class RepoByteTokenizer(ByteTokenizer):
    def __init__(self) -> None:
        super().__init__()
        for name in ("<|repo_name|>", "<|file_sep|>"):
            self.special[name] = self.vocab_size
            self.vocab_size += 1


def test_tasks_and_skipped_files_by_hand():
    tasks, skipped, repos = build_tasks(discover(REPOS))
    assert [(t.task_id, t.target, t.uses) for t in tasks] == EXPECTED
    assert {(s["repo"], s["path"]): s["reason"].split(" (")[0] for s in skipped} == SKIPPED
    cart = tasks[1]
    text = (SHOP / "cart.py").read_text()
    assert cart.prefix == text[:text.index("        return with_tax(gross)")] and cart.prefix.endswith("self.items)\n")
    # the files cart.py imports from, in the packing order of data/repo.py
    assert cart.context == ("pricing.py", "units.py")
    assert tasks[0].context == ("pricing.py", "__init__.py")  # the re-exporting file and the defining one
    assert repos["shop"].order.index("pricing.py") < repos["shop"].order.index("__init__.py")


MAIN = """import pkg.sub.deep
from .util import parse, LIMIT


def a():
    return pkg.sub.deep.dig()


def b(parse):
    return parse(1)


def c():
    return [parse(x) for x in range(LIMIT)]


def d():
    pkg = object()
    return pkg.sub.deep.dig()


class K:
    LIMIT = 5
    size = LIMIT

    def m(self):
        return LIMIT


def e():
    for parse in ():
        pass
    return parse


f = lambda LIMIT: LIMIT
g = [LIMIT for parse in ()] + [parse for parse in ()]
"""


def test_dotted_imports_and_shadowing_local_names(tmp_path):
    pkg = tmp_path / "repos" / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "deep.py").write_text("def dig():\n    return 1\n")
    (pkg / "util.py").write_text("def parse(s):\n    return s\n\n\nLIMIT = 3\n")
    (pkg / "main.py").write_text(MAIN)
    # a module-level rebinding makes every use in the file ambiguous
    (pkg / "rebound.py").write_text("from .util import parse\nparse = staticmethod(parse)\nx = parse(1)\n")
    # a repository whose root is not a package: `import lib.text` reaches lib/text.py from the root
    tools = tmp_path / "repos" / "tools"
    (tools / "lib").mkdir(parents=True)
    (tools / "lib" / "__init__.py").write_text("")
    (tools / "lib" / "text.py").write_text("def shout(s):\n    return s.upper()\n")
    (tools / "run.py").write_text("import lib.text\n\nprint(lib.text.shout('a'))\n")
    tasks, skipped, _ = build_tasks(discover(tmp_path / "repos"))
    # by hand: line 6 through `import pkg.sub.deep`; 14 (the comprehension's iterable and body see the imports); 27
    # (a class body's LIMIT does not reach its methods); 37 (in a comprehension binding `parse`, LIMIT still is
    # util's); 10, 19, 24, 33, 36 and the second half of 37 are shadowed by a parameter, a local assignment, the
    # class body, a loop target, a lambda parameter and a comprehension target
    assert [(t.task_id, t.uses) for t in tasks] == [
        ("pkg/main.py:6", ("sub/deep.py:dig",)),
        ("pkg/main.py:14", ("util.py:parse", "util.py:LIMIT")),
        ("pkg/main.py:27", ("util.py:LIMIT",)),
        ("pkg/main.py:37", ("util.py:LIMIT",)),
        ("tools/run.py:3", ("lib/text.py:shout",)),
    ]
    assert tasks[0].context == ("sub/deep.py", "util.py")  # the module `import a.b` names, not the packages on the way
    assert tasks[-1].context == ("lib/text.py",)
    assert {s["path"]: s["reason"] for s in skipped if s["repo"] == "pkg"}["rebound.py"] == \
        "uses no name defined in another file of the repository"


def test_limit_is_a_seeded_choice_and_every_candidate_is_accounted_for():
    a, skipped_a, _ = build_tasks(discover(REPOS), limit=3, seed=0)
    b, _, _ = build_tasks(discover(REPOS), limit=3, seed=0)
    c, _, _ = build_tasks(discover(REPOS), limit=3, seed=2)
    assert [t.task_id for t in a] == [t.task_id for t in b] and len(a) == 3
    assert [t.task_id for t in a] != [t.task_id for t in c]
    not_chosen = {f"{s['repo']}/{s['path']}:{s['line']}" for s in skipped_a if "line" in s}
    assert not_chosen | {t.task_id for t in a} == {e[0] for e in EXPECTED} and len(not_chosen) == 4
    assert all("--limit 3, seed 0" in s["reason"] for s in skipped_a if "line" in s)


def test_scores_by_hand():
    assert rc.levenshtein("kitten", "sitting") == 3 and rc.levenshtein("", "abc") == 3
    assert rc.levenshtein("flaw", "lawn") == 2 and rc.levenshtein("same", "same") == 0
    assert rc.edit_similarity("return a", "return b") == pytest.approx(1 - 1 / 8)
    assert rc.edit_similarity("  x = 1  ", "x = 1") == 1.0  # stripped, as CrossCodeEval compares
    assert rc.edit_similarity("", "") == 1.0 and rc.edit_similarity("", "abcd") == 0.0
    assert rc.edit_similarity("abcd", "ab") == pytest.approx(0.5)
    assert rc.exact_match("    return Discount(10)", "        return Discount(10)")
    assert not rc.exact_match("return Discount(1)", "return Discount(10)")
    assert rc.first_line("\n  \n    x = f(1)\ny = 2") == "    x = f(1)" and rc.first_line("\n\n") == ""
    tasks, _, _ = build_tasks(discover(REPOS))
    samples = [{"task_id": tasks[2].task_id, "mode": "in-file", "completion": "\n        return Discount(1)\n"},
               {"task_id": tasks[2].task_id, "mode": "cross-file", "completion": "        return Discount(10)\nx"},
               {"task_id": tasks[5].task_id, "mode": "in-file", "completion": "RATE = 0.2"},
               {"task_id": tasks[5].task_id, "mode": "cross-file", "completion": "RATE = TAX_RATE"}]
    results, scores = rc.score(tasks, samples)
    # "return Discount(1)" vs "return Discount(10)": one insertion over 19 characters
    assert results[0]["edit_similarity"] == pytest.approx(1 - 1 / 19, abs=1e-6) and not results[0]["exact_match"]
    # "RATE = 0.2" vs "RATE = TAX_RATE": 'TAX_RATE' replaces '0.2' (3 substitutions + 5 insertions) over 15
    assert results[2]["edit_similarity"] == pytest.approx(1 - 8 / 15, abs=1e-6)
    assert scores["by_mode"]["in-file"] == {"tasks": 2, "exact_match": 0.0,
                                            "edit_similarity": pytest.approx((1 - 1 / 19 + 1 - 8 / 15) / 2)}
    assert scores["by_mode"]["cross-file"] == {"tasks": 2, "exact_match": 1.0, "edit_similarity": 1.0}
    # paired sign-flip test, exact over the 4 sign patterns of the two gains (1/19 and 8/15): only ++ and -- are as
    # far from 0 as the observed sum, so p = 2/4
    assert scores["paired"] == {"cross_file_better": 2, "in_file_better": 0, "same": 0, "cross_file_prompts": 2,
                                "with_context": 0, "p_value": 0.5}  # these hand-made samples carry no context counts
    es_gain = 100 * (1 - (1 - 1 / 19 + 1 - 8 / 15) / 2)
    assert rc.reading(scores) == (f"Cross-file context changes exact match by +100.0 points and edit similarity by "
                                  f"+{es_gain:.1f} (closer on 2 lines, further on 0, the same on 0): no difference "
                                  "these tasks can tell from chance (paired p = 0.5). Only 0 of 2 cross-file prompts "
                                  "held any other file; the others equal their in-file prompt.")
    many = {**scores, "paired": {**scores["paired"], "p_value": 0.00003, "with_context": 2},
            "window": {"in_file": 360, "cross_file": 360, "unit": "tokens"}}
    assert rc.reading(many) == (f"With the same 360-token in-file part (the end of the line's own file) in both "
                                f"modes, adding up to 360 tokens of other files changes exact match by +100.0 points "
                                f"and edit similarity by +{es_gain:.1f} (closer on 2 lines, further on 0, the same on "
                                "0): the model uses the other files that the repository format puts before the line "
                                "(paired p < 0.0001).")


def test_prompts_share_the_in_file_part_and_reserve_a_share_for_other_files():
    tok = RepoByteTokenizer()
    repo_name, file_sep = tok.special["<|repo_name|>"], tok.special["<|file_sep|>"]
    tasks, _, repos = build_tasks(discover(REPOS))
    task = tasks[1]  # cart.py:11 uses pricing.with_tax; cart.py imports pricing.py and units.py
    units = (SHOP / "units.py").read_text()
    pricing = "TAX_RATE = 0.2\n\n\ndef with_tax(amount):\n"  # as far as the signature of what the line uses
    # the files the line needs last (nearest the line), the others before them in packing order
    assert rc.context_files(task, repos) == [("units.py", units), ("pricing.py", pricing)]
    head, current = [repo_name, *b"shop\n"], [file_sep, *b"cart.py\n"]
    prefix = list(task.prefix.encode())
    units_block = [file_sep, *b"units.py\n", *units.encode(), *b"\n"]
    pricing_block = [file_sep, *b"pricing.py\n", *pricing.encode(), *b"\n"]
    ids, info = rc.token_prompt(tok, task, repos, "in-file", room=10_000)
    assert ids == head + current + prefix and info["context_files"] == 0
    ids, info = rc.token_prompt(tok, task, repos, "cross-file", room=10_000)
    assert ids == head + units_block + pricing_block + current + prefix
    assert info == {"prefix_cut": False, "context_files": 2, "context_tokens": len(units_block + pricing_block),
                    "context_kept": len(units_block + pricing_block), "context_files_kept": 2}
    # a share that holds pricing.py and 5 bytes of units.py's text: units.py keeps its header and its end
    reserved = len(pricing_block) + len(b"units.py\n") + 1 + 5 + 1
    keep = reserved - len(head) - len(current)  # both modes: the same in-file part, the end of cart.py
    assert keep < len(prefix)
    cross, info = rc.token_prompt(tok, task, repos, "cross-file", room=2 * reserved, share=0.5)
    assert cross == (head + [file_sep, *b"units.py\n", *units.encode()[-5:], *b"\n"] + pricing_block + current
                     + prefix[-keep:])
    assert info == {"prefix_cut": True, "context_files": 2, "context_tokens": len(units_block + pricing_block),
                    "context_kept": reserved, "context_files_kept": 2}
    in_file, info = rc.token_prompt(tok, task, repos, "in-file", room=2 * reserved, share=0.5)
    assert in_file == head + current + prefix[-keep:] and info["prefix_cut"]
    # a share too small for a header and one token of text holds nothing: the prompt is the in-file one
    tiny, info = rc.token_prompt(tok, task, repos, "cross-file", room=2 * 12, share=0.5)
    assert tiny == rc.token_prompt(tok, task, repos, "in-file", room=2 * 12, share=0.5)[0]
    assert info["context_kept"] == info["context_files_kept"] == 0
    text, info = rc.text_prompt(task, repos, "cross-file", max_chars=10_000)
    assert text == ("<|repo_name|>shop\n<|file_sep|>units.py\n" + units + "\n<|file_sep|>pricing.py\n" + pricing
                    + "\n<|file_sep|>cart.py\n" + task.prefix)
    budget = len("<|file_sep|>pricing.py\n" + pricing + "\n") + 3  # not enough for units.py's header
    text, info = rc.text_prompt(task, repos, "cross-file", max_chars=2 * budget, share=0.5)
    own = budget - len("<|repo_name|>shop\n<|file_sep|>cart.py\n")
    assert text == ("<|repo_name|>shop\n<|file_sep|>pricing.py\n" + pricing + "\n<|file_sep|>cart.py\n"
                    + task.prefix[-own:])
    assert info["context_files_kept"] == 1
    with pytest.raises(UserError, match="--cross-file-share 1.0"):
        rc.check_share(1.0)


def test_definitions_are_cut_after_what_tells_how_to_use_them():
    from opencodegen.eval.repo_tasks import header_end
    text = ("import x\n\n@cache\ndef f(a,\n      b):\n    \"\"\"doc\n    more\"\"\"\n    return a\n\n"
            "class C(Base):\n    attr = 1\n\n    def __init__(self, a):\n        self.a = a\n\n"
            "class D:\n    def m(self): pass\ndef g(): return 1\nN, M = (1,\n        2)\n")
    # f: through its docstring (line 7); C: through __init__'s signature (13); D: its class line (no __init__);
    # g: one line; N and M: the whole assignment
    assert {name: header_end(text, name) for name in ("f", "C", "D", "g", "N", "M", "x", "missing")} == \
        {"f": 7, "C": 13, "D": 16, "g": 18, "N": 20, "M": 20, "x": None, "missing": None}


def _repo_model(block_size: int = 256) -> GPT:
    import torch
    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny-1m", vocab_size=RepoByteTokenizer().vocab_size, block_size=block_size)
    return GPT(config).eval()


def test_end_to_end_on_a_tiny_random_model(tmp_path):
    summary = rc.evaluate(tmp_path, repos=discover(REPOS), model=_repo_model(), tokenizer=RepoByteTokenizer(),
                          params=SamplingParams(max_new_tokens=4), limit=3, seed=1)
    assert summary["tasks"] == 3 and list(summary["by_mode"]) == ["in-file", "cross-file"]
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert len(results) == 6 and {r["mode"] for r in results} == {"in-file", "cross-file"}
    for mode in rc.MODES:
        rows = [r for r in results if r["mode"] == mode]
        assert summary["by_mode"][mode]["edit_similarity"] == pytest.approx(
            sum(rc.edit_similarity(r["prediction"], r["target"]) for r in rows) / 3)
    # 256 - 4 tokens of room: the shop's cross-file context (over 200 bytes) does not always fit
    assert all(r["context_kept"] <= r["context_tokens"] for r in results if r["mode"] == "cross-file")
    assert (tmp_path / "repo_completion.png").stat().st_size > 0
    assert "| exact match |" in (tmp_path / "report.md").read_text()
    skipped = [json.loads(line) for line in open(tmp_path / "skipped.jsonl")]
    assert len([s for s in skipped if "line" in s]) == 4 and len(skipped) == 4 + len(SKIPPED)
    # a model without the repository tokens: in-file only, on the bare file, and the report says why
    plain = rc.evaluate(tmp_path / "plain", repos=discover(REPOS), model=tiny_model(), tokenizer=ByteTokenizer(),
                        params=SamplingParams(max_new_tokens=2), limit=1)
    assert list(plain["by_mode"]) == ["in-file"] and "no <|repo_name|>" in plain["note"]


def test_model_run_resumes_without_redoing_finished_tasks(tmp_path, monkeypatch):
    from opencodegen import engine
    asked: list[int] = []
    real_generate = engine.generate

    def counting_generate(model, tokenizer, prompts, params, **options):
        asked.append(len(prompts))
        return real_generate(model, tokenizer, prompts, params, **options)

    monkeypatch.setattr(engine, "generate", counting_generate)
    run = dict(repos=discover(REPOS), tokenizer=RepoByteTokenizer(), params=SamplingParams(max_new_tokens=4), limit=5)
    first = rc.evaluate(tmp_path, model=_repo_model(), **run)
    assert sum(asked) == 10
    samples = (tmp_path / "samples.jsonl").read_text()
    journal = tmp_path / rc.JOURNAL
    lines = journal.read_text().splitlines(keepends=True)
    assert len(lines) == 10
    # killed after 6 answers, in the middle of writing the 7th
    journal.write_text("".join(lines[:6]) + lines[6][:25])
    (tmp_path / "samples.jsonl").unlink()
    asked.clear()
    again = rc.evaluate(tmp_path, model=_repo_model(), **run)
    assert sum(asked) == 4 and again["answers_from_journal"] == 6  # only the unfinished ones are generated
    resumed = [json.loads(line) for line in open(tmp_path / "samples.jsonl")]
    assert sum(r.pop("from_journal", False) for r in resumed) == 6
    assert resumed == [json.loads(line) for line in samples.splitlines()] and again["by_mode"] == first["by_mode"]
    asked.clear()
    rc.evaluate(tmp_path, model=_repo_model(), **run)
    assert asked == []  # everything recorded: nothing generated
    # other weights, or other settings, are other questions: asked again, not answered from the journal
    import torch
    other = _repo_model()
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    rc.evaluate(tmp_path, model=other, **run)
    assert sum(asked) == 10
    asked.clear()
    rc.evaluate(tmp_path, model=_repo_model(), **{**run, "params": SamplingParams(max_new_tokens=3)})
    assert sum(asked) == 10


def test_endpoint_side_by_side_and_reference(tmp_path):
    tasks, _, _ = build_tasks(discover(REPOS))
    targets = {t.prefix: t.target for t in tasks}

    def respond(body):
        prompt = body["prompt"]
        current = prompt.rsplit("<|file_sep|>", 1)[1].split("\n", 1)[1]
        right = prompt.count("<|file_sep|>") > 1  # answers right only when other files came first
        return 200, vllm_body(["\n" + (targets[current] if right else "pass") + "\nmore"])

    with Endpoint("http://fake/v1", transport=FakeServer(respond).transport) as ep:
        summary = rc.evaluate(tmp_path, repos=discover(REPOS), endpoint=ep, params=SamplingParams(max_new_tokens=16))
    assert summary["by_mode"]["cross-file"]["exact_match"] == 1.0
    assert summary["by_mode"]["in-file"]["exact_match"] == 0.0
    assert summary["context"]["unit"] == "characters"
    reference = rc.evaluate(tmp_path / "ref", repos=discover(REPOS), reference=True)
    assert {m: (v["exact_match"], v["edit_similarity"]) for m, v in reference["by_mode"].items()} == \
        {"in-file": (1.0, 1.0), "cross-file": (1.0, 1.0)}


def test_cli_and_bad_repos(tmp_path, capsys):
    assert main(["eval", "repo", "--reference", "--repos", str(REPOS), "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["tasks"] == len(EXPECTED)
    assert "Repository-level completion (7 tasks, 1 repositories)" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(UserError, match="no such directory"):
        discover(tmp_path / "missing")
    (tmp_path / "file.py").write_text("x = 1\n")
    with pytest.raises(UserError, match="not a directory"):
        discover(tmp_path / "file.py")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no subdirectories"):
        discover(tmp_path / "empty")
    (tmp_path / "flat" / "one").mkdir(parents=True)
    (tmp_path / "flat" / "one" / "a.py").write_text("def f():\n    return 1\n")
    (tmp_path / "flat" / "one" / "b.py").write_text("import os\n")
    (tmp_path / "flat" / "two").mkdir()
    with pytest.raises(UserError, match="no repository-level task"):
        build_tasks(discover(tmp_path / "flat"))
    skipped: list[dict] = []
    read_repository("two", tmp_path / "flat" / "two", skipped)
    assert skipped == [{"repo": "two", "path": "", "reason": "the repository has no files"}]
    assert main(["eval", "repo", "--reference", "--repos", str(tmp_path / "missing")]) == 2
    assert "--repos" in capsys.readouterr().err
    assert main(["eval", "repo", "--reference", "--run-dir", str(tmp_path)]) == 2
    assert "ocg quickstart" in capsys.readouterr().err


def test_quickstart_step_on_held_out_repositories(tmp_path):
    """The quickstart step reads a run's held-out repositories as heldout.build left them."""
    import shutil

    from serve_fixtures import write_checkpoint

    from opencodegen.quickstart import evaluation
    from opencodegen.quickstart.budget import Budget
    assert Budget().repo_tasks > 0  # on by default
    run_dir = tmp_path / "run"
    (run_dir / "stages").mkdir(parents=True)
    (run_dir / "stages" / "heldout.json").write_text(json.dumps({"repos": ["src/shop"]}))
    shutil.copytree(SHOP, run_dir / "heldout" / "files" / "src" / "shop")
    ckpt = write_checkpoint(tmp_path / "ckpt")
    result = evaluation.repository_completion(ckpt, run_dir, tmp_path / "eval",
                                              Budget(repo_tasks=2, repo_max_new_tokens=4))
    assert result["tasks"] == 2 and set(result["by_mode"]) == {"in-file", "cross-file"}
    tasks = [json.loads(line) for line in open(tmp_path / "eval" / "tasks.jsonl")]
    assert {t["repo"] for t in tasks} == {"src/shop"}  # the corpus's repository name, as the model was trained on it
    shutil.rmtree(run_dir / "heldout" / "files" / "src")
    with pytest.raises(UserError, match="missing on disk"):
        evaluation.repository_completion(ckpt, run_dir, tmp_path / "eval2", Budget(repo_tasks=2))


def test_journal_skips_lines_it_cannot_read(tmp_path):
    from opencodegen.eval.journal import Journal

    path = tmp_path / "j.jsonl"
    path.write_text('{"key": "a", "values": [1]}\n{"choices": [2]}\n[3]\n{"key": "b", "values": [4]}\n{"key": "c", "va')
    journal = Journal(path)
    assert journal.values == {"a": [1], "b": [4]}  # the old shape and a non-object are redone, not a crash
    assert path.read_text().endswith('"values": [4]}\n')  # the cut-off last line is gone
