"""Synthetic math word problems for the offline demo (MAWPS-, ASDiv- and SVAMP-like).

A problem is a few fact sentences and a question, built from templates with 1-3 operations.
Quantities are masked ``number0, number1, ...`` in order of appearance (as in the SVAMP files), the
equation is prefix over the masks and the constants 12 ("dozen") and 7 ("a week").

Difficulty knobs per variant (:data:`VARIANTS`): the mix of 1/2/3-operation templates, the chance
of a distractor sentence (a quantity the answer does not use), of reordered facts, and of SVAMP's
"variations" (the question asks about the other entity, so the numbers enter the equation in
reverse order of appearance). ``svamp`` test problems are 1-2 operation problems with frequent
distractors and variations: the model is trained on the union of the ``mawps`` and ``asdiv``
distributions and tested on this harder one, like SVAMP.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .equations import evaluate_prefix

NAMES = ["alice", "ben", "carla", "dan", "emma", "finn", "gina", "hugo", "ivy", "jack", "kate", "leo"]
OBJECTS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "shells", "cards", "balloons",
           "candies"]
CONTAINERS = ["boxes", "bags", "baskets", "jars", "packs"]
GROUPS = ["friends", "kids", "students"]
FILLER = ["now", "today", "then"]


@dataclass(frozen=True)
class Variant:
    op_weights: tuple[float, float, float]  # chance of a 1-, 2-, 3-operation template
    distractor: float  # chance of one irrelevant quantity sentence
    same_object_distractor: float  # of those, the chance it mentions the asked object (harder)
    reorder: float  # chance of swapping order-free facts
    variation: float  # chance of a reversed-question variation where the template has one


VARIANTS: dict[str, Variant] = {
    "mawps": Variant((0.55, 0.45, 0.0), 0.15, 0.0, 0.1, 0.0),
    "asdiv": Variant((0.3, 0.4, 0.3), 0.5, 0.3, 0.3, 0.15),
    "svamp": Variant((0.6, 0.4, 0.0), 0.7, 0.6, 0.5, 0.6),
}


def _ints(rng: random.Random, k: int, lo: int = 2, hi: int = 20) -> list[int]:
    """k distinct integers, so that a wrongly chosen number changes the value."""
    return rng.sample(range(lo, hi + 1), k)


# Each template returns (facts, question, equation over quantity names, values, order_free)
# where facts are lists of words and quantities appear as "<q:name>" words.
def _t_add_more(r, A, B, o, c, g):
    a, b = _ints(r, 2)
    return ([[A, "has", "<q:a>", o, "."], [A, "buys", "<q:b>", "more", o, "."]],
            ["how", "many", o, "does", A, "have", "now", "?"], ["+", "a", "b"], {"a": a, "b": b}, False, None)


def _t_add_total(r, A, B, o, c, g):
    a, b = _ints(r, 2)
    return ([[A, "has", "<q:a>", o, "."], [B, "has", "<q:b>", o, "."]],
            ["how", "many", o, "do", A, "and", B, "have", "in", "total", "?"], ["+", "a", "b"],
            {"a": a, "b": b}, True, None)


def _t_sub_give(r, A, B, o, c, g):
    b, a = sorted(_ints(r, 2))
    return ([[A, "has", "<q:a>", o, "."], [A, "gives", "<q:b>", o, "to", B, "."]],
            ["how", "many", o, "does", A, "have", "left", "?"], ["-", "a", "b"], {"a": a, "b": b}, False, None)


def _t_sub_compare(r, A, B, o, c, g):
    b, a = sorted(_ints(r, 2))
    # variation: B has more, and the question asks how many more B has (reversed operand order)
    variation = ([[A, "has", "<q:a>", o, "."], [B, "has", "<q:b>", o, "."]],
                 ["how", "many", "more", o, "does", B, "have", "than", A, "?"], ["-", "b", "a"],
                 {"a": b, "b": a})
    return ([[A, "has", "<q:a>", o, "."], [B, "has", "<q:b>", o, "."]],
            ["how", "many", "more", o, "does", A, "have", "than", B, "?"], ["-", "a", "b"],
            {"a": a, "b": b}, False, variation)


def _t_mul_groups(r, A, B, o, c, g):
    a, b = _ints(r, 2, 2, 12)
    return ([[A, "has", "<q:a>", c, "."], ["there", "are", "<q:b>", o, "in", "each", "of", "the", c, "."]],
            ["how", "many", o, "does", A, "have", "?"], ["*", "a", "b"], {"a": a, "b": b}, True, None)


def _t_div_share(r, A, B, o, c, g):
    b, k = _ints(r, 2, 2, 12)
    return ([[A, "has", "<q:a>", o, "."], [A, "shares", "them", "equally", "among", "<q:b>", g, "."]],
            ["how", "many", o, "does", "each", "of", "the", g, "get", "?"], ["/", "a", "b"],
            {"a": b * k, "b": b}, False, None)


def _t_dozen(r, A, B, o, c, g):
    (a,) = _ints(r, 1, 2, 12)
    return ([[A, "buys", "<q:a>", "dozen", o, "."]], ["how", "many", o, "does", A, "buy", "?"],
            ["*", "a", "12"], {"a": a}, False, None)


def _t_week(r, A, B, o, c, g):
    (a,) = _ints(r, 1, 2, 20)
    return ([[A, "reads", "<q:a>", "pages", "every", "day", "."]],
            ["how", "many", "pages", "does", A, "read", "in", "a", "week", "?"], ["*", "a", "7"], {"a": a},
            False, None)


def _t_more_then_give(r, A, B, o, c, g):
    a, b = _ints(r, 2)
    cc = r.randint(2, a + b - 1)
    return ([[A, "has", "<q:a>", o, "."], [A, "buys", "<q:b>", "more", o, "."],
             ["then", A, "gives", "<q:c>", o, "to", B, "."]],
            ["how", "many", o, "does", A, "have", "now", "?"], ["-", "+", "a", "b", "c"],
            {"a": a, "b": b, "c": cc}, False, None)


def _t_groups_plus(r, A, B, o, c, g):
    a, b, cc = _ints(r, 3, 2, 12)
    return ([[A, "has", "<q:a>", c, "with", "<q:b>", o, "in", "each", "."],
             [A, "also", "has", "<q:c>", "loose", o, "."]],
            ["how", "many", o, "does", A, "have", "in", "total", "?"], ["+", "*", "a", "b", "c"],
            {"a": a, "b": b, "c": cc}, True, None)


def _t_total_share(r, A, B, o, c, g):
    cc, k = _ints(r, 2, 2, 9)
    a = r.randint(1, cc * k - 1)
    return ([[A, "has", "<q:a>", o, "."], [B, "has", "<q:b>", o, "."],
             ["they", "share", "them", "equally", "among", "<q:c>", g, "."]],
            ["how", "many", o, "does", "each", "of", "the", g, "get", "?"], ["/", "+", "a", "b", "c"],
            {"a": a, "b": cc * k - a, "c": cc}, False, None)


def _t_groups_minus(r, A, B, o, c, g):
    a, b = _ints(r, 2, 2, 10)
    cc = r.randint(1, a * b - 1)
    return ([[A, "has", "<q:a>", c, "with", "<q:b>", o, "in", "each", "."],
             [A, "gives", "<q:c>", o, "to", B, "."]],
            ["how", "many", o, "does", A, "have", "left", "?"], ["-", "*", "a", "b", "c"],
            {"a": a, "b": b, "c": cc}, False, None)


def _t_dozen_plus(r, A, B, o, c, g):
    a, b = _ints(r, 2, 2, 12)
    return ([[A, "buys", "<q:a>", "dozen", o, "."], [B, "buys", "<q:b>", o, "."]],
            ["how", "many", o, "do", A, "and", B, "buy", "in", "total", "?"], ["+", "*", "a", "12", "b"],
            {"a": a, "b": b}, True, None)


def _t_three_buy_give(r, A, B, o, c, g):
    a, b, cc = _ints(r, 3, 2, 9)
    d = r.randint(1, a + b * cc - 1)
    return ([[A, "has", "<q:a>", o, "."], [A, "buys", "<q:b>", c, "with", "<q:c>", o, "in", "each", "."],
             ["then", A, "gives", "<q:d>", o, "to", B, "."]],
            ["how", "many", o, "does", A, "have", "now", "?"], ["-", "+", "a", "*", "b", "c", "d"],
            {"a": a, "b": b, "c": cc, "d": d}, False, None)


def _t_three_total_give(r, A, B, o, c, g):
    a, b, cc = _ints(r, 3, 5, 20)
    d = r.randint(1, a + b + cc - 1)
    return ([[A, "has", "<q:a>", o, "."], [A, "buys", "<q:b>", "more", o, "."],
             [A, "finds", "<q:c>", "more", o, "."], ["then", A, "gives", "<q:d>", o, "to", B, "."]],
            ["how", "many", o, "does", A, "have", "now", "?"], ["-", "+", "+", "a", "b", "c", "d"],
            {"a": a, "b": b, "c": cc, "d": d}, False, None)


TEMPLATES = {
    1: [_t_add_more, _t_add_total, _t_sub_give, _t_sub_compare, _t_mul_groups, _t_div_share, _t_dozen, _t_week],
    2: [_t_more_then_give, _t_groups_plus, _t_total_share, _t_groups_minus, _t_dozen_plus],
    3: [_t_three_buy_give, _t_three_total_give],
}


def generate_problem(rng: random.Random, variant: str) -> dict:
    """One problem row (without ``id``) of ``variant`` (``mawps``, ``asdiv`` or ``svamp``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown synthetic arithmetic variant {variant!r} (known: {', '.join(VARIANTS)})")
    v = VARIANTS[variant]
    n_ops = rng.choices((1, 2, 3), weights=v.op_weights)[0]
    template = rng.choice(TEMPLATES[n_ops])
    A, B, C = rng.sample(NAMES, 3)
    obj, obj2 = rng.sample(OBJECTS, 2)
    facts, question, eq, values, order_free, variation = template(rng, A, B, obj, rng.choice(CONTAINERS),
                                                                  rng.choice(GROUPS))
    if variation is not None and rng.random() < v.variation:
        facts, question, eq, values = variation
    facts = [list(f) for f in facts]
    if order_free and len(facts) > 1 and rng.random() < v.reorder:
        facts.reverse()
    if rng.random() < v.distractor:
        other = obj if rng.random() < v.same_object_distractor else obj2
        used = set(values.values())
        x = rng.choice([n for n in range(2, 21) if n not in used])
        values = dict(values, z=x)
        facts.insert(rng.randint(0, len(facts)), [C, "has", "<q:z>", other, "."])
    words, order = [], []
    for sentence in facts + [question]:
        for w in sentence:
            if w.startswith("<q:"):
                name = w[3:-1]
                order.append(name)
                words.append(f"number{len(order) - 1}")
            else:
                words.append(w)
    slot = {name: f"number{k}" for k, name in enumerate(order)}
    equation = [slot.get(tok, tok) for tok in eq]
    numbers = [float(values[name]) for name in order]
    answer = evaluate_prefix(equation, numbers)
    return {"question": " ".join(words), "numbers": numbers, "equation": equation, "answer": answer}


def generate(n: int, variant: str, seed: int, prefix: str) -> list[dict]:
    """``n`` problems of ``variant`` from ``seed``; ids ``<prefix>-<i>``."""
    rng = random.Random(f"{seed}:{variant}")
    return [dict(generate_problem(rng, variant), id=f"{prefix}-{i}") for i in range(n)]


def vocabulary(max_numbers: int = 10) -> list[str]:
    """Every word the generator can emit (sorted), plus masks ``number0..`` and the plain word
    ``number``; the demo tokenizer is word-level over exactly these."""
    words = set(NAMES + OBJECTS + CONTAINERS + GROUPS + FILLER + ["number"])
    rng = random.Random(0)
    for fns in TEMPLATES.values():
        for fn in fns:
            for _ in range(3):
                facts, question, _, _, _, variation = fn(rng, "<A>", "<B>", "<o>", "<c>", "<g>")
                sentences = facts + [question] + (variation[0] + [variation[1]] if variation else [])
                words.update(w for s in sentences for w in s if not w.startswith("<"))
    words.update(["has", "."])
    return sorted(words) + [f"number{k}" for k in range(max_numbers)]
