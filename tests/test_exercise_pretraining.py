"""Exercises as pretraining documents (exercises/pretraining.py): each prompt + solution + end-of-text, in datatrove's
shard format the trainer reads; the rows SFT validates on go to valid/ only; the quickstart's Mono stage mixes them in
when they were built and trains on its corpus alone when they were not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opencodegen.errors import UserError
from opencodegen.exercises.pretraining import write_pretraining_tokens
from opencodegen.quickstart.pipeline import load_quickstart_recipe
from opencodegen.tokenizer import CodeTokenizer, train_tokenizer
from opencodegen.train.data import TokenSource, open_shards
from opencodegen.train.examples import held_out, read_examples


def exercise(k: int) -> dict:
    return {"id": f"synthetic/{k}", "prompt": f'def add_{k}(a, b):\n    """Return a plus {k} times b."""\n',
            "solution": f"    return a + {k} * b\n", "tests": f"def check(c):\n    assert c(1, 1) == {1 + k}\n",
            "entry_point": f"add_{k}"}


@pytest.fixture
def made(tmp_path):
    rows = [exercise(k) for k in range(300)]
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "exercises.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = train_tokenizer([r["prompt"] + r["solution"] for r in rows], vocab_size=512)
    tok.save(tmp_path / "tok")
    return tmp_path, CodeTokenizer.load(tmp_path / "tok" / "tokenizer.json")


def documents(directory: Path) -> list[list[int]]:
    out = []
    for shard in open_shards(directory):
        starts = [0, *shard.doc_ends[:-1].tolist()]
        out += [shard.tokens[s:e].tolist() for s, e in zip(starts, shard.doc_ends.tolist())]
    return out


def test_each_exercise_is_one_document_and_sft_validation_rows_stay_out_of_train(made):
    root, tok = made
    counts = write_pretraining_tokens(root / "exercises", root / "tok" / "tokenizer.json", root / "tokens", 0.1)
    examples = read_examples(root / "exercises")
    expected = {split: sorted(tok.encode(e.prompt + e.completion) + [tok.eos_id] for e in examples
                              if held_out(e, 0.1) == (split == "valid")) for split in ("train", "valid")}
    assert 0 < len(expected["valid"]) < len(expected["train"])  # (300 rows at 10%: both splits have some)
    for split in ("train", "valid"):
        got = documents(root / "tokens" / split)
        assert sorted(got) == expected[split]
        assert counts[split] == {"documents": len(got), "tokens": sum(map(len, got))}
    assert TokenSource(root / "tokens" / "train", 64).n_tokens == counts["train"]["tokens"]  # what training opens


def test_a_rewrite_replaces_the_directory_whole(made):
    root, _ = made
    out = root / "tokens"
    write_pretraining_tokens(root / "exercises", root / "tok" / "tokenizer.json", out, 0.1)
    (out / "train" / "stale.ds").write_bytes(b"\0\0")
    counts = write_pretraining_tokens(root / "exercises", root / "tok" / "tokenizer.json", out, 0.0)
    assert not (out / "train" / "stale.ds").exists() and not (out / "valid").exists()
    assert counts["valid"]["documents"] == 0 and counts["train"]["documents"] == 300
    assert not list(root.glob(".tokens*"))  # no temporary directory left behind


def test_no_exercises_is_a_clear_error(made):
    root, _ = made
    (root / "exercises" / "exercises.jsonl").write_text("")
    with pytest.raises(UserError, match="no exercise with a solution"):
        write_pretraining_tokens(root / "exercises", root / "tok" / "tokenizer.json", root / "tokens", 0.1)


def test_the_mono_mixture_keeps_the_exercises_only_when_they_were_built(tmp_path):
    config = tmp_path / "r.yaml"
    config.write_text(yaml.safe_dump({
        "tokenizer": "tokenizer/tokenizer.json", "model": {"preset": "tiny-1m"},
        "stages": [{"name": "mono", "data": {"tokens/mono": 0.7, "tokens/exercises": 0.3}, "steps": 2}]}))
    (tmp_path / "tokens" / "mono" / "train").mkdir(parents=True)
    alone = load_quickstart_recipe(config, tmp_path, ["mono"])
    assert alone.stages[0].data == {str(tmp_path / "tokens" / "mono"): 0.7}
    (tmp_path / "tokens" / "exercises" / "train").mkdir(parents=True)
    mixed = load_quickstart_recipe(config, tmp_path, ["mono"])
    assert mixed.stages[0].data == {str(tmp_path / "tokens" / "mono"): 0.7, str(tmp_path / "tokens" / "exercises"): 0.3}


def test_the_shipped_recipe_mixes_exercises_into_mono():
    shipped = yaml.safe_load((Path(__file__).parents[1] / "configs" / "quickstart.yaml").read_text())
    mono = next(s for s in shipped["stages"] if s["name"] == "mono")
    assert set(mono["data"]) == {"tokens/mono", "tokens/exercises"}


def test_cli_writes_the_directory_and_names_a_missing_tokenizer(made, capsys):
    from opencodegen.cli import main

    root, _ = made
    assert main(["exercises", "tokens", str(root / "exercises"), "--tokenizer", str(root / "tok" / "tokenizer.json"),
                 "--out", str(root / "cli"), "--valid-fraction", "0.1"]) == 0
    assert documents(root / "cli" / "train") and documents(root / "cli" / "valid")
    assert main(["exercises", "tokens", str(root / "exercises"), "--tokenizer", str(root / "nope.json"),
                 "--out", str(root / "cli2")]) != 0
    assert "--tokenizer" in capsys.readouterr().err and not (root / "cli2").exists()
