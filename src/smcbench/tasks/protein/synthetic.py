"""The protein demo's synthetic data generator (``source: synthetic``).

The label is an *order* relation between residues, not a composition: every protein carries each
of the first ``num_classes`` marker residues of :data:`MARKERS` exactly once, in a background drawn
from the other standard residues, and the class is the marker that comes first (N-terminal-most).
Every class has the same composition, so mean-pooled token embeddings alone cannot tell the
classes apart; the attention and feed-forward weights have to relate the markers' positions.

* 2 classes (``demo_protein2``, easy): does the K come before the E?
* 5 classes (``demo_protein5``, hard): which of K, E, D, R, H comes first? (an argmin over five
  positions; the tiny ESM needs about twice the steps of the easy task to learn it).

Classes are drawn uniformly, so the majority class is at chance. Where a marker sits on its own
says something (a K near the N-terminus is likely first): :func:`position_heuristic` is the
strongest such single-marker rule, and the task reports it as the baseline.
"""

from __future__ import annotations

import random
from typing import Iterable

MARKERS = "KEDRH"
_BACKGROUND = "ACFGILMNPQSTVWY"  # the standard residues but the markers


def synthetic_rows(n: int, num_classes: int, seed: int, min_len: int, max_len: int,
                   label_noise: float = 0.0, prefix: str = "syn") -> list[dict]:
    """``n`` synthetic proteins (an initial M, then ``min_len..max_len`` residues) whose class is
    the index in :data:`MARKERS` of the marker that occurs first. ``label_noise`` flips that
    fraction of labels uniformly (off in the demo)."""
    if not 2 <= num_classes <= len(MARKERS):
        raise ValueError(f"settings.num_classes must be in 2..{len(MARKERS)} for the synthetic proteins, "
                         f"got {num_classes}")
    if not num_classes <= min_len <= max_len:
        raise ValueError(f"need {num_classes} <= settings.min_length <= settings.max_length, got {min_len}, {max_len}")
    rng = random.Random(seed)
    markers = MARKERS[:num_classes]
    rows = []
    for i in range(n):
        label = rng.randrange(num_classes)
        length = rng.randint(min_len, max_len)
        positions = sorted(rng.sample(range(length), num_classes))
        others = [m for m in markers if m != markers[label]]
        rng.shuffle(others)
        chars = [_BACKGROUND[rng.randrange(len(_BACKGROUND))] for _ in range(length)]
        for p, m in zip(positions, [markers[label]] + others):
            chars[p] = m
        if label_noise and rng.random() < label_noise:
            label = rng.randrange(num_classes)
        rows.append({"id": f"{prefix}{i}", "sequence": "M" + "".join(chars), "label": label})
    return rows


def _bin(sequence: str, residue: str, bins: int) -> int:
    i = sequence.find(residue)
    return -1 if i < 0 else min(bins - 1, bins * i // max(1, len(sequence)))


def position_heuristic(train: Iterable[dict], rows: list[dict], bins: int = 4) -> float:
    """Accuracy (%) on ``rows`` of the best single-residue position rule fitted on ``train``: for one
    residue, the majority label of each bin of its first occurrence's relative position (absent =
    its own bin); the residue is the one whose rule fits ``train`` best. This reads composition and
    where one residue sits, never how two residues relate."""
    train = list(train)
    if not train or not rows:
        return 0.0
    best_rule, best_fit = None, -1
    for residue in sorted({c for r in train for c in r["sequence"]}):
        table: dict[int, dict[int, int]] = {}
        for r in train:
            counts = table.setdefault(_bin(r["sequence"], residue, bins), {})
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        rule = {b: max(sorted(c), key=lambda k: c[k]) for b, c in table.items()}
        fit = sum(max(c.values()) for c in table.values())
        if fit > best_fit:
            best_rule, best_fit, best_residue = rule, fit, residue
    overall = max(sorted({r["label"] for r in train}), key=lambda k: sum(r["label"] == k for r in train))
    hits = sum(best_rule.get(_bin(r["sequence"], best_residue, bins), overall) == r["label"] for r in rows)
    return 100.0 * hits / len(rows)
