"""Synthetic families over floating-point numbers: a list of floats filtered and then reduced or mapped, and the
everyday formulas (conversions, areas, percentages, distances) over one to three float parameters. The other
families are all integers and strings, while measurements, averages and formulas are a large part of what people ask
a program for; their tests compare within 1e-6 (validate.render_tests), so a program that sums in another order
still passes."""

from __future__ import annotations

import random

from .synthetic_base import Draft, Param, pick_name

# A condition on one float: (code with {v} and {t}, English of the items that meet it, tag); {t} is a threshold
# parameter or a constant
FLOAT_TESTS = [
    ("{v} > 0", "positive", "positive"),
    ("{v} < 0", "negative", "negative"),
    ("{v} > {t}", "greater than {t}", "above"),
    ("{v} < {t}", "less than {t}", "below"),
    ("{v} >= {t}", "at least {t}", "at_least"),
    ("abs({v}) <= {t}", "at most {t} away from zero", "small"),
    ("{v} == int({v})", "whole numbers (no fractional part)", "whole"),
    ("{v} != int({v})", "not whole numbers", "fractional"),
]
THRESHOLDS = ("0.5", "1.0", "1.5", "2.5", "3.0", "4.5", "5.0", "7.5", "-1.0", "-2.5")

# reducer: (expression over the chosen values `picked`, its value when none are chosen (None: defined then too),
# English from the items' noun phrase, return type)
FLOAT_REDUCERS = {
    "mean": ("sum(picked) / len(picked)", "0.0", "the average (mean) of {items}", "float"),
    "sum": ("sum(picked)", None, "the sum of {items} (0 if there are none)", "float"),
    "max": ("max(picked)", "0.0", "the largest of {items}", "float"),
    "min": ("min(picked)", "0.0", "the smallest of {items}", "float"),
    "spread": ("max(picked) - min(picked)", "0.0", "the difference between the largest and the smallest of {items}",
               "float"),
    "count": ("len(picked)", None, "how many of {items} there are", "int"),
}

# map: (expression of {v}, English of the items from {x}, tag, needs the factor parameter)
FLOAT_MAPS = [
    ("{v} * {f}", "{x}, each multiplied by {f}", "scaled", True),
    ("round({v}, 1)", "{x}, each rounded to 1 decimal place", "rounded", False),
    ("abs({v})", "the absolute values of {x}", "abs", False),
    ("{v} * {v}", "the squares of {x}", "squared", False),
    ("int({v})", "{x} with their fractional parts dropped (as integers, rounded towards zero)", "truncated", False),
    ("{v} / 2", "{x}, each halved", "halved", False),
    ("{v} - {c}", "{x}, each decreased by {c}", "minus", False),
]


def _float_names(rng: random.Random, xs: str) -> tuple[str, str]:
    t = rng.choice([n for n in ("threshold", "t", "limit", "cutoff", "bound", "level") if n != xs])
    f = rng.choice([n for n in ("factor", "scale", "rate", "weight", "multiplier") if n not in (xs, t)])
    return t, f


