from eval_tiny import ByteTokenizer, tiny_model

from opencodegen.eval.context import fit_infill, fit_prompts, prompt_room


def test_long_prompts_keep_their_end():
    model = tiny_model(block_size=32)
    assert prompt_room(model, 8) == 24 and prompt_room(model, 30) == 16
    short, long = fit_prompts(ByteTokenizer(), model, ["abc", "x" * 50 + "tail"], 8, "test")
    assert short == list(b"abc") and len(long) == 24 and bytes(long).endswith(b"tail")


def test_infill_keeps_the_code_nearest_the_hole():
    prefix, suffix = list(range(100)), list(range(1000, 1100))
    p, s = fit_infill(prefix, suffix, 40)
    assert p == list(range(80, 100)) and s == list(range(1000, 1020))
    p, s = fit_infill(list(range(100)), [7, 8], 40)  # a short suffix is kept whole
    assert s == [7, 8] and p == list(range(62, 100))
    assert fit_infill([1], [2], 40) == ([1], [2])
