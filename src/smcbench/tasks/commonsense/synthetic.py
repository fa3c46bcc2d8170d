"""A tiny synthetic "world knowledge" benchmark for the offline demo of the commonsense family.

A *world* is a set of invented people, each with a favourite colour, a home city and a job, and a
``friend_of`` relation. Everything is drawn from ``world_seed`` alone, so the dataset rule and the
pre-training rule regenerate exactly the same world independently (they must use the same seed).

The world yields

* a **pre-training corpus**: the facts, written as plain sentences and grouped a few per line
  (the short MLM pre-training of the demo model memorizes words and the sentence frames);
* **multiple-choice questions** in the family's row schema (``id``, ``question``, ``choices``,
  ``label``; plus ``passage``, ``kind``, ``subject``):

  - ``easy``: a short passage states the asked fact (plus unrelated facts of *other* attribute
    types); the answer is the only choice that occurs in the passage (one reading step).
  - ``hard``: a two-hop question ("what colour does the friend of X like ?"). The passage holds
    the chain (friend of X is Y; Y likes C) and a trap: X's own value of the same attribute, so
    "pick the choice that occurs in the passage" is right only about half of the time (always
    when X and Y share the value). The model must tell whose value is whose: chain two facts.

Questions about the same subject never straddle train and test: test subjects are a held-out
slice of the people, so test accuracy measures reading, not memorized question-answer pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: version of the generator; bump when the output for a given seed changes (recorded in meta.json)
GENERATOR_VERSION = 1

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
        for text in list(FACT.values()) + list(QUESTION.values()) + list(QUESTION_HOP2.values()):
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


def make_question(world: World, rng: random.Random, variant: str, subject: str,
                  n_choices: int = 4) -> dict:
    """One question about ``subject`` (see the module docstring for the two variants)."""
    kind = rng.choice(list(ATTRIBUTES))
    other_kinds = [k for k in ATTRIBUTES if k != kind]
    if variant == "easy":
        stranger = rng.choice([p for p in world.people if p != subject])
        answer = world.attributes[kind][subject]
        facts = [world.fact(kind, subject), world.fact(rng.choice(other_kinds), stranger)]
        question = QUESTION[kind].format(e=subject)
        choices, label = _choices(rng, kind, answer, [], n_choices)
    elif variant == "hard":
        friend = world.friend[subject]
        answer = world.attributes[kind][friend]
        trap = world.attributes[kind][subject]
        facts = [world.fact("friend", subject), world.fact(kind, friend)]
        if trap != answer:  # the subject's own value: right person, wrong hop
            facts.append(world.fact(kind, subject))
        question = QUESTION_HOP2[kind].format(e=subject)
        choices, label = _choices(rng, kind, answer, [trap], n_choices)
    else:
        raise ValueError(f"unknown synthetic commonsense variant {variant!r} (known: easy, hard)")
    rng.shuffle(facts)
    passage = " ".join(facts)
    return {"question": f"{passage} {question}", "passage": passage, "choices": choices,
            "label": label, "kind": kind, "subject": subject}


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
