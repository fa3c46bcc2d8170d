"""Figures (matplotlib Agg + seaborn theme). Each function returns the Figure; :func:`save` writes
PNG and PDF. Panels are laid out on a grid, one per (dataset, model[, split]) or per level."""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

from .data import DENSE
from .style import BASELINE_COLOR, DENSE_COLOR, method_styles, set_sparsity_axis, short_layer_names

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LINESTYLES = ["-", "--", ":", "-."]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def panel_grid(n: int, ncols: int = 3, w: float = 4.2, h: float = 3.2, sharey: bool = False):
    """(fig, flat list of n axes); unused cells are hidden."""
    plt = _plt()
    n = max(n, 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, sharey=sharey)
    flat = [a for row in axes for a in row]
    for a in flat[n:]:
        a.set_visible(False)
    return fig, flat[:n]


def save(fig, png, pdf=None) -> None:
    """Write ``fig`` to PNG (150 dpi) and PDF, then close it."""
    import matplotlib.pyplot as plt

    fig.savefig(png, dpi=150, bbox_inches="tight")
    if pdf:
        fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)


def placeholder(message: str):
    """A figure that only says ``message`` (used when the data for a figure do not exist)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(message, 80)), ha="center", va="center", fontsize=11)
    return fig


def _legend(fig, handles: dict) -> None:
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center",
                   ncol=min(len(handles), 6), frameon=False, bbox_to_anchor=(0.5, -0.02))
        fig.tight_layout(rect=(0, 0.06 + 0.03 * math.ceil(len(handles) / 6), 1, 1))
    else:
        fig.tight_layout()


def panel_title(ds: str, model: str, split: str, several_splits: bool) -> str:
    return f"{ds} · {model}" + (f" · {split}" if several_splits else "")


def plot_curves(points: "pd.DataFrame", variant: str | None = None, title: str | None = None,
                dense_points: "pd.DataFrame | None" = None):
    """Metric vs sparsity: one panel per (dataset, model, split); one line per method (and per
    value of column ``variant`` if given, with its own line style); error bars = spread; points at
    the realized sparsity (mean over seeds); dense as a band mean ± spread; the trivial baseline
    dashed. ``dense_points`` gives the dense reference when ``points`` lacks it.

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
        if len(d):
            mu, sd = float(d["mean"].iloc[0]), float(d["spread"].iloc[0])
            ax.axhspan(mu - sd, mu + sd, color=DENSE_COLOR, alpha=0.12, lw=0)
            h = ax.axhline(mu, color=DENSE_COLOR, lw=1.2)
            handles.setdefault("dense (mean ± spread)", h)
        allp = points[(points["dataset"] == ds) & (points["model"] == model) & (points["split"] == split)]
        base = allp["baseline"].dropna()
        if len(base):
            h = ax.axhline(float(base.mean()), color=BASELINE_COLOR, ls="--", lw=1)
            handles.setdefault("trivial baseline", h)
        for method in [m for m in styles if m != DENSE and m in set(here["method"])]:
            for vi, v in enumerate(variants):
                line = here[here["method"] == method]
                if variant:
                    line = line[line[variant] == v]
                if line.empty:
                    continue
                line = line.sort_values("target_sparsity")
                st = styles[method]
                ls = LINESTYLES[vi % len(LINESTYLES)]
                ax.errorbar(line["realized_mean"], line["mean"], yerr=line["spread"], color=st["color"],
                            marker=st["marker"], ms=4, lw=1.2, ls=ls, capsize=2, label=method)
                label = method if not variant else f"{method} [{v}]"
                handles.setdefault(label, mlines.Line2D([], [], color=st["color"], marker=st["marker"], ls=ls))
        set_sparsity_axis(ax, list(here["target_sparsity"]))
        metric = allp["metric"].iloc[0] if len(allp) else ""
        ax.set_ylabel(metric)
        ax.set_title(panel_title(ds, model, split, len(splits_per[ds]) > 1), fontsize=9)
    if title:
        fig.suptitle(title)
    _legend(fig, handles)
    return fig, panels


def plot_layerwise(table: "pd.DataFrame"):
    """Layer sparsity (input → output order) per method; one panel per (dataset, model, level)."""
    import matplotlib.lines as mlines

    keys = sorted(set(map(tuple, table[["dataset", "model", "level"]].itertuples(index=False, name=None))))
    styles = method_styles(sorted(set(table["method"])))
    fig, axes = panel_grid(len(keys), ncols=min(3, max(1, len(keys))), w=6.0, h=3.4)
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
        names = short_layer_names(list(order["name"]))
        step = max(1, math.ceil(len(names) / 40))
        ax.set_xticks(range(0, len(names), step))
        ax.set_xticklabels(names[::step], rotation=90, fontsize=6)
        target = float(here["target_sparsity"].iloc[0])
        ax.axhline(100 * target, color=BASELINE_COLOR, ls="--", lw=0.8)
        ax.set_ylabel("layer sparsity (%)")
        ax.set_title(f"{ds} · {model} · k={level} ({100 * target:.3g}%)", fontsize=9)
    _legend(fig, handles)
    return fig


