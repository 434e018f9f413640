"""Multi-turn programs in CodeGen's multi-turn synthesis format (MTPB's, and `ocg synth`'s), as post-training rows.

A program is a few turns, each an English instruction (a `# ` comment line) and the code that does it: the first turn
assigns a literal input, the middle turns transform it, the last prints a result. A turn's instruction and code come
from the same piece, so the English says what the code does; names come from the synthetic generator's wide pools,
so the code must use the names the instructions give.

A program is kept only if it runs in the sandbox, prints a plain value that is not empty, prints the same value when
run again, and its code differs from every program kept before. A kept program becomes one SFT-only row per turn,
whose prompt is the history exactly as the multi-turn sampler builds it (`prompt_format.synth_history`) and whose
solution is that turn's code, plus one single-turn row (every instruction, then all the code), the paper's
single-turn baseline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..prompt_format import SYNTH_PREAMBLE, synth_history, turn_prompt
from .records import Exercise
from .synthetic import _int_filters, _int_maps
from .synthetic_base import DOMAINS, NAMES, WORD_CONDITIONS, WORDS

SOURCE = "multi_turn"


@dataclass
class Program:
    id: str
    turns: list[tuple[str, str]]  # (instruction, code)
    meta: dict = field(default_factory=dict)

    def code(self) -> str:
        return "\n".join(code for _, code in self.turns) + "\n"

    def single_turn_prompt(self) -> str:
        """The paper's single-turn prompt: every instruction, then the code of all of them at once."""
        return SYNTH_PREAMBLE + "".join(turn_prompt(t) for t, _ in self.turns)

    def rows(self) -> list[Exercise]:
        """One row per turn (the history before it, then its instruction) and one single-turn row."""
        instructions = [t for t, _ in self.turns]
        codes = [c + "\n" for _, c in self.turns]  # the target ends its last line; the history strips it again
        meta = {**self.meta, "sft_only": True, "n_asserts": 0, "turns": len(self.turns)}
        rows = [Exercise(f"{self.id}/turn{i}", SOURCE, synth_history(instructions[:i], codes[:i])
                         + turn_prompt(instructions[i]), "", codes[i], "", {**meta, "mode": "multi", "turn": i})
                for i in range(len(self.turns))]
        rows.append(Exercise(f"{self.id}/single", SOURCE, self.single_turn_prompt(), "", "".join(codes), "",
                             {**meta, "mode": "single"}))
        return rows


# ---------------------------------------------------------------------------------------------------- state
@dataclass
class State:
    """The variables a program has so far: name -> kind (ints, int, text, words, counts)."""
    kinds: dict[str, str] = field(default_factory=dict)
    focus: str = ""

    def fresh(self, rng: random.Random, pool: str) -> str:
        taken = set(self.kinds) | {"x", "w", "c", "d", "k", "i"}
        names = [n for n in NAMES[pool] if n not in taken]
        return rng.choice(names) if names else f"{pool}_{len(self.kinds)}"

    def set(self, name: str, kind: str) -> str:
        self.kinds[name] = kind
        self.focus = name
        return name


Step = Callable[[random.Random, State], tuple[str, str]]


def _say(rng: random.Random, *templates: str, **values) -> str:
    return rng.choice(templates).format(**values)


# ---------------------------------------------------------------------------------------------------- first turns
def start_ints(rng: random.Random, st: State) -> tuple[str, str]:
    values = [rng.randint(-10, 30) if rng.random() < 0.5 else rng.randint(0, 40) for _ in range(rng.randint(3, 9))]
    a = st.set(st.fresh(rng, "int_list"), "ints")
    return _say(rng, "Assign the list {v} to a variable named {a}.", "Create a list called {a} holding {v}.",
                "Define {a} as the list {v}.", "Store the numbers {v} in a list named {a}.", v=values, a=a), \
        f"{a} = {values}"


def start_text(rng: random.Random, st: State) -> tuple[str, str]:
    text = rng.choice([t for t in DOMAINS["sentence"][0] if t] + [DOMAINS["sentence"][1](rng) or "hello there"])
    a = st.set(st.fresh(rng, "sentence"), "text")
    return _say(rng, "Assign the string {v!r} to a variable named {a}.", "Create a string {a} with the value {v!r}.",
                "Set {a} to the text {v!r}.", v=text, a=a), f"{a} = {text!r}"