def float_list(rng: random.Random) -> Draft:
    """A list of floats, perhaps filtered by a condition (on a threshold parameter or a constant), perhaps mapped,
    then listed or reduced to one number (perhaps rounded); or a whole-list statistic (mean absolute deviation,
    variance, centred values)."""
    xs = pick_name(rng, "float_list")
    t, f = _float_names(rng, xs)
    v = rng.choice(["v", "x", "value", "num"])
    params = [Param(xs, "list[float]", "floats")]
    if rng.random() < 0.1:
        return _whole_list_statistic(rng, xs, v, params)
    cond, adj, ftag = rng.choice(FLOAT_TESTS) if rng.random() < 0.8 else ("", "", "")
    if "{t}" in cond and rng.random() < 0.5:
        params.append(Param(t, "float", "float"))
    else:
        t = rng.choice(THRESHOLDS)
        ftag += f"_{t}".replace("-", "m").replace(".", "_") if "{t}" in cond else ""
    cond, adj = cond.format(v=v, t=t), adj.format(t=t)
    noun = f"the numbers in {xs} that are {adj}" if cond else f"the numbers in {xs}"
    expr, items, mtag = v, noun, ""
    listed = rng.random() < 0.3
    red = "" if listed else rng.choice([r for r in FLOAT_REDUCERS if cond or r != "count"])
    if listed or (red != "count" and rng.random() < 0.4):  # a count does not depend on a map
        expr, phrase, mtag, needs_f = rng.choice(FLOAT_MAPS)
        if needs_f:
            params.append(Param(f, "float", "float"))
        c = rng.choice(["0.5", "1.5", "2.0", "10.0"])
        expr, items = expr.format(v=v, f=f, c=c), phrase.format(x=noun, f=f, c=c)
    name = "_".join(x for x in (mtag, ftag) if x)
    if listed:
        ret = "list[int]" if mtag == "truncated" else "list[float]"
        comprehension, loop = _collected("result", expr, v, xs, cond)
        body = rng.choice([[comprehension.replace("result = ", "return ", 1)], loop + ["return result"]])
        return Draft(f"{name}_values", params, ret, body, f"Return a list of {items}, in their original order.",
                     f"floats/map/{mtag}/{ftag}")
    code, empty, english, ret = FLOAT_REDUCERS[red]
    english, rounding = english.format(items=items), ""
    if ret == "float" and rng.random() < 0.3:
        digits = rng.choice([1, 2])
        code, rounding = f"round({code}, {digits})", f" Round the result to {_places(digits)}."
    comprehension, loop = _collected("picked", expr, v, xs, cond)
    pick = rng.choice([[comprehension], loop])
    if expr == v and not cond:  # the list itself
        pick, code = [], code.replace("picked", xs)
    guard = xs if not pick else "picked"
    if empty is None:
        body = pick + [f"return {code}"]
    else:
        english += f", or {empty} if there are none"
        body = pick + rng.choice([[f"if not {guard}:", f"    return {empty}", f"return {code}"],
                                  [f"return {code} if {guard} else {empty}"]])
    return Draft(f"{'_'.join(x for x in (red, name) if x)}_of_values", params, ret, body,
                 f"Return {english}.{rounding}", f"floats/{red}/{mtag}/{ftag}")


def _collected(target: str, expr: str, v: str, xs: str, cond: str) -> tuple[str, list[str]]:
    """`target` = [expr for v in xs if cond] as one comprehension line, and as a loop that appends."""
    gen_if = f" if {cond}" if cond else ""
    append = [f"    if {cond}:", f"        {target}.append({expr})"] if cond else [f"    {target}.append({expr})"]
    return f"{target} = [{expr} for {v} in {xs}{gen_if}]", [f"{target} = []", f"for {v} in {xs}:"] + append


def _places(digits: int) -> str:
    return "1 decimal place" if digits == 1 else f"{digits} decimal places"


def _whole_list_statistic(rng: random.Random, xs: str, v: str, params: list[Param]) -> Draft:
    choices = [
        ("mean_absolute_deviation", "float", "0.0", [f"return sum(abs({v} - mean) for {v} in {xs}) / len({xs})"],
         f"Return the mean absolute deviation of {xs}: the average distance of its numbers from their mean. An "
         f"empty list gives 0.0."),
        ("centred", "list[float]", "[]", [f"return [{v} - mean for {v} in {xs}]"],
         f"Return the numbers in {xs}, each minus the mean of {xs}, in order."),
        ("above_mean_count", "int", "0", [f"return sum(1 for {v} in {xs} if {v} > mean)"],
         f"Return how many numbers in {xs} are greater than the mean of {xs}."),
        ("variance", "float", "0.0", [f"return sum(({v} - mean) ** 2 for {v} in {xs}) / len({xs})"],
         f"Return the variance of {xs}: the mean of the squared differences from the mean. An empty list gives 0.0."),
    ]
    name, ret, empty, tail, doc = rng.choice(choices)
    mean = [f"if not {xs}:", f"    return {empty}", f"mean = sum({xs}) / len({xs})"]
    return Draft(name, params, ret, mean + tail, doc, f"floats/{name}")


