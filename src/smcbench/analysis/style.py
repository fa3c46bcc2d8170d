"""Fixed visual identity per method, the sparsity axis, and short layer names.

Colours and markers depend only on a method's position in a canonical order (the registry's
order, then ``obert``, then any other method sorted by name), so a method looks the same in every
figure of every suite.
"""

from __future__ import annotations

import math
import re

MARKERS = ["o", "s", "^", "v", "D", "P", "X", "<", ">", "h", "*", "p", "8", "d"]
DENSE_COLOR = "#222222"
BASELINE_COLOR = "#888888"


def canonical_methods(extra: list[str] | None = None) -> list[str]:
    """Registry methods (without dense), ``obert``, then the other names in ``extra`` sorted."""
    from smcbench.sparsity.registry import known_methods

    base = [m for m in known_methods() if m != "dense"] + ["obert"]
    rest = sorted(set(extra or []) - set(base) - {"dense"})
    return base + rest


def method_styles(methods: list[str]) -> dict[str, dict]:
    """``method -> {color, marker}`` for every method in ``methods`` (dense: near-black, 'o')."""
    import seaborn as sns

    order = canonical_methods(methods)
    palette = sns.color_palette("tab20", 20)
    # tab20 pairs a dark and a light shade; take the dark ones first so neighbours differ.
    colors = palette[0::2] + palette[1::2]
    styles = {"dense": {"color": DENSE_COLOR, "marker": "o"}}
    for i, m in enumerate(order):
        styles[m] = {"color": colors[i % len(colors)], "marker": MARKERS[i % len(MARKERS)]}
    wanted = set(methods)
    return {m: styles[m] for m in ["dense"] + order if m in wanted or m == "dense"}


# --- the sparsity axis ---------------------------------------------------------------------------

def to_axis(s):
    """Sparsity -> axis position k = ln(1 − s)/ln(0.8): the paper's levels 1 − 0.8^k land at
    k = 1, 2, … equally spaced, while realized sparsities keep their exact place."""
    import numpy as np

    s = np.clip(np.asarray(s, dtype=float), -10.0, 1 - 1e-9)
    return np.log1p(-s) / math.log(0.8)


def from_axis(k):
    """Inverse of :func:`to_axis`."""
    import numpy as np

    return 1.0 - 0.8 ** np.asarray(k, dtype=float)


def set_sparsity_axis(ax, targets: list[float]) -> None:
    """Function scale of :func:`to_axis`, ticks at the nominal ``targets`` (numbers in percent;
    the points themselves sit at their realized sparsity)."""
    targets = sorted(t for t in set(round(float(t), 6) for t in targets) if 0 < t < 1)
    if not targets:  # nothing sparse in this panel: show the paper's ten levels
        ax.text(0.5, 0.5, "no sparse results", transform=ax.transAxes, ha="center", color="0.4")
        targets = [round(1 - 0.8 ** k, 6) for k in range(1, 11)]
    ax.set_xscale("function", functions=(to_axis, from_axis))
    if targets:
        lo, hi = float(to_axis(min(targets))), float(to_axis(max(targets)))
        ax.set_xlim(float(from_axis(lo - 0.4)), float(from_axis(hi + 0.4)))
        ax.set_xticks(targets)
        ax.set_xticklabels([f"{100 * t:.3g}" for t in targets], rotation=45, fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("realized sparsity (%)")


# --- metric names and units ----------------------------------------------------------------------

_METRIC_LABELS = {"accuracy": "accuracy (%)", "value_accuracy": "value accuracy (%)", "bleu": "BLEU",
                  "neg_loss": "−loss", "spearman": "Spearman ρ"}


def metric_label(metric: str) -> str:
    """An axis label with its unit: ``accuracy`` → "accuracy (%)", ``bleu`` → "BLEU"; other
    ``…accuracy`` metrics get "(%)" too (tasks report 100·correct/n)."""
    if metric in _METRIC_LABELS:
        return _METRIC_LABELS[metric]
    label = metric.replace("_", " ")
    return label + " (%)" if metric.endswith("accuracy") else label


def metric_unit(metric: str) -> str:
    """"points" for percent metrics and BLEU (differences are in points), else ""."""
    return "points" if metric.endswith("accuracy") or metric == "bleu" else ""


# --- layer names ---------------------------------------------------------------------------------

_ABBREV = [
    (r"\.weight$", ""), (r"^(model|module|roberta|esm|encoder_model)\.", ""),
    (r"(encoder|decoder)\.layers?\.(\d+)\.", r"\1\2."), (r"\blayers?\.(\d+)\.", r"L\1."),
    (r"attention\.self\.query", "q"), (r"attention\.self\.key", "k"), (r"attention\.self\.value", "v"),
    (r"attention\.output\.dense", "o"), (r"self_attn\.(q|k|v)_proj", r"\1"), (r"self_attn\.out_proj", "o"),
    (r"encoder_attn\.(q|k|v)_proj", r"x\1"), (r"encoder_attn\.out_proj", "xo"),
    (r"intermediate\.dense", "ffn1"), (r"output\.dense", "ffn2"), (r"\bfc1\b", "ffn1"), (r"\bfc2\b", "ffn2"),
    (r"embeddings\.word_embeddings", "emb.tok"), (r"embeddings\.position_embeddings", "emb.pos"),
    (r"embeddings\.token_type_embeddings", "emb.type"), (r"embed_tokens", "emb.tok"),
    (r"embed_positions", "emb.pos"), (r"classifier", "head"), (r"classification_heads?", "head"),
    (r"^encoder\.", "enc."), (r"^decoder\.", "dec."),
]


def short_layer_name(name: str) -> str:
    """A readable short name for a parameter, e.g. ``roberta.encoder.layer.3.attention.self.query
    .weight`` -> ``enc3.q``; unknown parts are kept as they are."""
    s = name
    for pat, rep in _ABBREV:
        s = re.sub(pat, rep, s)
    return s.strip(".") or name


def short_layer_names(names: list[str]) -> list[str]:
    """:func:`short_layer_name` of each name, made unique by falling back to the full name."""
    shorts = [short_layer_name(n) for n in names]
    seen: dict[str, int] = {}
    for s in shorts:
        seen[s] = seen.get(s, 0) + 1
    return [s if seen[s] == 1 else n for s, n in zip(shorts, names)]
