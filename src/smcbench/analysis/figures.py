"""Figures (matplotlib Agg + seaborn theme). Each function returns the Figure; :func:`save` writes
PNG and PDF. Panels are laid out on a grid, one per (dataset, model[, split]) or per level.

Readability rules every figure follows (they are what a reader of the paper expects):

* axis labels carry units (``accuracy (%)``, ``realized sparsity (%)``, ``BLEU``); sparsities and
  accuracies are in percent everywhere;
* the y range comes from the data and the dense band, not from the trivial baseline (a baseline
  outside the range is written as text in the panel);
* methods at the same level are dodged a little along x so error bars do not hide each other;
* no PNG is taller than :data:`MAX_PX` pixels (:func:`save` lowers the resolution when needed):
  multi-dataset figures are split per family by the callers.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

from .data import DENSE
from .style import (BASELINE_COLOR, DENSE_COLOR, from_axis, method_styles, metric_label, metric_unit,
                    set_sparsity_axis, short_layer_names, to_axis)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LINESTYLES = ["-", "--", ":", "-."]
#: The tallest PNG written, in pixels (a report page at fit-to-width stays readable).
MAX_PX = 3000
#: PNG resolution.
DPI = 150
#: Total width, in sparsity-level units, over which the methods of one panel are dodged.
DODGE_WIDTH = 0.45


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def panel_grid(n: int, ncols: int = 3, w: float = 4.2, h: float = 3.2, sharey: bool = False):
    """(fig, flat list of n axes); unused cells are hidden. Row height shrinks (down to 60 %) when
    the grid would be taller than :data:`MAX_PX` at :data:`DPI`."""
    plt = _plt()
    n = max(n, 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    max_h = (MAX_PX * 0.9) / DPI
    if nrows * h > max_h:
        h = max(0.6 * h, max_h / nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, sharey=sharey)
    flat = [a for row in axes for a in row]
    for a in flat[n:]:
        a.set_visible(False)
    return fig, flat[:n]


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG file (from its header)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


def save(fig, png, pdf=None) -> None:
    """Write ``fig`` to PNG (:data:`DPI`, lowered so the PNG is at most :data:`MAX_PX` tall) and
    PDF, then close it."""
    import matplotlib.pyplot as plt

    bbox = tight_bbox(fig)
    # the PNG's height in pixels at DPI is known from the bbox: lower the resolution before
    # drawing instead of drawing it twice
    height = int(bbox.height * DPI)
    dpi = DPI if height <= MAX_PX else math.floor(DPI * (MAX_PX - 10) / height)
    fig.savefig(png, dpi=dpi, bbox_inches=bbox)
    if pdf:
        fig.savefig(pdf, bbox_inches=bbox)
    plt.close(fig)


def tight_bbox(fig):
    """The figure's tight bounding box (inches, padded by ``savefig.pad_inches``), what
    ``savefig(bbox_inches="tight")`` computes, measured once at :data:`DPI` so that the PNG and the
    PDF share it (each "tight" save would lay the figure out again)."""
    import matplotlib as mpl

    old = fig.dpi
    fig.dpi = DPI
    try:
        bbox = fig.get_tightbbox()
    finally:
        fig.dpi = old
    # The layout pass above placed every Axes title (above any top tick labels or offset text);
    # keep those places instead of measuring every tick label again in each of the two saves.
    for ax in fig.axes:
        ax._autotitlepos = False
    return bbox.padded(mpl.rcParams["savefig.pad_inches"])


def placeholder(message: str):
    """A figure that only says ``message`` (used when the data for a figure do not exist)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(message, 80)), ha="center", va="center", fontsize=11)
    return fig


def _legend(fig, handles: dict, ncol: int = 6) -> None:
    if handles:
        rows = math.ceil(len(handles) / ncol)
        fig.tight_layout(rect=(0, 0.02 + 0.045 * rows * 6 / max(fig.get_size_inches()[1], 1), 1, 1))
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center",
                   ncol=min(len(handles), ncol), frameon=False, bbox_to_anchor=(0.5, 0.0))
    else:
        fig.tight_layout()


def panel_title(ds: str, model: str, split: str, several_splits: bool) -> str:
    return f"{ds} · {model}" + (f" · {split}" if several_splits else "")