def start_words(rng: random.Random, st: State) -> tuple[str, str]:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
    a = st.set(st.fresh(rng, "word_list"), "words")
    return _say(rng, "Assign the list of strings {v} to a variable named {a}.", "Create a list {a} of the words {v}.",
                "Define {a} as the list {v}.", v=words, a=a), f"{a} = {words}"


def start_int(rng: random.Random, st: State) -> tuple[str, str]:
    value = rng.randint(2, 30)
    a = st.set(st.fresh(rng, "number"), "int")
    return _say(rng, "Set {a} to {v}.", "Assign the number {v} to a variable named {a}.", "Let {a} be {v}.",
                v=value, a=a), f"{a} = {value}"


STARTS: list[Step] = [start_ints, start_ints, start_text, start_words, start_int]


# ---------------------------------------------------------------------------------------------------- steps
def ints_step(rng: random.Random, st: State) -> tuple[str, str]:
    a = st.focus
    op = rng.choice(["filter", "filter_new", "map", "sort", "reverse", "slice", "dedupe", "append", "reduce", "count"])
    if op in ("filter", "filter_new"):
        cond, adj, _ = _int_filters(rng)
        cond = cond.format(v="x")
        if op == "filter":
            return (_say(rng, "Keep only the numbers in {a} that are {adj}.", "Remove from {a} every number that is "
                         "not {adj}.", a=a, adj=adj), f"{a} = [x for x in {a} if {cond}]")
        b = st.set(st.fresh(rng, "int_list"), "ints")
        return (_say(rng, "Collect the numbers of {a} that are {adj} into a list called {b}.",
                     "Make a new list {b} with the numbers in {a} that are {adj}.", a=a, b=b, adj=adj),
                f"{b} = [x for x in {a} if {cond}]")
    if op == "map":
        expr, phrase, _ = _int_maps(rng)
        b = st.set(st.fresh(rng, "int_list"), "ints")
        return (f"Make a list {b} of {phrase.format(x=f'the numbers in {a}', v='x')}.",
                f"{b} = [{expr.format(v='x')} for x in {a}]")
    if op == "sort":
        desc = rng.random() < 0.4
        order = "descending" if desc else "ascending"
        return (_say(rng, "Sort {a} in {o} order.", "Arrange the numbers of {a} in {o} order.", a=a, o=order),
                rng.choice([f"{a}.sort({'reverse=True' if desc else ''})",
                            f"{a} = sorted({a}{', reverse=True' if desc else ''})"]))
    if op == "reverse":
        return (_say(rng, "Reverse the order of {a}.", "Reverse {a}.", a=a),
                rng.choice([f"{a} = {a}[::-1]", f"{a}.reverse()"]))
    if op == "slice":
        k = rng.randint(1, 4)
        if rng.random() < 0.5:
            return f"Keep only the first {k} elements of {a}.", f"{a} = {a}[:{k}]"
        return f"Drop the first {k} elements of {a}.", f"{a} = {a}[{k}:]"
    if op == "dedupe":
        return (f"Remove repeated numbers from {a}, keeping the first occurrence of each.",
                f"{a} = list(dict.fromkeys({a}))")
    if op == "append":
        k = rng.randint(-5, 20)
        return _say(rng, "Append {k} to the end of {a}.", "Add the number {k} at the end of {a}.", a=a, k=k), \
            f"{a}.append({k})"
    if op == "count":
        cond, adj, _ = _int_filters(rng)
        t = st.set(st.fresh(rng, "number"), "int")
        return (f"Count the numbers in {a} that are {adj} and store the count in {t}.",
                f"{t} = sum(1 for x in {a} if {cond.format(v='x')})")
    word, code = rng.choice([("sum", "sum({a})"), ("largest number", "max({a})"), ("smallest number", "min({a})"),
                             ("length", "len({a})")])
    t = st.set(st.fresh(rng, "number"), "int")
    return f"Compute the {word} of {a} and store it in {t}.", f"{t} = {code.format(a=a)}"


