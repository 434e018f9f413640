"""How long the sanitizer's code search (sanitize.extract_code, which every `--chat` reply goes through) takes on chat
replies of growing length, against the named baseline: evalplus's code_extract as it is defined, every run of lines
parsed (written out below). Both must give the same code; the figure is CPU seconds per reply. Replies: a typical
answer (prose, a fenced function, prose), the same function between long stretches of prose (as a model that
reasons at length writes), prose alone, and an answer cut off inside a docstring (a reply that hit max_tokens).
Writes benchmarks/results/sanitize.json.

    python benchmarks/bench_sanitize.py [--prose 25 50 100 200]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


from opencodegen import host
from opencodegen.eval.sanitize import extract_code, extract_code_every_run

OUT = Path(__file__).parent / "results" / "sanitize.json"
FUNCTION = ("```python\nfrom typing import List\n\n\ndef running_max(xs: List[int]) -> List[int]:\n"
            "    \"\"\"The largest value so far at each position.\"\"\"\n    out, best = [], None\n    for x in xs:\n"
            "        best = x if best is None or x > best else best\n        out.append(best)\n    return out\n```")



def prose(n: int) -> str:
    """Lines that fail to parse only at their second word (no quote that would stop the tokenizer at once)."""
    return "\n".join(f"Step {i}: compare item {i} with the largest so far and keep the larger one as the maximum."
                     for i in range(n))


def replies(sizes: list[int]) -> dict[str, str]:
    out = {"typical (4 lines of prose, a 12-line fenced function, 2 of prose)":
           "Here is a solution that keeps the running maximum.\n\n" + FUNCTION + "\n\nIt runs in O(n) time.\n"
           "Each element is visited once."}
    for n in sizes:
        out[f"{n} lines of prose, the function, {n} more"] = prose(n) + "\n" + FUNCTION + "\n" + prose(n)
        out[f"{2 * n} lines of prose alone"] = prose(2 * n)
    cut = FUNCTION.replace('    """The largest value so far at each position."""',
                           '    """The largest value so far at each position.\n\n' + prose(20))
    out["cut off inside a docstring after 20 lines of it"] = "Sure.\n" + cut.split("```\n")[0] + cut[-400:]
    return out


def cpu_seconds(fn, text: str) -> tuple[float, str]:
    start = time.process_time()
    result = fn(text)
    return time.process_time() - start, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prose", type=int, nargs="+", default=[25, 50, 100, 200],
                    help="lines of prose on each side of the function")
    args = ap.parse_args()
    load = os.getloadavg()
    rows = {}
    for name, text in replies(args.prose).items():
        ours, found = cpu_seconds(extract_code, text)
        base, expected = cpu_seconds(extract_code_every_run, text)
        rows[name] = {"lines": text.count("\n") + 1, "extract_code_cpu_s": round(ours, 4),
                      "every_run_cpu_s": round(base, 4), "speedup": round(base / max(ours, 1e-6), 1),
                      "same_code": found == expected}
        print(name, json.dumps(rows[name]))
    result = {
        "benchmark": "sanitizer code search per chat reply (CPU seconds, one process)",
        "host": host.one_line(),
        "load_average_1_5_15_at_start": [round(x, 2) for x in load],
        "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
        "baseline": "extract_code_every_run: evalplus's code_extract as defined, every run of lines parsed",
        "results": rows,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