def dodge_offsets(methods: list[str], width: float = DODGE_WIDTH) -> dict[str, float]:
    """Offset of each method along the level axis (units of one level), centred on 0."""
    n = len(methods)
    if n <= 1:
        return {m: 0.0 for m in methods}
    step = min(width / (n - 1), 0.08)
    return {m: (i - (n - 1) / 2) * step for i, m in enumerate(methods)}


def y_range(values, lows=(), highs=()) -> tuple[float, float]:
    """(lo, hi) covering ``values`` and the ``lows``/``highs`` (error bar ends, dense band) with a
    margin of 5 % of the range (at least 0.5 % of the values' size, e.g. 0.45 points at 90 %)."""
    import numpy as np

    v = np.asarray([x for x in list(values) + list(lows) + list(highs) if x == x], dtype=float)
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    pad = max(0.05 * (hi - lo), 0.005 * max(abs(lo), abs(hi)), 1e-3)
    return lo - pad, hi + pad


def _baseline(ax, value: float, lo: float, hi: float, handles: dict, label: str = "trivial baseline") -> None:
    """The trivial baseline as a dashed line when inside [lo, hi], else as text at the edge."""
    if lo <= value <= hi:
        h = ax.axhline(value, color=BASELINE_COLOR, ls="--", lw=1)
        handles.setdefault(label, h)
    else:
        where = "below" if value < lo else "above"
        ax.text(0.01, 0.02 if where == "below" else 0.97, f"{label}: {value:.1f} ({where} the axis)",
                transform=ax.transAxes, fontsize=7, color="0.35", va="bottom" if where == "below" else "top")


def plot_curves(points: "pd.DataFrame", variant: str | None = None, title: str | None = None,
                dense_points: "pd.DataFrame | None" = None, labels: dict | None = None):
    """Metric vs sparsity: one panel per (dataset, model, split); one line per method (and per
    value of column ``variant`` if given, with its own line style); error bars = spread; points at
    the realized sparsity (mean over seeds), dodged by method (:func:`dodge_offsets`); dense as a
    band mean ± spread; the trivial baseline dashed (or as text when outside the y range, which
    comes from the data and the dense band). ``dense_points`` gives the dense reference when
    ``points`` lacks it. ``labels`` (method -> legend text) also fixes the drawing/legend order.

    Returns (fig, panels) where panels maps (dataset, model, split) to its Axes.
    """
    import matplotlib.lines as mlines

    sparse = points[points["method"] != DENSE]
    dense = dense_points if dense_points is not None else points[points["method"] == DENSE]
    keys = sorted(set(map(tuple, points[["dataset", "model", "split"]].itertuples(index=False, name=None))))
    splits_per = {}
    for ds, _, sp in keys:
        splits_per.setdefault(ds, set()).add(sp)
    styles = method_styles(sorted(set(points["method"])))
    # variants keep their order of appearance: the first one is drawn solid
    variants = list(dict.fromkeys(sparse[variant])) if variant else [None]
    fig, axes = panel_grid(len(keys))
    handles: dict = {}
    panels = {}
    for ax, (ds, model, split) in zip(axes, keys):
        panels[(ds, model, split)] = ax
        here = sparse[(sparse["dataset"] == ds) & (sparse["model"] == model) & (sparse["split"] == split)]
        d = dense[(dense["dataset"] == ds) & (dense["model"] == model) & (dense["split"] == split)]
        lows, highs = list(here["mean"] - here["spread"].fillna(0)), list(here["mean"] + here["spread"].fillna(0))
        if len(d):
            mu, sd = float(d["mean"].iloc[0]), float(d["spread"].iloc[0])
            ax.axhspan(mu - sd, mu + sd, color=DENSE_COLOR, alpha=0.12, lw=0)
            h = ax.axhline(mu, color=DENSE_COLOR, lw=1.2)
            handles.setdefault("dense (mean ± spread)", h)
            lows.append(mu - sd)
            highs.append(mu + sd)
        lo, hi = y_range(list(here["mean"]), lows, highs)
        ax.set_ylim(lo, hi)
        allp = points[(points["dataset"] == ds) & (points["model"] == model) & (points["split"] == split)]
        base = allp["baseline"].dropna()
        if len(base):
            _baseline(ax, float(base.mean()), lo, hi, handles)
        drawn = [m for m in (list(labels) if labels else styles) if m != DENSE and m in set(here["method"])]
        lanes = [(m, v) for m in drawn for v in variants
                 if len(here[(here["method"] == m) & ((here[variant] == v) if variant else True)])]
        offsets = dodge_offsets([f"{m}|{v}" for m, v in lanes])
        for method, v in lanes:
            vi = variants.index(v)
            line = here[here["method"] == method]
            if variant:
                line = line[line[variant] == v]
            line = line.sort_values("target_sparsity")
            st = styles[method]
            ls = LINESTYLES[vi % len(LINESTYLES)]
            x = from_axis(to_axis(line["realized_mean"].to_numpy()) + offsets[f"{method}|{v}"])
            ax.errorbar(x, line["mean"], yerr=line["spread"], color=st["color"],
                        marker=st["marker"], ms=4, lw=1.2, ls=ls, capsize=2, label=method)
            name = (labels or {}).get(method, method)
            label = name if not variant else f"{name} [{v}]"
            handles.setdefault(label, mlines.Line2D([], [], color=st["color"], marker=st["marker"], ls=ls))
        set_sparsity_axis(ax, list(here["target_sparsity"]))
        metric = allp["metric"].iloc[0] if len(allp) else ""
        ax.set_ylabel(metric_label(metric))
        ax.set_title(panel_title(ds, model, split, len(splits_per[ds]) > 1), fontsize=9)
    if title:
        fig.suptitle(title)
    _legend(fig, handles)
    return fig, panels