def int_step(rng: random.Random, st: State) -> tuple[str, str]:
    a = st.focus
    k = rng.randint(2, 9)
    op = rng.choice(["arith", "range_sum", "range_list", "digits", "square"])
    if op == "arith":
        verb, code = rng.choice([("Multiply {a} by {k}.", "{a} = {a} * {k}"), ("Add {k} to {a}.", "{a} = {a} + {k}"),
                                 ("Subtract {k} from {a}.", "{a} = {a} - {k}"),
                                 ("Replace {a} by the remainder of {a} divided by {k}.", "{a} = {a} % {k}")])
        return verb.format(a=a, k=k), code.format(a=a, k=k)
    if op == "square":
        b = st.set(st.fresh(rng, "number"), "int")
        return f"Compute the square of {a} and call it {b}.", f"{b} = {a} * {a}"
    if op == "range_sum":
        b = st.set(st.fresh(rng, "number"), "int")
        return (f"Compute the sum of the numbers from 1 to {a} and store it in {b}.",
                rng.choice([f"{b} = sum(range(1, {a} + 1))", f"{b} = {a} * ({a} + 1) // 2"]))
    if op == "digits":
        b = st.set(st.fresh(rng, "int_list"), "ints")
        return f"Make a list {b} of the decimal digits of {a}.", f"{b} = [int(d) for d in str(abs({a}))]"
    cond, adj, _ = _int_filters(rng)
    b = st.set(st.fresh(rng, "int_list"), "ints")
    return (f"Make a list {b} of the numbers from 1 to {a} that are {adj}.",
            f"{b} = [x for x in range(1, {a} + 1) if {cond.format(v='x')}]")


def text_step(rng: random.Random, st: State) -> tuple[str, str]:
    a = st.focus
    op = rng.choice(["case", "strip", "replace", "reverse", "split", "count", "vowels"])
    if op == "case":
        which = rng.choice(["lower", "upper"])
        return f"Convert {a} to {which}case.", f"{a} = {a}.{which}()"
    if op == "strip":
        return f"Remove the spaces at the start and end of {a}.", f"{a} = {a}.strip()"
    if op == "replace":
        c1, c2 = rng.sample("aeinorst", 2)
        return f"Replace every '{c1}' in {a} with '{c2}'.", f"{a} = {a}.replace('{c1}', '{c2}')"
    if op == "reverse":
        return f"Reverse the characters of {a}.", f"{a} = {a}[::-1]"
    if op == "vowels":
        return (f"Remove the vowels from {a}.", f"{a} = ''.join(c for c in {a} if c.lower() not in 'aeiou')")
    if op == "count":
        ch = rng.choice("aeinorst")
        t = st.set(st.fresh(rng, "number"), "int")
        return f"Count how many times the letter '{ch}' occurs in {a} and store it in {t}.", f"{t} = {a}.count('{ch}')"
    w = st.set(st.fresh(rng, "word_list"), "words")
    return _say(rng, "Split {a} into words and store them in a list called {w}.",
                "Make a list {w} of the words in {a}.", a=a, w=w), f"{w} = {a}.split()"


_WORD_MAPS = [("Convert every word in {a} to uppercase.", "x.upper()"),
              ("Reverse every word in {a}.", "x[::-1]"), ("Capitalize every word in {a}.", "x.capitalize()"),
              ("Replace every word in {a} by its first letter.", "x[0]"),
              ("Replace every word in {a} by its length.", "len(x)")]


def words_step(rng: random.Random, st: State) -> tuple[str, str]:
    a = st.focus
    op = rng.choice(["filter", "map", "sort", "join", "count", "lengths", "counts"])
    if op == "filter":
        cond, phrase, _ = rng.choice(WORD_CONDITIONS)
        k, ch = rng.randint(2, 5), rng.choice("aeilnorst")
        return (f"Keep only the words in {a} {phrase.format(k=k, ch=ch)}.",
                f"{a} = [w for w in {a} if {cond.format(w='w', k=k, ch=ch)}]")
    if op == "map":
        text, expr = rng.choice(_WORD_MAPS)
        if "len(" in expr:
            st.set(a, "ints")
        return text.format(a=a), f"{a} = [{expr} for x in {a}]"
    if op == "sort":
        by_len = rng.random() < 0.5
        return ((f"Sort {a} by word length, shortest first.", f"{a}.sort(key=len)") if by_len else
                (f"Sort {a} alphabetically.", f"{a} = sorted({a})"))
    if op == "join":
        sep = rng.choice([" ", "-", ", ", ""])
        s = st.set(st.fresh(rng, "sentence"), "text")
        return f"Join the words of {a} with {sep!r} between them into a string called {s}.", f"{s} = {sep!r}.join({a})"
    if op == "count":
        t = st.set(st.fresh(rng, "number"), "int")
        return f"Store the number of words in {a} in {t}.", f"{t} = len({a})"
    d = st.set(rng.choice(["counts", "lengths", "table", "freq", "mapping"]), "counts")
    if op == "lengths":
        return f"Build a dictionary {d} that maps each word in {a} to its length.", f"{d} = {{w: len(w) for w in {a}}}"
    return (f"Count how many times each word occurs in {a}, in a dictionary called {d}.",
            f"{d} = {{}}\nfor w in {a}:\n    {d}[w] = {d}.get(w, 0) + 1")


