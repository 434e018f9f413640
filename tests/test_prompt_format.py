"""What the corpus builder trains on is what the server sends: for the same file cut at the same place, the training
document up to the middle token and the prompt each FIM route submits to the scheduler are the same token ids, at
file level (/v1/completions with suffix, /v1/fim/completions, /infill) and at repository level (/infill with
input_extra). Also the synthesis format against its hand-written form, and the FIM description /v1/models and
/props publish against the tokenizer."""

from __future__ import annotations

import httpx
import pytest
from datatrove.data import Document

from opencodegen.data.fim import FimConfig
from opencodegen.data.tokenize import Renderer, TokenizeConfig, encode_pieces
from opencodegen.prompt_format import SYNTH_PREAMBLE, synth_history, truncate_turn, turn_prompt
from serve_fixtures import (  # noqa: F401 (one_torch_thread is an autouse fixture)
    one_torch_thread, client, health, running_server, write_checkpoint)

FILES = [("geo/consts.py", "PI = 3.14159\nE = 2.71828\n"),
         ("geo/area.py", "from geo.consts import PI\n\n\ndef area(r):\n    return PI * r * r  # <|fim_middle|>\n")]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with running_server(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")) as s:
        yield s


class SubmittedPrompts:
    """Records the prompt ids every request hands the server's scheduler."""

    def __init__(self, server):
        self.scheduler = server.server.config.app.state.server.scheduler
        self.ids: list[list[int]] = []

    def __enter__(self) -> "SubmittedPrompts":
        original = self.scheduler.submit

        def submit(prompts, params, **kw):
            self.ids += [list(p.ids) for p in prompts]
            return original(prompts, params, **kw)

        self.scheduler.submit = submit
        return self

    def __exit__(self, *exc) -> None:
        del self.scheduler.submit


def corpus_document(files) -> Document:
    return Document(text="".join(t for _, t in files), id="geo-0",
                    metadata={"repo": "geo", "files": [(p, "python", len(t)) for p, t in files]})


def training_segments(tok, files, fmt: str, seed: int, rate: float):
    """The corpus builder's pieces and token ids for each file of the document (PSM only)."""
    renderer = Renderer(tok, TokenizeConfig(format=fmt, fim=FimConfig(rate=rate, spm_rate=0.0), seed=seed))
    docs = renderer.documents(corpus_document(files))
    segments = [pieces for _, segs in docs for _, pieces in segs]
    ids = [ids for doc in encode_pieces(tok, [segs for _, segs in docs]) for _, ids in doc]
    return segments, ids


def up_to_middle(tok, ids: list[int]) -> list[int]:
    middle = tok.special_id("<|fim_middle|>")
    return ids[: ids.index(middle) + 1]


def test_file_level_fim_is_the_same_tokens_in_training_and_on_every_route(served):
    server, _, tok = served
    fim_prefix = tok.special_id("<|fim_prefix|>")
    for seed in range(4):  # four different cut points
        segments, ids = training_segments(tok, FILES[1:], "file", seed, rate=1.0)
        pieces, trained = segments[0], ids[0]
        assert pieces[0] == fim_prefix and isinstance(pieces[1], str)
        prefix, suffix = pieces[1], pieces[3]
        want = up_to_middle(tok, trained)
        with SubmittedPrompts(server) as sent:
            client(server).completions.create(model="tiny", prompt=prefix, suffix=suffix, max_tokens=4, seed=seed,
                                              extra_body={"token_healing": False})
            r = httpx.post(server.url + "/v1/fim/completions",
                           json={"model": "tiny", "prompt": prefix, "suffix": suffix, "max_tokens": 4,
                                 "token_healing": False})
            assert r.status_code == 200, r.text
            r = httpx.post(server.url + "/infill", json={"input_prefix": prefix, "input_suffix": suffix,
                                                         "n_predict": 4, "token_healing": False})
            assert r.status_code == 200, r.text
        assert sent.ids == [want, want, want], seed


def test_repository_level_fim_is_the_same_tokens_in_training_and_on_infill(served):
    server, _, tok = served
    # A seed whose draw leaves the first file whole and cuts the second (the FIM coin is per file).
    for seed in range(200):
        segments, ids = training_segments(tok, FILES, "repo", seed, rate=0.5)
        if len(segments[0]) == 6 and tok.special_id("<|fim_middle|>") in ids[1]:
            break
    else:
        raise AssertionError("no seed gives a whole first file and a cut second one")
    pieces = segments[1]
    prefix, suffix = pieces[3], pieces[5]  # [file_sep, path, fim_prefix, prefix, fim_suffix, suffix, ...]
    want = ids[0] + up_to_middle(tok, ids[1])
    with SubmittedPrompts(server) as sent:
        r = httpx.post(server.url + "/infill", json={
            "input_prefix": prefix, "input_suffix": suffix, "n_predict": 4, "token_healing": False,
            "repo_name": "geo", "filename": FILES[1][0],
            "input_extra": [{"filename": FILES[0][0], "text": FILES[0][1]}]})
    assert r.status_code == 200, r.text
    assert sent.ids == [want]
    assert r.json()["tokens_evaluated"] == len(want)


def test_models_and_props_describe_the_fim_format_the_server_uses(served):
    server, _, tok = served
    model = httpx.get(server.url + "/v1/models").json()["data"][0]
    props = httpx.get(server.url + "/props").json()
    context = health(server)["context"]
    assert model["context_length"] == model["max_model_len"] == context
    assert props["n_ctx"] == props["default_generation_settings"]["n_ctx"] == context
    assert props["total_slots"] == 4 and props["fim"] == model["fim"]
    fim = model["fim"]
    # The template, filled in with the token strings as control tokens, is the prompt the server sends.
    prefix, suffix = "def f(x):\n", "\n    return y\n"
    names = fim["tokens"]
    assert fim["order"] == ["prefix", "suffix", "middle"]
    assert fim["template"] == names["prefix"] + "{prefix}" + names["suffix"] + "{suffix}" + names["middle"]
    want = [tok.special_id(names["prefix"]), *tok.encode(prefix), tok.special_id(names["suffix"]),
            *tok.encode(suffix), tok.special_id(names["middle"])]
    with SubmittedPrompts(server) as sent:
        httpx.post(server.url + "/v1/fim/completions", json={"prompt": prefix, "suffix": suffix, "max_tokens": 2,
                                                             "token_healing": False})
    assert sent.ids == [want]
    assert [tok.special_id(t) for t in fim["end_tokens"]] == [tok.eos_id, tok.special_id("<|fim_pad|>"),
                                                               tok.special_id("<|file_sep|>")]
    assert fim["repo"]["tokens"] == {"repo_name": "<|repo_name|>", "file_sep": "<|file_sep|>"}


def test_synthesis_format_is_codegens_multi_turn_prompt():
    assert turn_prompt("Sort xs.") == "# Sort xs.\n"
    assert synth_history(["Let a be 1.", "Print a."], ["a = 1", "print(a)"]) == (
        "# Import libraries.\n\nimport numpy as np\n\n# Let a be 1.\na = 1\n\n# Print a.\nprint(a)\n\n")
    assert synth_history([], [], preamble="") == "" and SYNTH_PREAMBLE.endswith("\n\n")
    assert truncate_turn("x = 1\nprint(x)\nprint(2)\n") == "x = 1\nprint(x)\n"
    assert truncate_turn("y = 2\n# next turn\nz = 3") == "y = 2\n"