def _layer_ticks(ax, names: list[str]) -> None:
    names = short_layer_names(names)
    step = max(1, math.ceil(len(names) / 40))
    ax.set_xticks(range(0, len(names), step))
    ax.set_xticklabels(names[::step], rotation=90, fontsize=6)
    ax.set_xlabel("layer (input → output)")


def plot_layerwise(table: "pd.DataFrame", title: str | None = None):
    """Layer sparsity (%) (input → output order) per method; one panel per (dataset, model,
    level); its own legend. Callers draw one figure per family."""
    import matplotlib.lines as mlines

    keys = sorted(set(map(tuple, table[["dataset", "model", "level"]].itertuples(index=False, name=None))))
    styles = method_styles(sorted(set(table["method"])))
    fig, axes = panel_grid(len(keys), ncols=min(3, max(1, len(keys))), w=6.0, h=3.6)
    handles: dict = {}
    for ax, (ds, model, level) in zip(axes, keys):
        here = table[(table["dataset"] == ds) & (table["model"] == model) & (table["level"] == level)]
        order = here.drop_duplicates("order").sort_values("order")
        pos = {o: i for i, o in enumerate(order["order"])}
        for method in [m for m in styles if m in set(here["method"])]:
            line = here[here["method"] == method].sort_values("order")
            st = styles[method]
            ax.plot([pos[o] for o in line["order"]], 100 * line["sparsity_mean"], color=st["color"],
                    marker=st["marker"], ms=3, lw=1)
            handles.setdefault(method, mlines.Line2D([], [], color=st["color"], marker=st["marker"]))
        _layer_ticks(ax, list(order["name"]))
        target = float(here["target_sparsity"].iloc[0])
        h = ax.axhline(100 * target, color=BASELINE_COLOR, ls="--", lw=0.8)
        handles.setdefault("nominal target", h)
        ax.set_ylim(-2, 102)
        ax.set_ylabel("layer sparsity (%)")
        ax.set_title(f"{ds} · {model} · k={level} (target {100 * target:.3g}%)", fontsize=9)
    if title:
        fig.suptitle(title)
    _legend(fig, handles)
    return fig


#: IoU at or above this is drawn as "identical masks" (the same seeded mask twice).
IDENTICAL_IOU = 0.9999


