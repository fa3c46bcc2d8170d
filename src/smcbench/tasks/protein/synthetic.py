"""The protein demo's synthetic data generator (``source: synthetic``)."""

from __future__ import annotations

import random

# --- the synthetic demo --------------------------------------------------------------------
# Thermostable proteins are enriched in charged (E, K, R) and large hydrophobic (I, V, Y, L)
# residues and depleted in polar uncharged ones (Q, N, S, T); the demo's hidden rule is a
# caricature of that, so "composition → class" is learnable by mean-pooled residue features.
_ENRICHED = "EKRIVYL"
_DEPLETED = "QNSTHM"
_NEUTRAL = "ADGPFWC"


def synthetic_rows(n: int, num_classes: int, seed: int, min_len: int, max_len: int,
                   label_noise: float = 0.0, prefix: str = "syn") -> list[dict]:
    """``n`` synthetic proteins whose class follows a hidden composition rule.

    Each protein draws a latent "thermostability" t ~ U(0, 1); a residue comes from the enriched
    set with probability 0.10 + 0.45 t, from the depleted set with 0.40 - 0.30 t, else from a
    neutral set. The class is the bin of t among ``num_classes`` equal-width bins. Short
    sequences make composition a noisy readout of t, so more classes are harder (5-class accuracy
    stays well below 2-class). ``label_noise`` flips that fraction of labels uniformly.
    """
    if num_classes < 2:
        raise ValueError(f"settings.num_classes must be >= 2, got {num_classes}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= settings.min_length <= settings.max_length, got {min_len}, {max_len}")
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t = rng.random()
        p_enriched = 0.10 + 0.45 * t
        p_depleted = 0.40 - 0.30 * t
        length = rng.randint(min_len, max_len)
        chars = []
        for _ in range(length):
            u = rng.random()
            pool = _ENRICHED if u < p_enriched else _DEPLETED if u < p_enriched + p_depleted else _NEUTRAL
            chars.append(pool[rng.randrange(len(pool))])
        label = min(int(t * num_classes), num_classes - 1)
        if label_noise and rng.random() < label_noise:
            label = rng.randrange(num_classes)
        rows.append({"id": f"{prefix}{i}", "sequence": "M" + "".join(chars), "label": label})
    return rows
