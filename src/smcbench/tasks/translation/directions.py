"""Translation directions: OPUS-100 pair names, pivoting through English, language checks and
temperature sampling (no torch)."""

from __future__ import annotations

from typing import Any, Iterator

from . import LANGUAGES, PIVOT

# --- directions, pairs, sampling ----------------------------------------------------------------
def opus_pair(lang: str) -> str:
    """OPUS-100 / HF config name of the lang<->en pair: the two codes in alphabetical order
    (``cs-en`` but ``en-fr``)."""
    return "-".join(sorted([lang, PIVOT]))


def pivot_directions(languages: list[str]) -> list[tuple[str, str]]:
    """All directions through English for ``languages``: (X, en) and (en, X) for each X."""
    out = []
    for lang in languages:
        out += [(lang, PIVOT), (PIVOT, lang)]
    return out


def check_languages(languages: Any, key: str = "languages", allowed: list[str] | None = None) -> list[str]:
    """Validate a language list from the dataset settings; errors name the bad value."""
    allowed = LANGUAGES if allowed is None else allowed
    if not isinstance(languages, (list, tuple)) or not languages:
        raise ValueError(f"translation settings.{key} must be a non-empty list of codes from "
                         f"{allowed}, got {languages!r}")
    bad = [x for x in languages if x not in allowed]
    if bad:
        raise ValueError(f"unknown language(s) {bad} in settings.{key} (known: {', '.join(allowed)}; "
                         f"English is the pivot and is added automatically)")
    if len(set(languages)) != len(languages):
        raise ValueError(f"duplicate language in settings.{key}: {list(languages)}")
    return list(languages)


def temperature_probs(sizes: dict[Any, int], temperature: float) -> dict[Any, float]:
    """Sampling probability per key: p_k ∝ (n_k / N)^(1/T) (fairseq's temperature sampling;
    T = 1 is proportional, T → ∞ uniform). Keys with n = 0 get p = 0."""
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0 (settings.temperature)")
    total = sum(sizes.values())
    if total <= 0:
        raise ValueError(f"no training examples to sample from (sizes: {sizes})")
    weights = {k: (n / total) ** (1.0 / temperature) if n > 0 else 0.0 for k, n in sizes.items()}
    z = sum(weights.values())
    return {k: w / z for k, w in weights.items()}



def iter_directional_rows(pair_rows: list[tuple[int, str, str]], lang: str, split: str) -> Iterator[dict]:
    """Both directions of aligned (index, english, other) sentence pairs as schema rows (all
    X→en rows, then all en→X); ids are ``<src>-<tgt>-<split>-<index>`` (index = the line/row in
    the raw split)."""
    for src, tgt in ((lang, PIVOT), (PIVOT, lang)):
        for i, en, other in pair_rows:
            text = {PIVOT: en, lang: other}
            yield {"id": f"{src}-{tgt}-{split}-{i}", "src_lang": src, "tgt_lang": tgt,
                   "source": text[src], "target": text[tgt]}


def directional_rows(pair_rows: list[tuple[int, str, str]], lang: str, split: str) -> list[dict]:
    """:func:`iter_directional_rows` as a list."""
    return list(iter_directional_rows(pair_rows, lang, split))