def identical_pairs(table: "pd.DataFrame") -> list[tuple[str, str]]:
    """Method pairs whose all-layer IoU is 1 (e.g. random_before and random_after: the same seeded
    random mask), per the rows given."""
    allrows = table[table["name"] == "(all layers)"]
    return sorted({(r.method_a, r.method_b) for r in allrows.itertuples() if r.iou >= IDENTICAL_IOU})


def identical_groups(pairs: list[tuple[str, str]], order: list[str] | None = None) -> list[list[str]]:
    """Methods joined into groups by identical-mask pairs (transitively), each group in ``order``."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for m in parent:
        groups.setdefault(find(m), []).append(m)
    rank = {m: i for i, m in enumerate(order or [])}
    out = [sorted(g, key=lambda m: (rank.get(m, len(rank)), m)) for g in groups.values() if len(g) > 1]
    return sorted(out, key=lambda g: (rank.get(g[0], len(rank)), g[0]))


def plot_iou(table: "pd.DataFrame", title: str | None = None):
    """All-layer (micro-averaged) mask IoU between methods as symmetric heatmaps, one panel per
    (dataset, model, level); chance level (IoU of independent random masks of the same densities)
    in the title, a labelled colour bar, and identical masks named under the title."""
    import numpy as np
    import seaborn as sns

    allrows = table[table["name"] == "(all layers)"]
    keys = sorted(set(map(tuple, allrows[["dataset", "model", "level"]].itertuples(index=False, name=None))))
    n_methods = len((set(allrows["method_a"]) | set(allrows["method_b"])) - {DENSE})
    side = max(5.0, 0.42 * n_methods + 1.8)
    fig, axes = panel_grid(len(keys), ncols=min(3, max(1, len(keys))), w=side + 0.6, h=side)
    for ax, (ds, model, level) in zip(axes, keys):
        here = allrows[(allrows["dataset"] == ds) & (allrows["model"] == model) & (allrows["level"] == level)]
        methods = [m for m in method_styles(sorted(set(here["method_a"]) | set(here["method_b"]))) if m != DENSE]
        idx = {m: i for i, m in enumerate(methods)}
        mat = np.full((len(methods), len(methods)), np.nan)
        for r in here.itertuples():
            i, j = idx[r.method_a], idx[r.method_b]
            mat[i, j] = mat[j, i] = r.iou
        np.fill_diagonal(mat, 1.0)
        sns.heatmap(mat, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=len(methods) <= 14, fmt=".2f",
                    annot_kws={"fontsize": 6.5}, xticklabels=methods, yticklabels=methods, square=True,
                    cbar_kws={"label": "IoU of kept weights", "shrink": 0.8})
        ax.tick_params(labelsize=7)
        target = float(here["target_sparsity"].iloc[0])
        lo, hi = float(here["iou_random"].min()), float(here["iou_random"].max())
        chance = f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}–{hi:.2f}"
        lines = [f"{ds} · {model} · k={level} (target {100 * target:.3g}%)",
                 f"chance (independent random masks): {chance}"]
        groups = identical_groups(identical_pairs(here), methods)
        if groups:
            lines.append("identical masks (IoU 1, e.g. the same seeded mask):")
            lines += textwrap.wrap("; ".join(" = ".join(g) for g in groups), 75, break_long_words=False,
                                   break_on_hyphens=False)
        ax.set_title("\n".join(lines), fontsize=8)
    if title:
        fig.suptitle(title)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_size_inches()[1]))
    else:
        fig.tight_layout()
    if len(keys) > 3:  # room for the next row's title lines under the rotated method names
        fig.subplots_adjust(hspace=0.6)
    return fig


def plot_iou_layers(table: "pd.DataFrame", reference: str | None = None, title: str | None = None):
    """Per-layer IoU of every method with a reference method (default ``omp_after`` if present),
    one panel per (dataset, model, level); dotted: IoU of random masks of the same densities."""
    import matplotlib.lines as mlines

    layers = table[table["name"] != "(all layers)"]
    keys = sorted(set(map(tuple, layers[["dataset", "model", "level"]].itertuples(index=False, name=None))))
    fig, axes = panel_grid(len(keys), ncols=min(3, max(1, len(keys))), w=6.0, h=3.6)
    handles: dict = {}
    for ax, (ds, model, level) in zip(axes, keys):
        here = layers[(layers["dataset"] == ds) & (layers["model"] == model) & (layers["level"] == level)]
        methods = sorted(set(here["method_a"]) | set(here["method_b"]))
        ref = reference if reference in methods else ("omp_after" if "omp_after" in methods else methods[0])
        styles = method_styles(methods)
        order = here.drop_duplicates("order").sort_values("order")
        pos = {o: i for i, o in enumerate(order["order"])}
        for m in [m for m in styles if m in methods and m != ref and m != DENSE]:
            line = here[((here["method_a"] == ref) & (here["method_b"] == m)) |
                        ((here["method_b"] == ref) & (here["method_a"] == m))].sort_values("order")
            st = styles[m]
            x = [pos[o] for o in line["order"]]
            ax.plot(x, line["iou"], color=st["color"], marker=st["marker"], ms=3, lw=1)
            ax.plot(x, line["iou_random"], color=st["color"], ls=":", lw=0.8)
            handles.setdefault(m, mlines.Line2D([], [], color=st["color"], marker=st["marker"]))
        _layer_ticks(ax, list(order["name"]))
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"mask IoU with {ref}")
        ax.set_title(f"{ds} · {model} · k={level}", fontsize=9)
    handles.setdefault("chance: random masks of the same densities (dotted)", mlines.Line2D([], [], color="k", ls=":"))
    if title:
        fig.suptitle(title)
    _legend(fig, handles, ncol=5)
    return fig


def plot_drift(table: "pd.DataFrame"):
    """Relative weight drift (%) of the dense fine-tune per layer (input → output), log scale, one
    panel per (dataset, model); the band is mean ± std over seeds/folds. Tensors without a
    pre-trained value (``from_pretrained`` false: fresh heads, poolers, tree decoders) are grey
    crosses: their "drift" is from a random init, not lazy-regime evidence."""
    import matplotlib.lines as mlines
    import numpy as np

    keys = sorted(set(map(tuple, table[["dataset", "model"]].itertuples(index=False, name=None))))
    fig, axes = panel_grid(len(keys), ncols=min(2, max(1, len(keys))), w=6.5, h=3.6)
    handles: dict = {}
    for ax, (ds, model) in zip(axes, keys):
        here = table[(table["dataset"] == ds) & (table["model"] == model)].sort_values("order")
        x = np.arange(len(here))
        pre = here["from_pretrained"].fillna(True).astype(bool).to_numpy() if "from_pretrained" in here else \
            np.ones(len(here), dtype=bool)
        mu, sd = 100 * here["rel_drift_mean"].to_numpy(), 100 * here["rel_drift_std"].to_numpy()
        if pre.any():
            ax.fill_between(x[pre], (mu - sd)[pre].clip(min=1e-9), (mu + sd)[pre], color=DENSE_COLOR, alpha=0.15, lw=0)
            h, = ax.plot(x[pre], mu[pre], color=DENSE_COLOR, marker="o", ms=3, lw=1)
            handles.setdefault("from the pre-trained value (mean ± std)", h)
        if (~pre).any():
            h, = ax.plot(x[~pre], mu[~pre], color=BASELINE_COLOR, marker="x", ms=5, ls="none")
            handles.setdefault("no pre-trained value (from random init; not lazy-regime evidence)",
                               mlines.Line2D([], [], color=BASELINE_COLOR, marker="x", ls="none"))
        _layer_ticks(ax, list(here["name"]))
        if (mu > 0).all():
            from matplotlib.ticker import FuncFormatter

            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
            ax.tick_params(axis="y", which="minor", labelsize=6)
        ax.set_ylabel("‖θ_ft − θ_pre‖ / ‖θ_pre‖ (%)")
        ax.set_title(f"{ds} · {model} · dense fine-tune", fontsize=9)
    _legend(fig, handles, ncol=2)
    return fig


def plot_diff(table: "pd.DataFrame", title: str | None = None, ylabel: str = "difference"):
    """Differences (column ``diff`` ± ``diff_spread``) vs sparsity per (dataset, model, split),
    one line per method, a zero line; the y range from the data, so small effects are readable."""
    import matplotlib.lines as mlines

    keys = sorted(set(map(tuple, table[["dataset", "model", "split"]].itertuples(index=False, name=None))))
    splits_per = {}
    for ds, _, sp in keys:
        splits_per.setdefault(ds, set()).add(sp)
    styles = method_styles(sorted(set(table["method"])))
    fig, axes = panel_grid(len(keys), w=5.0)
    handles: dict = {}
    for ax, (ds, model, split) in zip(axes, keys):
        here = table[(table["dataset"] == ds) & (table["model"] == model) & (table["split"] == split)]
        ax.axhline(0.0, color=DENSE_COLOR, lw=1)
        drawn = [m for m in styles if m in set(here["method"])]
        offsets = dodge_offsets(drawn)
        for method in drawn:
            line = here[here["method"] == method].sort_values("target_sparsity")
            st = styles[method]
            x = from_axis(to_axis(line["realized"].to_numpy()) + offsets[method])
            ax.errorbar(x, line["diff"], yerr=line["diff_spread"], color=st["color"], marker=st["marker"],
                        ms=4, lw=1.2, capsize=2)
            handles.setdefault(method, mlines.Line2D([], [], color=st["color"], marker=st["marker"]))
        lo, hi = y_range(list(here["diff"]) + [0.0], list(here["diff"] - here["diff_spread"].fillna(0)),
                         list(here["diff"] + here["diff_spread"].fillna(0)))
        ax.set_ylim(lo, hi)
        set_sparsity_axis(ax, list(here["target_sparsity"]))
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title(ds, model, split, len(splits_per[ds]) > 1), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    _legend(fig, handles)
    return fig


def plot_cost(cost_points: "pd.DataFrame"):
    """Metric vs cumulative job hours to obtain each model (log x), one panel per (dataset, model,
    split), one line per method through its levels; dense as a single black point."""
    import matplotlib.lines as mlines

    keys = sorted(set(map(tuple, cost_points[["dataset", "model", "split"]].itertuples(index=False, name=None))))
    styles = method_styles(sorted(set(cost_points["method"])))
    fig, axes = panel_grid(len(keys))
    handles: dict = {}
    for ax, (ds, model, split) in zip(axes, keys):
        here = cost_points[(cost_points["dataset"] == ds) & (cost_points["model"] == model)
                           & (cost_points["split"] == split)]
        for method in [m for m in styles if m in set(here["method"])]:
            line = here[here["method"] == method].sort_values("level")
            st = styles[method]
            ax.plot(line["cum_hours"], line["mean"], color=st["color"], marker=st["marker"], ms=4, lw=1,
                    ls="none" if method == DENSE else "-")
            handles.setdefault(method, mlines.Line2D([], [], color=st["color"], marker=st["marker"]))
        if (here["cum_hours"] > 0).all() and len(here):
            ax.set_xscale("log")
        ax.set_xlabel("job hours to obtain the model (incl. prerequisites)")
        ax.set_ylabel(metric_label(here["metric"].iloc[0]) if len(here) else "")
        ax.set_title(f"{ds} · {model} · {split}", fontsize=9)
    _legend(fig, handles)
    return fig


# --- matching sparsity: method − dense per family, easy vs hard ----------------------------------

#: Line style of a dataset's curves and tolerance line by difficulty (unset: "").
DIFFICULTY_LINESTYLES = {"easy": "-", "hard": "--", "": ":"}
#: The y axis of the matching figure is linear within ±this many points, logarithmic beyond, so
#: that tolerances of 1–6 points stay readable next to collapses of −90.
MATCHING_LINTHRESH = 10.0
#: Screen height of ±MATCHING_LINTHRESH relative to one decade beyond it.
MATCHING_LINSCALE = 1.5
MATCHING_FOOTNOTE = ("y: method − dense (points); lines at −tolerance: max(matching_tolerance, dense seed spread); "
                     "hollow marker: matching sparsity")
MATCHING_FLAGS = ("legend: matching sparsity as in the terminal table; ≥ every level matches, (gap) a missing "
                  "level stops the walk, ~ matches again higher up, ? too noisy to call")
_MATCHING_YTICKS = [-100, -50, -20, -10, -5, -2, 0, 2, 5, 10, 20, 50, 100]


def matching_figure_points(points: "pd.DataFrame", table: "pd.DataFrame", config: dict) -> "pd.DataFrame":
    """What the matching figure plots: one row per sparse main-grid point of every (dataset,
    model, split, method) of the matching ``table`` that has a dense reference, with ``y`` = mean −
    dense mean (points of the dataset's primary metric), ``spread`` (the method's seed spread at
    that level), ``tolerance``, ``difficulty`` (easy/hard/""), ``matching`` (True at the matching
    level; no point is flagged when the matching sparsity is none) and ``label`` (dataset,
    difficulty, method and the terminal table's cell, flags included)."""
    import pandas as pd

    from .matching import _cell, difficulty

    cols = ["family", "dataset", "model", "split", "metric", "method", "difficulty", "level", "target_sparsity",
            "realized_mean", "mean", "spread", "dense_mean", "tolerance", "y", "matching", "label"]
    main = points[(points["extra"] == "main") & (points["method"] != DENSE)]
    splits_per = table.groupby("dataset")["split"].nunique().to_dict() if len(table) else {}
    frames = []
    for r in table[table["dense_mean"].notna()].itertuples():
        here = main[(main["dataset"] == r.dataset) & (main["model"] == r.model) & (main["split"] == r.split)
                    & (main["metric"] == r.metric) & (main["method"] == r.method)].sort_values("target_sparsity")
        if here.empty:
            continue
        diff = difficulty(r.dataset, config)
        name = r.dataset + (f":{r.split}" if splits_per.get(r.dataset, 1) > 1 else "")
        f = here[["family", "dataset", "model", "split", "metric", "method", "level", "target_sparsity",
                  "realized_mean", "mean", "spread"]].copy()
        f["difficulty"] = diff
        f["dense_mean"] = float(r.dense_mean)
        f["tolerance"] = float(r.tolerance)
        f["y"] = f["mean"] - float(r.dense_mean)
        level = int(r.matching_level) if r.matching_level == r.matching_level and r.matching_level else 0
        f["matching"] = (f["level"].astype(int) == level) & (level > 0)
        f["label"] = f"{name} [{diff or 'unset'}] {r.method}: {_cell(r)}"
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def _matching_ylim(lows, highs, tolerances) -> tuple[float, float]:
    """(lo, hi) covering the error bar ends, 0 and the −tolerances, padded evenly on screen (in
    the symlog axis' units)."""
    import numpy as np

    lt, ls = MATCHING_LINTHRESH, MATCHING_LINSCALE
    v = np.asarray([x for x in list(lows) + list(highs) + [0.0] + [-t for t in tolerances] if x == x], float)

    def fwd(y):  # symlog transform (linear within ±lt), to pad evenly on screen
        return np.sign(y) * (ls * np.minimum(np.abs(y), lt) / lt + np.log10(np.maximum(np.abs(y), lt) / lt))

    def inv(u):
        a = abs(float(u))
        return math.copysign(a / ls * lt if a <= ls else lt * 10 ** (a - ls), u)

    lo, hi = float(fwd(v.min())), float(fwd(v.max()))
    pad = 0.06 * max(hi - lo, 0.5)
    return inv(lo - pad), inv(max(hi + pad, 0.25))


def plot_matching(frame: "pd.DataFrame", families: list[str] | None = None):
    """Method − dense vs sparsity, one panel per family (in ``families`` order, others after),
    from :func:`matching_figure_points`. Colour/marker per method (:func:`method_styles`), line
    style per difficulty (:data:`DIFFICULTY_LINESTYLES`), error bars = the method's seed spread,
    the matching level as a large hollow marker; each dataset's −tolerance as a thin grey line in
    its style, 0 (= dense) black. The y axis is symlog (linear within ±:data:`MATCHING_LINTHRESH`).
    Each panel has its own legend to its right; the footnote says what the lines mean."""
    import matplotlib.lines as mlines
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

    plt = _plt()
    present = list(dict.fromkeys(frame["family"]))
    order = [f for f in (families or []) if f in present] + sorted(f for f in present if f not in (families or []))
    styles = method_styles(sorted(set(frame["method"])))
    # each panel is as tall as its legend needs (one line per curve and per tolerance + 2 keys)
    n_entries = [frame.loc[frame["family"] == fam, "label"].nunique()
                 + len(set(zip(*[frame.loc[frame["family"] == fam, c] for c in ("dataset", "split")]))) + 2
                 for fam in order]
    heights = [max(3.0, 0.17 * n + 0.9) for n in n_entries]
    fig, axes = plt.subplots(len(order), 2, figsize=(10.5, sum(heights) + 0.5), squeeze=False,
                             gridspec_kw={"width_ratios": [6.2, 4.3], "height_ratios": heights})
    for (ax, lax), fam in zip(axes, order):
        here = frame[frame["family"] == fam]
        handles: dict = {}
        handles["dense (0)"] = ax.axhline(0.0, color=DENSE_COLOR, lw=1.1)
        tols = here.drop_duplicates(["dataset", "split"])
        for t in tols.itertuples():
            ls = DIFFICULTY_LINESTYLES.get(t.difficulty, ":")
            name = t.dataset + (f":{t.split}" if (tols["dataset"] == t.dataset).sum() > 1 else "")
            handles[f"−tolerance {name}: −{t.tolerance:.2f}"] = ax.axhline(-t.tolerance, color="0.6", lw=0.8, ls=ls)
        labels = list(dict.fromkeys(here.sort_values(["dataset", "split"], kind="stable")["label"]))
        offsets = dodge_offsets(labels)
        for label in labels:
            line = here[here["label"] == label].sort_values("target_sparsity")
            st = styles[line["method"].iloc[0]]
            ls = DIFFICULTY_LINESTYLES.get(line["difficulty"].iloc[0], ":")
            x = from_axis(to_axis(line["realized_mean"].to_numpy()) + offsets[label])
            ax.errorbar(x, line["y"], yerr=line["spread"].fillna(0), color=st["color"], marker=st["marker"],
                        ms=4, lw=1.2, ls=ls, capsize=2)
            m = line["matching"].to_numpy(bool)
            if m.any():
                ax.plot(x[m], line["y"].to_numpy()[m], ls="none", marker=st["marker"], ms=11, mfc="none",
                        mec=st["color"], mew=1.4)
            handles[label] = mlines.Line2D([], [], color=st["color"], marker=st["marker"], ls=ls)
        handles["matching sparsity"] = mlines.Line2D([], [], color="0.3", marker="o", ms=9, mfc="none", ls="none")
        ax.set_yscale("symlog", linthresh=MATCHING_LINTHRESH, linscale=MATCHING_LINSCALE)
        err = here["spread"].fillna(0)
        lo, hi = _matching_ylim(here["y"] - err, here["y"] + err, tols["tolerance"])
        ax.set_ylim(lo, hi)
        if -MATCHING_LINTHRESH <= lo and hi <= MATCHING_LINTHRESH:  # all linear: integer ticks
            ax.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10], integer=True))
        else:
            ax.yaxis.set_major_locator(FixedLocator([t for t in _MATCHING_YTICKS if lo <= t <= hi]))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:+g}" if v else "0")
        ax.tick_params(axis="y", labelsize=7)
        set_sparsity_axis(ax, list(here["target_sparsity"]))
        ax.set_ylabel("method − dense (points)")
        ax.set_title(f"{fam}: " + ", ".join(dict.fromkeys(here["dataset"])), fontsize=9)
        lax.axis("off")
        lax.legend(list(handles.values()), list(handles.keys()), loc="upper left", fontsize=7, frameon=False,
                   borderaxespad=0.0, handlelength=2.6)
    foot = 0.5 / (sum(heights) + 0.5)
    fig.tight_layout(rect=(0, foot, 1, 1))
    fig.text(0.01, foot * 0.55, MATCHING_FOOTNOTE, fontsize=7.5, va="center")
    fig.text(0.01, foot * 0.2, MATCHING_FLAGS, fontsize=7, color="0.3", va="center")
    return fig


__all__ = ["plot_curves", "plot_layerwise", "plot_iou", "plot_iou_layers", "plot_drift", "plot_diff",
           "plot_cost", "plot_matching", "matching_figure_points", "placeholder", "save", "png_size", "metric_unit"]