def plot_iou(table: "pd.DataFrame"):
    """Global (all layers, micro-averaged) mask IoU between methods as heatmaps, one panel per
    (dataset, model, level); the lower triangle holds chance-level IoU of random masks."""
    import numpy as np
    import seaborn as sns

    allrows = table[table["name"] == "(all layers)"]
    keys = sorted(set(map(tuple, allrows[["dataset", "model", "level"]].itertuples(index=False, name=None))))
    fig, axes = panel_grid(len(keys), ncols=min(3, max(1, len(keys))), w=5.2, h=4.6)
    for ax, (ds, model, level) in zip(axes, keys):
        here = allrows[(allrows["dataset"] == ds) & (allrows["model"] == model) & (allrows["level"] == level)]
        methods = [m for m in method_styles(sorted(set(here["method_a"]) | set(here["method_b"]))) if m != DENSE]
        idx = {m: i for i, m in enumerate(methods)}
        mat = np.full((len(methods), len(methods)), np.nan)
        for r in here.itertuples():
            i, j = sorted((idx[r.method_a], idx[r.method_b]))
            mat[i, j] = r.iou
            mat[j, i] = r.iou_random
        np.fill_diagonal(mat, 1.0)
        sns.heatmap(mat, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=len(methods) <= 12, fmt=".2f",
                    annot_kws={"fontsize": 6}, xticklabels=methods, yticklabels=methods, cbar=True, square=True)
        ax.tick_params(labelsize=7)
        target = float(here["target_sparsity"].iloc[0])
        ax.set_title(f"{ds} · {model} · k={level} ({100 * target:.3g}%)\nupper: IoU of kept weights; "
                     f"lower: random-mask IoU", fontsize=8)
    fig.tight_layout()
    return fig


def plot_iou_layers(table: "pd.DataFrame", reference: str | None = None):
    """Per-layer IoU of every method with a reference method (default ``omp_after`` if present),
    one panel per (dataset, model, level); dotted: IoU of random masks of the same densities."""
    import matplotlib.lines as mlines

    layers = table[table["name"] != "(all layers)"]
    keys = sorted(set(map(tuple, layers[["dataset", "model", "level"]].itertuples(index=False, name=None))))
    fig, axes = panel_grid(len(keys), ncols=min(3, max(1, len(keys))), w=6.0, h=3.4)
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
        names = short_layer_names(list(order["name"]))
        step = max(1, math.ceil(len(names) / 40))
        ax.set_xticks(range(0, len(names), step))
        ax.set_xticklabels(names[::step], rotation=90, fontsize=6)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"mask IoU with {ref}")
        ax.set_title(f"{ds} · {model} · k={level}", fontsize=9)
    handles.setdefault("random-mask IoU (dotted)", mlines.Line2D([], [], color="k", ls=":"))
    _legend(fig, handles)
    return fig


def plot_drift(table: "pd.DataFrame"):
    """Relative weight drift of the dense fine-tune per layer (input → output), log scale, one
    panel per (dataset, model); the band is mean ± std over seeds/folds."""
    keys = sorted(set(map(tuple, table[["dataset", "model"]].itertuples(index=False, name=None))))
    fig, axes = panel_grid(len(keys), ncols=min(2, max(1, len(keys))), w=6.5, h=3.4)
    for ax, (ds, model) in zip(axes, keys):
        here = table[(table["dataset"] == ds) & (table["model"] == model)].sort_values("order")
        x = list(range(len(here)))
        mu, sd = here["rel_drift_mean"].to_numpy(), here["rel_drift_std"].to_numpy()
        ax.fill_between(x, (mu - sd).clip(min=1e-12), mu + sd, color=DENSE_COLOR, alpha=0.15, lw=0)
        ax.plot(x, mu, color=DENSE_COLOR, marker="o", ms=3, lw=1)
        names = short_layer_names(list(here["name"]))
        step = max(1, math.ceil(len(names) / 40))
        ax.set_xticks(x[::step])
        ax.set_xticklabels(names[::step], rotation=90, fontsize=6)
        if (mu > 0).all():
            ax.set_yscale("log")
        ax.set_ylabel("‖θ_ft − θ_pre‖ / ‖θ_pre‖")
        ax.set_title(f"{ds} · {model} · dense fine-tune", fontsize=9)
    fig.tight_layout()
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
        ax.set_ylabel(here["metric"].iloc[0] if len(here) else "")
        ax.set_title(f"{ds} · {model} · {split}", fontsize=9)
    _legend(fig, handles)
    return fig