STEPS: dict[str, Step] = {"ints": ints_step, "int": int_step, "text": text_step, "words": words_step}


# ---------------------------------------------------------------------------------------------------- last turns
FINALS: dict[str, list[tuple[str, str]]] = {
    "ints": [("Print {a}.", "print({a})"), ("Print the sum of {a}.", "print(sum({a}))"),
             ("Print the largest number in {a}.", "print(max({a}))"), ("Print the length of {a}.", "print(len({a}))"),
             ("Print the average of the numbers in {a}.", "print(sum({a}) / len({a}))")],
    "int": [("Print {a}.", "print({a})"), ("Print {a} doubled.", "print({a} * 2)")],
    "text": [("Print {a}.", "print({a})"), ("Print the length of {a}.", "print(len({a}))"),
             ("Print {a} in uppercase.", "print({a}.upper())")],
    "words": [("Print {a}.", "print({a})"), ("Print the number of words in {a}.", "print(len({a}))"),
              ("Print the longest word in {a}.", "print(max({a}, key=len))")],
    "counts": [("Print the keys of {a} in sorted order.", "print(sorted({a}))"),
               ("Print the key of {a} with the largest value.", "print(max({a}, key={a}.get))"),
               ("Print the sum of the values in {a}.", "print(sum({a}.values()))")],
}


def program(rng: random.Random, ident: str) -> Program:
    st = State()
    start = rng.choice(STARTS)
    turns = [start(rng, st)]
    for _ in range(rng.randint(1, 3)):
        kind = st.kinds[st.focus]
        if kind == "counts":
            break
        turns.append(STEPS[kind](rng, st))
    text, code = rng.choice(FINALS[st.kinds[st.focus]])
    turns.append((text.format(a=st.focus), code.format(a=st.focus)))
    return Program(ident, turns, {"start": start.__name__})


def programs(seed: int) -> Iterator[Program]:
    """An endless, seeded stream; the same seed gives the same programs."""
    rng = random.Random(seed)
    index = 0
    while True:
        yield program(rng, f"{SOURCE}/{seed}/{index}")
        index += 1


# ---------------------------------------------------------------------------------------------------- validation
def _trivial(value) -> bool:
    return value is None or (isinstance(value, (list, str, dict, tuple)) and not value)


def validate_programs(judge, progs: list[Program], seen_code: set[str]) -> tuple[list[Program], list[dict]]:
    """(kept, rejects): each program runs twice in the sandbox; it is kept if both runs print the same plain,
    non-empty value and no kept program has the same code."""
    codes = [p.code() for p in progs]
    first, second = judge.values(codes), judge.values(codes)
    kept, rejects = [], []
    for p, code, r1, r2 in zip(progs, codes, first, second):
        reason, detail = "", ""
        if not r1.ok:
            reason, detail = ("timeout" if r1.status == "timeout" else "does_not_run"), (r1.reason or r1.status)[:300]
        elif _trivial(r1.value):
            reason, detail = "empty_output", repr(r1.value)
        elif not r2.ok or r2.value != r1.value:
            reason, detail = "nondeterministic", f"{r1.value!r} then {r2.value!r}"[:300]
        elif code in seen_code:
            reason = "duplicate_code"
        if reason:
            rejects.append({"id": p.id, "source": SOURCE, "reason": reason, "detail": detail, "prompt": "",
                            "solution": code, "meta": p.meta})
            continue
        seen_code.add(code)
        p.meta["output"] = repr(r1.value)[:200]
        kept.append(p)
    return kept, rejects
