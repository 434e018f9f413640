"""`ocg eval humaneval --chat` end to end with a tiny random model whose tokenizer has a chat template: locally, the
prompt ids are transformers' apply_chat_template ids for the same conversation, decoding ends at <|im_end|> and not at
HumanEval's stop strings, and each reply is what the engine writes for those ids; through `ocg serve` started here,
/v1/chat/completions gives the same replies and a rerun resumes from the journal. A random model scores 0: what is
checked is the mechanics. A model without a chat format is one clear error, loaded here or served."""

from __future__ import annotations

import json

import pytest
import torch

from opencodegen import engine
from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.eval import humaneval, instruct
from opencodegen.eval.sanitize import sanitize
from opencodegen.model.config import ModelConfig
from opencodegen.model.hf import export_hf
from opencodegen.model.io import load_checkpoint, save_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.prompt_format import CHAT_TEMPLATE, IM_END
from opencodegen.sampling import SamplingParams
from opencodegen.tokenizer import train_tokenizer
from serve_fixtures import CODE, one_torch_thread, running_server, write_checkpoint  # noqa: F401 (autouse fixture)

LIMIT, TOKENS = 2, 12


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    """A HuggingFace directory (so transformers reads the same tokenizer) of a random model with our chat template;
    a context long enough for whole HumanEval prompts in a 384-id vocabulary."""
    tok = train_tokenizer(CODE * 20, vocab_size=384).with_chat_template(CHAT_TEMPLATE)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=tok.vocab_size, block_size=2048,
                                        eos_token_id=tok.eos_id, lm_head_bias=True))
    root = tmp_path_factory.mktemp("chat")
    return export_hf(save_checkpoint(model, tok, root / "ckpt"), root / "hf")


def eval_args(source: list[str], out) -> list[str]:
    return ["eval", "humaneval", *source, "--chat", "--limit", str(LIMIT), "--max-new-tokens", str(TOKENS),
            "--out", str(out), "--workers", "1"]


def test_local_chat_prompts_are_transformers_chat_template_ids(chat_model, tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    calls = []
    real = engine.generate

    def recording(model, tokenizer, prompts, params, **kw):
        calls.append(([list(p) for p in prompts], params))
        return real(model, tokenizer, prompts, params, **kw)

    monkeypatch.setattr(engine, "generate", recording)
    assert main(eval_args(["--model", str(chat_model)], tmp_path)) == 0
    problems = list(humaneval.load_problems().values())[:LIMIT]
    hf = transformers.AutoTokenizer.from_pretrained(chat_model)
    [(prompts, params)] = calls
    for ids, p in zip(prompts, problems):
        theirs = hf.apply_chat_template(instruct.conversation(p["prompt"]), add_generation_prompt=True)
        assert ids == list(theirs["input_ids"] if not isinstance(theirs, list) else theirs)
    assert params.stop == () and params.stop_token_ids == (hf.convert_tokens_to_ids(IM_END),)
    model, tok = load_checkpoint(chat_model)
    want = real(model, tok, prompts, SamplingParams(max_new_tokens=TOKENS, temperature=0.0,
                                                    stop_token_ids=params.stop_token_ids))
    samples = [json.loads(line) for line in open(tmp_path / "samples.jsonl")]
    assert [s["reply"] for s in samples] == [c.text for [c] in want]
    assert [s["completion"] for s in samples] == [sanitize(s["reply"], p["entry_point"]) for s, p in
                                                  zip(samples, problems)]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["prompting"]["mode"] == "chat" and summary["prompting"]["replies"] == LIMIT
    assert summary["pass_at_k"]["pass@1"] == 0.0 and summary["samples"] == LIMIT
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert len(results) == LIMIT and all(r["reason"] for r in results)  # each failure says why


def test_served_chat_gives_the_local_replies_and_resumes(chat_model, tmp_path):
    assert main(eval_args(["--model", str(chat_model)], tmp_path / "local")) == 0
    with running_server(chat_model) as (server, _, _):
        assert main(eval_args(["--endpoint", server.url], tmp_path / "served")) == 0
        journal = (tmp_path / "served" / "endpoint_responses.jsonl").read_text()
        assert main(eval_args(["--endpoint", server.url], tmp_path / "served")) == 0
        assert (tmp_path / "served" / "endpoint_responses.jsonl").read_text() == journal  # nothing asked again

    def replies(run):
        return [(s["task_id"], s["reply"], s["completion"]) for s in map(json.loads, open(tmp_path / run /
                                                                                           "samples.jsonl"))]
    assert replies("served") == replies("local") and len(replies("local")) == LIMIT


def test_a_model_without_a_chat_format_is_one_clear_error(tmp_path, capsys):
    model, tok = load_checkpoint(write_checkpoint(tmp_path / "plain"))
    with pytest.raises(UserError, match="--chat: this model's tokenizer has no chat template"):
        humaneval.evaluate(tmp_path / "out", model=model, tokenizer=tok, limit=1,
                           params=SamplingParams(max_new_tokens=4), chat=True)
    assert not (tmp_path / "out" / "samples.jsonl").exists()
    assert main(eval_args(["--model", str(tmp_path / "plain")], tmp_path / "cli")) == 2
    assert "evaluate it without --chat" in capsys.readouterr().err
    with running_server(tmp_path / "plain") as (server, _, _):  # served: the server's 400, at once, not retried
        assert main(eval_args(["--endpoint", server.url], tmp_path / "served")) == 2
    err = capsys.readouterr().err
    assert "/v1/chat/completions refused the request: 400" in err and "no chat template" in err
