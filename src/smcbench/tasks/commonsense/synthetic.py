"""A tiny synthetic "world knowledge" benchmark for the offline demo of the commonsense family.

A *world* is a set of invented people, each with a favourite colour, a home city and a job, and a
``friend_of`` relation. Everything is drawn from ``world_seed`` alone, so the dataset rule and the
pre-training rule regenerate exactly the same world independently (they must use the same seed).

The world yields

* a **pre-training corpus**: the facts, written as plain sentences and grouped a few per line
  (the short MLM pre-training of the demo model learns the words and the sentence frames);
* **multiple-choice questions** in the family's row schema (``id``, ``question``, ``choices``,
  ``label``; plus ``passage``, ``kind``, ``subject``). A passage is a small story whose values
  are drawn afresh for each question, so answers are read, never memorized:

  - ``easy`` (find the fact of the asked type): the passage states the subject's colour, city
    and job; the choices are those three values and one more of the asked type. Every choice
    but one occurs in the passage, and half of them have the asked type: each surface cue alone
    is right 1/3 or 1/2 of the time; the model must combine them.
  - ``hard`` (and read a negation): as easy, plus a negated fact of the asked type ("X does
    not like the colour blue"); the choices are the answer, the negated value, one of the other
    facts' values and one more of the asked type. The easy skill (a choice of the asked type
    that the passage mentions) is now right half of the time; the model must also read the
    negation in front of a value. (Binding a name to its value among several people was tried
    first: the demo's 2-layer model did not learn it within 700 steps.)

:func:`heuristics` scores these surface readers per row; the Task's baseline is the best of them.

Questions about the same subject never straddle train and test: test subjects are a held-out
slice of the people, so test accuracy measures reading, not memorized question-answer pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: version of the generator; bump when the output for a given seed changes (recorded in meta.json)
GENERATOR_VERSION = 3

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
CITIES = ["paris", "lima", "oslo", "cairo", "delhi", "quito", "perth", "tokyo"]
JOBS = ["baker", "farmer", "doctor", "pilot", "teacher", "singer", "lawyer", "painter"]
ATTRIBUTES = {"colour": COLOURS, "city": CITIES, "job": JOBS}

# Sentence frames. Every token is separated by spaces so a whitespace word-level tokenizer suffices.
FACT = {
    "colour": "{e} likes the colour {v} .",
    "city": "{e} lives in {v} .",
    "job": "{e} works as a {v} .",
    "friend": "the friend of {e} is {v} .",
}
FACT_NOT = {
    "colour": "{e} does not like the colour {v} .",
    "city": "{e} does not live in {v} .",
    "job": "{e} does not work as a {v} .",
}
QUESTION = {
    "colour": "what colour does {e} like ?",
    "city": "where does {e} live ?",
    "job": "what is the job of {e} ?",
}
QUESTION_HOP2 = {
    "colour": "what colour does the friend of {e} like ?",
    "city": "where does the friend of {e} live ?",
    "job": "what is the job of the friend of {e} ?",
}
# Words the fine-tuning inputs add around the text (fairseq's "Q:" / "A:" prefixes, see commonsense.py)
INPUT_WORDS = ["q", "a", ":"]

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u"]


@dataclass
class World:
    """People with attributes and one friend each, all drawn from ``seed``."""

    seed: int
    people: list[str]
    attributes: dict[str, dict[str, str]]  # attribute -> person -> value
    friend: dict[str, str]

    def fact(self, kind: str, person: str) -> str:
        value = self.friend[person] if kind == "friend" else self.attributes[kind][person]
        return FACT[kind].format(e=person, v=value)

    def vocabulary(self) -> list[str]:
        """Every word the corpus and the questions can contain, in a fixed order."""
        words: list[str] = []
        for text in (list(FACT.values()) + list(FACT_NOT.values()) + list(QUESTION.values())
                     + list(QUESTION_HOP2.values())):
            words += [w for w in text.split() if not w.startswith("{")]
        words += INPUT_WORDS + self.people
        for values in ATTRIBUTES.values():
            words += values
        return list(dict.fromkeys(words))  # dedupe, keep first-seen order


def make_world(seed: int, n_people: int = 60) -> World:
    """The world of ``seed``: ``n_people`` invented two-syllable names, attributes, friendships."""
    if n_people < 8:
        raise ValueError(f"n_people={n_people} is too small for 4-choice questions (use >= 8)")
    rng = random.Random(seed)
    syllables = [c + v for c in _ONSETS for v in _VOWELS]
    names: set[str] = set()
    max_names = len(syllables) ** 2
    if n_people > max_names:
        raise ValueError(f"n_people={n_people} exceeds the {max_names} possible names")
    people: list[str] = []
    while len(people) < n_people:
        name = rng.choice(syllables) + rng.choice(syllables)
        if name not in names:
            names.add(name)
            people.append(name)
    attributes = {kind: {p: rng.choice(values) for p in people} for kind, values in ATTRIBUTES.items()}
    # friend_of is a random cyclic permutation: everybody has exactly one friend, never themself
    order = people[:]
    rng.shuffle(order)
    friend = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}
    return World(seed, people, attributes, friend)


def pretraining_corpus(world: World, n_lines: int = 1000, seed: int = 0,
                       qa_fraction: float = 0.0) -> list[str]:
    """Lines for MLM pre-training, deterministic in ``seed``.

    ``1 - qa_fraction`` of the lines are 2-4 facts drawn from the world (often a person, their
    friend and a fact about the friend, so chains appear); ``qa_fraction`` are one-hop reading
    exercises in the fine-tuning layout, ``q : {passage} {question} a : {answer}``. Masking the
    answer word teaches the small model to look the answer up in the passage, the skill both demo
    variants fine-tune on; the two-hop questions of the hard variant never appear here."""
    rng = random.Random(seed * 7919 + world.seed)
    kinds = list(ATTRIBUTES) + ["friend"]
    lines = []
    for _ in range(n_lines):
        person = rng.choice(world.people)
        if rng.random() < qa_fraction:
            q = make_question(world, rng, "easy", person)
            lines.append(f"q : {q['question']} a : {q['choices'][q['label']]}")
            continue
        facts = [world.fact(rng.choice(kinds), person)]
        if rng.random() < 0.3:  # a negated fact: the sentence frame of the hard variant
            k = rng.choice(list(ATTRIBUTES))
            wrong = rng.choice([v for v in ATTRIBUTES[k] if v != world.attributes[k][person]])
            facts.append(FACT_NOT[k].format(e=person, v=wrong))
        if rng.random() < 0.5:
            facts.append(world.fact("friend", person))
            facts.append(world.fact(rng.choice(list(ATTRIBUTES)), world.friend[person]))
        for _ in range(rng.randint(1, 2)):
            facts.append(world.fact(rng.choice(kinds), rng.choice(world.people)))
        rng.shuffle(facts)
        lines.append(" ".join(facts))
    return lines


def _choices(rng: random.Random, kind: str, answer: str, must_include: list[str],
             n_choices: int) -> tuple[list[str], int]:
    values = ATTRIBUTES[kind]
    picked = [answer] + [v for v in dict.fromkeys(must_include) if v != answer]
    others = [v for v in values if v not in picked]
    rng.shuffle(others)
    picked += others[: n_choices - len(picked)]
    rng.shuffle(picked)
    return picked, picked.index(answer)


def _strangers(world: World, rng: random.Random, kind: str, exclude_people: set[str],
               exclude_values: set[str], n: int) -> list[str]:
    """``n`` other people whose ``kind`` values differ from ``exclude_values`` and each other."""
    pool = [p for p in world.people if p not in exclude_people]
    rng.shuffle(pool)
    out, seen = [], set(exclude_values)
    for p in pool:
        v = world.attributes[kind][p]
        if v not in seen:
            out.append(p)
            seen.add(v)
            if len(out) == n:
                break
    return out


def make_question(world: World, rng: random.Random, variant: str, subject: str,
                  n_choices: int = 4) -> dict:
    """One question about ``subject`` (see the module docstring for the two variants).

    The values a passage states are drawn afresh for every question (a passage is a small
    story, not the world's fixed facts), so the answer can only be read, never memorized."""
    kind = rng.choice(list(ATTRIBUTES))
    other_kinds = [k for k in ATTRIBUTES if k != kind]
    values = ATTRIBUTES[kind][:]
    rng.shuffle(values)
    if variant == "easy":
        # the subject's three facts, one per attribute type: find the one the question asks for
        answer = values[0]
        facts = [FACT[kind].format(e=subject, v=answer)]
        shown = [answer]
        for k in other_kinds:
            v = rng.choice(ATTRIBUTES[k])
            facts.append(FACT[k].format(e=subject, v=v))
            shown.append(v)
        question = QUESTION[kind].format(e=subject)
        choices = [answer] + shown[1:] + values[1: 1 + max(0, n_choices - len(shown))]
        choices = choices[:n_choices]
        rng.shuffle(choices)
        label = choices.index(answer)
    elif variant == "hard":
        # as easy, plus a negated fact of the asked type: "in the passage and of the asked
        # type" (the easy skill) is now right only half of the time; the model must also read
        # the negation in front of a value
        answer, negated = values[0], values[1]
        facts = [FACT[kind].format(e=subject, v=answer), FACT_NOT[kind].format(e=subject, v=negated)]
        shown = [answer, negated]
        for k in other_kinds:
            v = rng.choice(ATTRIBUTES[k])
            facts.append(FACT[k].format(e=subject, v=v))
            shown.append(v)
        question = QUESTION[kind].format(e=subject)
        choices = [answer, negated, rng.choice(shown[2:])] + values[2: 2 + max(0, n_choices - 3)]
        choices = choices[:n_choices]
        rng.shuffle(choices)
        label = choices.index(answer)
    else:
        raise ValueError(f"unknown synthetic commonsense variant {variant!r} (known: easy, hard)")
    rng.shuffle(facts)
    passage = " ".join(facts)
    return {"question": f"{passage} {question}", "passage": passage, "choices": choices,
            "label": label, "kind": kind, "subject": subject}


def heuristics(row: dict) -> dict[str, float]:
    """Expected accuracy of simple readers that do not compute the answer, on one demo row:
    ``in_passage`` (a uniformly random choice among those the passage mentions), ``first`` /
    ``last`` (the choice the passage mentions first / last), ``asked_type`` (a random choice of
    the type the question asks for), ``typed_in_passage`` (a random choice of the asked type
    that the passage mentions: the easy variant's computation, the hard variant's trap) and
    ``subject_sentence`` (a random choice stated in a sentence naming the subject)."""
    words = row["passage"].split()
    pos = {c: words.index(c) for c in row["choices"] if c in words}
    answer = row["choices"][row["label"]]
    out = {"in_passage": (1.0 / len(pos)) if answer in pos else 0.0}
    if pos:
        out["first"] = float(min(pos, key=pos.get) == answer)
        out["last"] = float(max(pos, key=pos.get) == answer)
    typed = [c for c in row["choices"] if c in ATTRIBUTES.get(row.get("kind", ""), [])]
    out["asked_type"] = (1.0 / len(typed)) if answer in typed else 0.0
    both = [c for c in typed if c in pos]
    out["typed_in_passage"] = (1.0 / len(both)) if answer in both else 0.0
    said = [s.split() for s in row["passage"].split(" . ")]
    own = [c for s in said if s and s[0] == row["subject"] for c in row["choices"] if c in s]
    out["subject_sentence"] = (own.count(answer) / len(own)) if own else 0.0
    return out


def make_split(world: World, variant: str, n: int, subjects: list[str], seed: int,
               prefix: str, n_choices: int = 4) -> list[dict]:
    """``n`` questions whose subjects are drawn from ``subjects`` (deterministic in ``seed``)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = make_question(world, rng, variant, rng.choice(subjects), n_choices)
        rows.append({"id": f"{prefix}-{i}", **row})
    return rows


def subject_split(world: World, test_fraction: float = 0.25) -> tuple[list[str], list[str]]:
    """People asked about in train and in test (disjoint; fixed by the world seed)."""
    people = world.people[:]
    random.Random(world.seed + 1).shuffle(people)
    n_test = max(1, round(len(people) * test_fraction))
    return people[n_test:], people[:n_test]