def _formulas(rng: random.Random) -> list[tuple[str, list[tuple[str, str]], str, str]]:
    """(name, [(parameter, domain)], expression, English of the value)."""
    k = rng.randint(2, 5)
    return [
        ("to_fahrenheit", [("celsius", "float")], "celsius * 9 / 5 + 32", "the temperature celsius (in degrees "
         "Celsius) in degrees Fahrenheit"),
        ("to_celsius", [("fahrenheit", "float")], "(fahrenheit - 32) * 5 / 9", "the temperature fahrenheit (in "
         "degrees Fahrenheit) in degrees Celsius"),
        ("circle_area", [("radius", "pos_float")], "math.pi * radius ** 2", "the area of a circle of the given radius"),
        ("circumference", [("radius", "pos_float")], "2 * math.pi * radius",
         "the circumference of a circle of the given radius"),
        ("rectangle_area", [("width", "pos_float"), ("height", "pos_float")], "width * height",
         "the area of a rectangle with sides width and height"),
        ("triangle_area", [("base", "pos_float"), ("height", "pos_float")], "base * height / 2",
         "the area of a triangle with the given base and height"),
        ("hypotenuse", [("a", "pos_float"), ("b", "pos_float")], "math.sqrt(a ** 2 + b ** 2)",
         "the length of the hypotenuse of a right triangle whose other two sides are a and b"),
        ("distance", [("x1", "float"), ("y1", "float"), ("x2", "float"), ("y2", "float")],
         "math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)", "the distance between the points (x1, y1) and (x2, y2)"),
        ("percent_of", [("amount", "float"), ("percent", "pos_float")], "amount * percent / 100",
         "percent per cent of amount"),
        ("discounted", [("price", "pos_float"), ("percent", "pos_float")], "price * (1 - percent / 100)",
         "price after a discount of percent percent"),
        ("average_of", [("a", "float"), ("b", "float"), ("c", "float")], "(a + b + c) / 3",
         "the average of a, b and c"),
        ("midpoint", [("a", "float"), ("b", "float")], "(a + b) / 2", "the number halfway between a and b"),
        ("fractional_part", [("x", "pos_float")], "x - int(x)", "the fractional part of the positive number x (the "
         "part after the decimal point)"),
        ("average_speed", [("distance", "float"), ("hours", "pos_float")], "distance / hours",
         "the average speed of a trip of the given distance that took the given number of hours"),
        ("interpolate", [("start", "float"), ("end", "float"), ("t", "pos_float")], "start + (end - start) * t",
         "the point t of the way from start to end (start when t is 0, end when t is 1)"),
        ("grown", [("amount", "pos_float"), ("rate", "pos_float"), ("years", "k")],
         "amount * (1 + rate / 100) ** years", "amount after it grows by rate percent a year for years years"),
        ("cube_volume", [("side", "pos_float")], "side ** 3", "the volume of a cube whose edges are side long"),
        ("reciprocal_sum", [("a", "pos_float"), ("b", "pos_float")], "1 / a + 1 / b", "1 / a plus 1 / b"),
        (f"power_{k}", [("x", "float")], f"x ** {k}", f"x raised to the power {k}"),
    ]


def float_formula(rng: random.Random) -> Draft:
    """An everyday formula over one to four float parameters, perhaps rounded, or compared with a threshold."""
    name, params, expr, english = rng.choice(_formulas(rng))
    annotation = {"float": "float", "pos_float": "float", "k": "int"}
    ps = [Param(p, annotation[d], d) for p, d in params]
    positive = [p for p, d in params if d in ("pos_float", "k")]
    note = "".join(f" {p} is positive." for p in positive) if rng.random() < 0.5 else ""
    imports = ["import math"] if "math." in expr else []
    style = rng.choices(["plain", "rounded", "compare"], weights=[5, 3, 1])[0]
    if style == "rounded":
        digits = rng.choice([1, 2, 3])
        return Draft(f"{name}_rounded", ps, "float", [f"return round({expr}, {digits})"],
                     f"Return {english}, rounded to {_places(digits)}.{note}", f"formula/{name}/round",
                     imports)
    if style == "compare":
        limit = rng.choice([1, 5, 10, 50, 100])
        return Draft(f"{name}_over_{limit}", ps, "bool", [f"return {expr} > {limit}"],
                     f"Return True if {english} is greater than {limit}, and False otherwise.{note}",
                     f"formula/{name}/over", imports)
    body = rng.choice([[f"return {expr}"], [f"result = {expr}", "return result"]])
    return Draft(name, ps, "float", body, f"Return {english}.{note}", f"formula/{name}", imports)
