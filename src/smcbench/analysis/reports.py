"""The analyses behind each CLI subcommand: read inputs once, write fixed-name figures and tables.

Output names are fixed (:data:`OUTPUTS`) so that the Snakemake rules can declare them without
looking at the data; when the data for an output do not exist, a placeholder figure/table that
says so is written instead and a warning is printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..tasks import FAMILIES as _TASK_FAMILIES
from . import AnalysisInputError
from .data import (DENSE, MAIN, aggregate_points, best_on_test_gaps, describe_missing, eval_splits, load_json,
                   load_results, missing_runs, provenance_notes, resolve_primary_metrics, seed_values, warn)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Task families, from the registry (torch-free names); figures with one panel per dataset × level
#: are written once per family so that none is taller than figures.MAX_PX.
FAMILIES = tuple(_TASK_FAMILIES)


def _per_family(stem: str) -> list[str]:
    return [f"figures/{stem}_{fam}.{ext}" for fam in FAMILIES for ext in ("png", "pdf")]


#: subcommand -> output paths relative to the suite folder (results/<suite>/).
OUTPUTS: dict[str, list[str]] = {
    "curves": ["figures/metric_vs_sparsity.png", "figures/metric_vs_sparsity.pdf", "tables/curves.csv"],
    "matching": ["tables/matching_sparsity.md", "tables/matching_sparsity.csv", "tables/missing_runs.csv",
                 "figures/matching_sparsity.png", "figures/matching_sparsity.pdf"],
    "layerwise": _per_family("layerwise_sparsity") + ["tables/layerwise_sparsity.csv"],
    "iou": _per_family("mask_iou") + _per_family("mask_iou_layers") + ["tables/mask_iou.csv"],
    "drift": ["figures/weight_drift.png", "figures/weight_drift.pdf", "tables/weight_drift.csv"],
    "embeddings": ["figures/embeddings_ablation.png", "figures/embeddings_ablation.pdf",
                   "tables/embeddings_ablation.md", "tables/embeddings_ablation.csv"],
    "obert": ["figures/obert_roadmap.png", "figures/obert_roadmap.pdf", "tables/obert_roadmap.csv"],
    "modulewise": ["tables/modulewise.md", "tables/modulewise.csv"],
    "cost": ["figures/cost_vs_metric.png", "figures/cost_vs_metric.pdf", "tables/cost.csv",
             "tables/cost_runs.csv"],
}

EMBEDDINGS_EXTRA = "embeddings_ablation"
MODULEWISE_EXTRA = "modulewise"
OBERT = "obert"


@dataclass
class Inputs:
    """Everything the analyses read, loaded once: the table, primary metrics, resolved config,
    the folder run_dir paths are relative to, and the value column (``value`` = selected on
    validation; ``value_best_on_test`` = the paper's compatibility column)."""

    df: "pd.DataFrame"
    primary: dict
    config: dict
    root: Path = Path(".")
    value_col: str = "value"
    left_out: list = field(default_factory=list)
    layerwise_path: Path | None = None

    @classmethod
    def load(cls, results: str | Path, primary_metrics: str | Path | None = None,
             config: str | Path | None = None, root: str | Path = ".", value_col: str = "value",
             layerwise: str | Path | None = None) -> "Inputs":
        """Read results.csv, primary_metrics.json (default: beside results.csv) and config.json
        (optional; default beside results.csv); layerwise.csv (default: beside results.csv) is read
        when an analysis needs it."""
        results = Path(results)
        df = load_results(results)
        if value_col not in df.columns:
            raise AnalysisInputError(f"value column {value_col!r} not in {results}")
        pm_path = Path(primary_metrics) if primary_metrics else results.parent / "primary_metrics.json"
        pm = load_json(pm_path, "primary metrics (primary_metrics.json)", required=False)
        if not pm:
            warn(f"{pm_path} not found; inferring each dataset's primary metric from results.csv")
        cfg_path = Path(config) if config else results.parent / "config.json"
        cfg = load_json(cfg_path, "resolved config (config.json)", required=False)
        if not cfg:
            warn(f"{cfg_path} not found; the expected grid and tolerance are inferred/defaulted")
        primary = resolve_primary_metrics(df, pm)
        left_out = []
        if value_col != "value":
            left_out = best_on_test_gaps(df, primary)
            if left_out:
                warn(f"{value_col} is empty for dataset(s) {', '.join(left_out)} (their tasks do not report it, "
                     f"e.g. report_best_on_test: false): they are left out of every figure and table drawn "
                     f"from {value_col}; use --value-column value to see them")
        lw_path = Path(layerwise) if layerwise else results.parent / "layerwise.csv"
        return cls(df=df, primary=primary, config=cfg, root=Path(root), value_col=value_col, left_out=left_out,
                   layerwise_path=lw_path)

    @cached_property
    def layers(self) -> "pd.DataFrame":
        """Every run's per-tensor sparsity (the suite's layerwise.csv); empty, with a warning, when
        the file is missing or malformed."""
        from .runfiles import read_layerwise

        table, problem = read_layerwise(self.layerwise_path or "layerwise.csv")
        if problem:
            warn(problem)
        return table

    @cached_property
    def splits(self) -> dict:
        return eval_splits(self.df)

    @cached_property
    def seeds(self) -> "pd.DataFrame":
        return seed_values(self.df, self.primary, self.value_col, self.splits)

    @cached_property
    def points(self) -> "pd.DataFrame":
        return aggregate_points(self.seeds)

    @cached_property
    def missing(self) -> "pd.DataFrame":
        return missing_runs(self.df, self.config, self.primary)

    def main_points(self) -> "pd.DataFrame":
        return self.points[self.points["extra"] == MAIN]

    def layer_levels(self) -> list[int]:
        """``analysis.layerwise_levels`` from config, else every sparse level of the main grid."""
        lv = (self.config.get("analysis") or {}).get("layerwise_levels")
        if lv:
            return [int(k) for k in lv]
        main = self.df[(self.df["extra"] == MAIN) & (self.df["method"] != DENSE)]
        return sorted(set(int(k) for k in main["level"]))


# --- helpers -------------------------------------------------------------------------------------

def _out(out_dir: Path, rel: str) -> Path:
    p = Path(out_dir) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def markdown_table(df: "pd.DataFrame", floatfmt: str = ".2f") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (no extra dependency)."""
    def cell(v):
        if isinstance(v, float):
            return "" if v != v else format(v, floatfmt)
        return str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _note_csv(path: Path, columns: list[str], note: str) -> None:
    import pandas as pd

    pd.DataFrame([{**{c: "" for c in columns}, "note": note}], columns=columns + ["note"]).to_csv(path, index=False)


def _fig_or_placeholder(make, message: str, png: Path, pdf: Path) -> None:
    from .figures import placeholder, save

    fig = make() if make is not None else placeholder(message)
    save(fig, png, pdf)


def _warn_unreadable(what: str, bad: list[str]) -> None:
    if bad:
        shown = "; ".join(bad[:10]) + (f" … and {len(bad) - 10} more" if len(bad) > 10 else "")
        warn(f"{len(bad)} {what} could not be read: {shown}")


# --- subcommands ---------------------------------------------------------------------------------

def run_curves(inp: Inputs, out_dir: Path) -> None:
    """Metric vs sparsity (main grid) and the curve points table."""
    from .figures import plot_curves

    png, pdf, csv = (_out(out_dir, p) for p in OUTPUTS["curves"])
    pts = inp.main_points()
    pts.to_csv(csv, index=False)
    if len(inp.missing):
        warn(f"{len(inp.missing)} expected run(s) have no result (gaps in the curves): {describe_missing(inp.missing)}")
    if pts.empty:
        _fig_or_placeholder(None, "No main-grid results in results.csv: nothing to plot.", png, pdf)
        return
    _fig_or_placeholder(lambda: plot_curves(pts, title=None)[0], "", png, pdf)


def run_matching(inp: Inputs, out_dir: Path, tolerance: float | None = None) -> "pd.DataFrame":
    """The matching-sparsity table (Markdown, CSV), the list of missing runs, and the figure of
    method − dense per family (:func:`smcbench.analysis.figures.plot_matching`)."""
    from .figures import matching_figure_points, plot_matching
    from .matching import matching_markdown, matching_table

    md, csv, miss, png, pdf = (_out(out_dir, p) for p in OUTPUTS["matching"])
    pts = inp.main_points()
    table = matching_table(pts, inp.missing, inp.config, tolerance)
    table.to_csv(csv, index=False)
    cfg = dict(inp.config)
    if tolerance is not None:
        cfg["matching_tolerance"] = tolerance
    notes = provenance_notes(inp.df)
    if inp.value_col != "value":
        notes.insert(0, f"values: {inp.value_col} (the paper's best-epoch-on-test compatibility column)"
                     + (f"; left out, empty there: {', '.join(inp.left_out)}" if inp.left_out else ""))
    md.write_text(matching_markdown(table, cfg, notes))
    inp.missing.to_csv(miss, index=False)
    if len(inp.missing):
        warn(f"{len(inp.missing)} expected run(s) are missing (listed in {miss}): {describe_missing(inp.missing)}")
    frame = matching_figure_points(pts, table, inp.config)
    if frame.empty:
        msg = ("No main-grid results in results.csv: nothing to plot." if pts.empty else
               "No main-grid method has a dense reference (see tables/matching_sparsity.md): nothing to plot.")
        _fig_or_placeholder(None, msg, png, pdf)
    else:
        _fig_or_placeholder(lambda: plot_matching(frame, list(FAMILIES)), "", png, pdf)
    return table


def _family_of(inp: Inputs) -> dict:
    return dict(zip(inp.df["dataset"], inp.df["family"]))


def _by_family(table: "pd.DataFrame", fam_of: dict, out_dir: Path, stem: str, make, what: str) -> None:
    """One figure per family (fixed names ``figures/<stem>_<family>.png/pdf``); a placeholder that
    says so for a family without data."""
    fam = table["dataset"].map(fam_of) if len(table) else table.get("dataset")
    for family in FAMILIES:
        png, pdf = _out(out_dir, f"figures/{stem}_{family}.png"), _out(out_dir, f"figures/{stem}_{family}.pdf")
        sub = table[fam == family] if len(table) else table
        msg = f"No {what} for the {family} family in this suite."
        _fig_or_placeholder((lambda sub=sub, family=family: make(sub, family)) if len(sub) else None, msg, png, pdf)


def run_layerwise(inp: Inputs, out_dir: Path) -> None:
    """Layerwise sparsity at ``analysis.layerwise_levels`` for every method, one figure per family."""
    from .figures import plot_layerwise
    from .runfiles import layerwise_table
    from .style import short_layer_names

    csv = _out(out_dir, "tables/layerwise_sparsity.csv")
    levels = inp.layer_levels()
    table, bad = layerwise_table(inp.df, levels, inp.layers)
    if bad and len(inp.layers):
        _warn_unreadable(f"run(s) without rows in {inp.layerwise_path}", bad)
    if len(table):
        uniq = list(table["name"].unique())
        table = table.assign(short_name=table["name"].map(dict(zip(uniq, short_layer_names(uniq)))))
    table.to_csv(csv, index=False)
    _by_family(table, _family_of(inp), out_dir, "layerwise_sparsity",
               lambda sub, fam: plot_layerwise(sub, title=f"Layerwise sparsity · {fam}"),
               f"per-tensor sparsity (layerwise.csv) of a sparse main-grid run at levels k={levels}")


def run_iou(inp: Inputs, out_dir: Path) -> None:
    """Mask IoU between methods at the layerwise levels (seed-matched), one figure per family."""
    from .figures import identical_pairs, plot_iou, plot_iou_layers
    from .runfiles import iou_table

    csv = _out(out_dir, "tables/mask_iou.csv")
    table, bad = iou_table(inp.df, inp.layer_levels(), inp.root, inp.layers)
    _warn_unreadable("mask.safetensors file(s)", bad)
    if len(table):
        same = set(identical_pairs(table))
        table = table.assign(identical_masks=[(a, b) in same for a, b in zip(table["method_a"], table["method_b"])])
    table.to_csv(csv, index=False)
    fam_of = _family_of(inp)
    what = "two sparse methods with readable mask.safetensors at the same level and seed"
    _by_family(table, fam_of, out_dir, "mask_iou", lambda sub, fam: plot_iou(sub, title=f"Mask IoU · {fam}"), what)
    _by_family(table, fam_of, out_dir, "mask_iou_layers",
               lambda sub, fam: plot_iou_layers(sub, title=f"Per-layer mask IoU · {fam}"), what)


def run_drift(inp: Inputs, out_dir: Path) -> None:
    """Per-layer relative weight drift of the dense fine-tune."""
    from .figures import plot_drift
    from .runfiles import drift_table

    png, pdf, csv = (_out(out_dir, p) for p in OUTPUTS["drift"])
    table, bad = drift_table(inp.df, inp.root)
    _warn_unreadable("drift.csv file(s)", bad)
    table.to_csv(csv, index=False)
    msg = "No drift.csv of a dense main-grid run could be read: no weight-drift figure."
    _fig_or_placeholder((lambda: plot_drift(table)) if len(table) else None, msg, png, pdf)


def _dense_of(inp: Inputs) -> "pd.DataFrame":
    p = inp.main_points()
    return p[p["method"] == DENSE]


def run_embeddings(inp: Inputs, out_dir: Path, extra: str = EMBEDDINGS_EXTRA) -> None:
    """Embeddings pruned (main grid, its scope) vs not (rows of extra ``extra``), same methods:
    the table, and a figure of the difference (ablation − main) in points of the metric."""
    import pandas as pd

    from .figures import plot_diff
    from .style import metric_label, metric_unit

    png, pdf, md, csv = (_out(out_dir, p) for p in OUTPUTS["embeddings"])
    pts = inp.points
    abl = pts[pts["extra"] == extra]
    cols = ["dataset", "model", "split", "metric", "method", "level", "target_sparsity", "scope_main",
            "mean_main", "spread_main", "realized_main", "scope_ablation", "mean_ablation",
            "spread_ablation", "realized_ablation", "diff_ablation_minus_main", "n_seeds_main",
            "n_seeds_ablation"]
    if abl.empty:
        note = f"No results with extra = '{extra}' in results.csv: the embeddings ablation was not run."
        warn(note)
        _note_csv(csv, cols, note)
        md.write_text(f"# Embeddings pruned or not\n\n{note}\n")
        _fig_or_placeholder(None, note, png, pdf)
        return
    keys = ["dataset", "model", "split", "metric", "method", "level"]
    main = pts[pts["extra"] == MAIN]
    j = abl.merge(main, on=keys, how="left", suffixes=("_ablation", "_main"))
    rows = [{"dataset": r["dataset"], "model": r["model"], "split": r["split"], "metric": r["metric"],
             "method": r["method"], "level": r["level"], "target_sparsity": r["target_sparsity_ablation"],
             "scope_main": r["scope_main"], "mean_main": r["mean_main"], "spread_main": r["spread_main"],
             "realized_main": r["realized_mean_main"], "scope_ablation": r["scope_ablation"],
             "mean_ablation": r["mean_ablation"], "spread_ablation": r["spread_ablation"],
             "realized_ablation": r["realized_mean_ablation"],
             "diff_ablation_minus_main": r["mean_ablation"] - r["mean_main"],
             "n_seeds_main": r["n_seeds_main"], "n_seeds_ablation": r["n_seeds_ablation"]}
            for _, r in j.iterrows()]
    table = pd.DataFrame(rows, columns=cols).sort_values(["dataset", "model", "split", "method", "level"])
    table.to_csv(csv, index=False)
    lacking = table[table["mean_main"].isna()]
    if len(lacking):
        warn(f"embeddings ablation: no main-grid result to compare for {len(lacking)} point(s): "
             + ", ".join(f"{r.dataset}/{r.model}/{r.method}/k={r.level}" for r in lacking.itertuples()))
    pct = lambda x: "" if x != x else f"{100 * x:.1f}"  # noqa: E731
    show = pd.DataFrame({
        "dataset": table["dataset"], "split": table["split"], "method": table["method"], "k": table["level"],
        "target (%)": [pct(t) for t in table["target_sparsity"]],
        "embeddings pruned: value": [f"{a:.2f} ± {b:.2f}" for a, b in zip(table["mean_main"], table["spread_main"])],
        "realized (%)": [pct(x) for x in table["realized_main"]],
        "embeddings kept: value": [f"{a:.2f} ± {b:.2f}" for a, b in zip(table["mean_ablation"], table["spread_ablation"])],
        "realized (%) ": [pct(x) for x in table["realized_ablation"]],
        "kept − pruned": [f"{d:+.2f}" for d in table["diff_ablation_minus_main"]]})
    metric = str(table["metric"].iloc[0])
    md.write_text("# Embeddings pruned or not\n\nPrimary metric, mean ± spread over seeds "
                  f"({metric_label(metric)}); *embeddings pruned* = the main grid (scope "
                  f"`{', '.join(sorted(set(table['scope_main'].dropna())))}`), *embeddings kept* = the same "
                  f"method with scope `{', '.join(sorted(set(abl['scope'])))}`. Sparsities in %; realized sparsity "
                  "is over each run's own scope, so at the same nominal level the ablation prunes fewer weights "
                  "in total. The last column is the difference in points.\n\n" + markdown_table(show))
    diff = table.dropna(subset=["diff_ablation_minus_main"]).assign(
        diff=lambda t: t["diff_ablation_minus_main"],
        diff_spread=lambda t: (t["spread_main"].fillna(0) ** 2 + t["spread_ablation"].fillna(0) ** 2) ** 0.5,
        realized=lambda t: t["realized_ablation"])
    if diff.empty:
        _fig_or_placeholder(None, "The embeddings ablation has no main-grid point to compare with.", png, pdf)
        return
    unit = metric_unit(metric) or "metric units"
    _fig_or_placeholder(lambda: plot_diff(diff, title="Embeddings kept − embeddings pruned\n(same method and level)",
                                          ylabel=f"Δ {metric_label(metric).split(' (')[0]} ({unit})"),
                        "", png, pdf)


#: The oBERT roadmap of the paper (Fig. 9): each step adds one ingredient to the previous one.
ROADMAP = (("LTH", "lth"), ("+LRR", "imp_lrr"), ("+KD", "imp_lrr_kd"), ("oBERT", "obert"))


def run_obert(inp: Inputs, out_dir: Path) -> None:
    """oBERT roadmap (paper Fig. 9): LTH → +LRR (``imp_lrr``) → +KD (``imp_lrr_kd``) → oBERT
    (``obert``), drawn from whichever of these methods have rows, all from the run set that holds
    the roadmap (the extra run with ``obert``, e.g. scope ``no_embeddings_heads``; else the one with
    most steps, the main grid on a tie); absent steps are named in each panel and listed in the
    table."""
    import pandas as pd

    from .figures import plot_curves

    png, pdf, csv = (_out(out_dir, p) for p in OUTPUTS["obert"])
    pts = inp.points
    cols = ["dataset", "model", "split", "metric", "step", "method", "extra", "scope", "level", "target_sparsity",
            "realized_mean", "mean", "spread", "n_seeds", "dense_mean", "diff_vs_dense", "note"]
    methods = [m for _, m in ROADMAP]
    rm = pts[pts["method"].isin(methods)]
    # One source per (dataset, model): the run set holding the roadmap (the extra with the most of
    # its steps, `obert` first; the main grid on a tie), so every step shares one scope; a step
    # missing there falls back to the main grid (then to any extra) and is marked as such.
    keep, fallback = [], {}
    for (ds, model), g in rm.groupby(["dataset", "model"], sort=False):
        def rank(extra):
            here = set(g.loc[g["extra"] == extra, "method"])
            return (OBERT in here, len(here), extra == MAIN)
        home = max(g["extra"].unique(), key=rank)
        for method, mg in g.groupby("method", sort=False):
            extras = list(mg["extra"].unique())
            src = home if home in extras else (MAIN if MAIN in extras else sorted(extras)[0])
            keep.append(mg[mg["extra"] == src])
            if src != home:
                fallback.setdefault((ds, model), []).append(f"{method} from {src}")
    rm = pd.concat(keep, ignore_index=True) if keep else rm
    if rm.empty:
        note = ("No results for any step of the oBERT roadmap (lth, imp_lrr, imp_lrr_kd, obert) in "
                "results.csv: no roadmap.")
        warn(note)
        _note_csv(csv, cols, note)
        _fig_or_placeholder(None, note, png, pdf)
        return
    if not (rm["method"] == OBERT).any():
        warn("No oBERT results exist in results.csv (method 'obert' has no rows): the roadmap shows the steps "
             "that ran and names the missing ones.")
    dense = _dense_of(inp)
    rows = []
    for (ds, model, split, metric), g in rm.groupby(["dataset", "model", "split", "metric"], sort=True):
        d = dense[(dense["dataset"] == ds) & (dense["model"] == model) & (dense["split"] == split)]
        dm = float(d["mean"].iloc[0]) if len(d) else float("nan")
        for step, method in ROADMAP:
            mg = g[g["method"] == method].sort_values("level")
            if mg.empty:
                rows.append(dict(dataset=ds, model=model, split=split, metric=metric, step=step, method=method,
                                 note="no results"))
                continue
            for r in mg.itertuples():
                rows.append(dict(dataset=ds, model=model, split=split, metric=metric, step=step, method=method,
                                 extra=r.extra, scope=r.scope, level=r.level, target_sparsity=r.target_sparsity,
                                 realized_mean=r.realized_mean, mean=r.mean, spread=r.spread, n_seeds=r.n_seeds,
                                 dense_mean=dm, diff_vs_dense=r.mean - dm, note=""))
    table = pd.DataFrame(rows, columns=cols)
    table.to_csv(csv, index=False)
    labels = {m: f"{s} ({m})" for s, m in ROADMAP}

    def make():
        fig, panels = plot_curves(rm, title="oBERT roadmap: LTH → +LRR → +KD → oBERT", dense_points=dense,
                                  labels=labels)
        for (ds, model, split), ax in panels.items():
            here = set(rm[(rm["dataset"] == ds) & (rm["model"] == model) & (rm["split"] == split)]["method"])
            absent = [f"{s} ({m})" for s, m in ROADMAP if m not in here]
            notes = (["no results yet: " + ", ".join(absent)] if absent else []) + \
                [f"{x} (other scope)" for x in fallback.get((ds, model), [])]
            scopes = sorted(set(rm[(rm["dataset"] == ds) & (rm["model"] == model)]["scope"]))
            ax.set_title(ax.get_title() + f" · scope {', '.join(scopes)}", fontsize=8)
            if notes:
                ax.text(0.99, 0.97, "\n".join(notes), transform=ax.transAxes,
                        ha="right", va="top", fontsize=6.5, color="0.3",
                        bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
        return fig

    _fig_or_placeholder(make, "", png, pdf)


#: Paper Table 1 order of the module subsets: Q, K, V, O, FFN.
MODULE_ORDER = ("Q", "K", "V", "O", "FFN")


def module_order_key(scope: str) -> tuple:
    """Sort key of a ``modules:A+B`` scope in Table 1 order: single modules Q, K, V, O, FFN first,
    then combinations by size, each by its modules' positions; other scopes last, by name."""
    if not str(scope).startswith("modules:"):
        return (99, (), str(scope))
    parts = str(scope)[len("modules:"):].split("+")
    idx = tuple(MODULE_ORDER.index(p) if p in MODULE_ORDER else 50 for p in parts)
    return (len(parts), tuple(sorted(idx)), str(scope))


def run_modulewise(inp: Inputs, out_dir: Path, extra: str = MODULEWISE_EXTRA) -> None:
    """Module-wise table (paper Table 1): metric at an explicit target per module subset scope."""

    md, csv = (_out(out_dir, p) for p in OUTPUTS["modulewise"])
    pts = inp.points
    mw = pts[pts["extra"] == extra]
    cols = ["dataset", "model", "split", "metric", "method", "scope", "target_sparsity", "realized_mean",
            "mean", "spread", "n_seeds", "dense_mean", "diff_vs_dense"]
    if mw.empty:
        note = f"No module-wise results (rows with extra = '{extra}') exist in results.csv."
        warn(note)
        _note_csv(csv, cols, note)
        md.write_text(f"# Module-wise sparsity (paper Table 1)\n\n{note}\n")
        return
    dense = _dense_of(inp)
    d = dense[["dataset", "model", "split", "mean"]].rename(columns={"mean": "dense_mean"})
    t = mw.merge(d, on=["dataset", "model", "split"], how="left")
    t["diff_vs_dense"] = t["mean"] - t["dense_mean"]
    t = t[cols].assign(_k=[module_order_key(x) for x in t["scope"]])
    t = t.sort_values(["dataset", "model", "split", "target_sparsity", "_k", "method"]).drop(columns="_k")
    t.to_csv(csv, index=False)
    show = t.assign(modules=[str(x).replace("modules:", "").replace("+", ", ") for x in t["scope"]],
                    **{"target (%)": [f"{100 * x:.3g}" for x in t["target_sparsity"]],
                       "realized (%)": [f"{100 * x:.2f}" for x in t["realized_mean"]]},
                    value=[f"{a:.2f} ± {b:.2f}" for a, b in zip(t["mean"], t["spread"])],
                    dense=[f"{x:.2f}" for x in t["dense_mean"]],
                    **{"Δ vs dense": [f"{x:+.2f}" for x in t["diff_vs_dense"]]})
    show = show[["dataset", "model", "split", "method", "modules", "target (%)", "realized (%)", "value",
                 "n_seeds", "dense", "Δ vs dense"]]
    md.write_text("# Module-wise sparsity (paper Table 1)\n\nPrimary metric (mean ± spread over seeds) when "
                  "only the listed modules are pruned to the target; realized sparsity over that scope; "
                  "difference to the dense fine-tune in points. Rows in the paper's order: single modules "
                  "Q, K, V, O, FFN, then combinations.\n\n" + markdown_table(show))


def run_cost(inp: Inputs, out_dir: Path) -> None:
    """Cost per run and per method (job hours, peak memory) and metric vs cumulative cost."""
    from .figures import plot_cost
    from .runfiles import cost_runs, cost_summary, cumulative_cost

    png, pdf, csv, csv_runs = (_out(out_dir, p) for p in OUTPUTS["cost"])
    runs, bad = cost_runs(inp.df)
    if bad:
        warn(f"{len(bad)} run(s) have no wall_time_s in results.csv (no cost record): "
             + "; ".join(bad[:10]) + (f" … and {len(bad) - 10} more" if len(bad) > 10 else ""))
    runs = cumulative_cost(runs) if len(runs) else runs.assign(cum_wall_s=[])
    runs.to_csv(csv_runs, index=False)
    cost_summary(runs).to_csv(csv, index=False)
    seeds = inp.seeds
    seeds = seeds[seeds["extra"] == MAIN]
    key = ["dataset", "model", "method", "scope", "extra", "level", "seed"]
    per_seed = runs.groupby(key, as_index=False)["cum_wall_s"].sum()  # folds of a seed add up
    j = seeds.merge(per_seed, on=key, how="left")
    if j.empty or j["cum_wall_s"].isna().all():
        _fig_or_placeholder(None, "No cost records (wall_time_s) for main-grid runs.", png, pdf)
        return
    pts = j.groupby(["dataset", "model", "split", "metric", "method", "level"], as_index=False).agg(
        mean=("value", "mean"), cum_hours=("cum_wall_s", lambda s: float(s.mean()) / 3600.0))
    _fig_or_placeholder(lambda: plot_cost(pts), "", png, pdf)


SUBCOMMANDS = {"curves": run_curves, "matching": run_matching, "layerwise": run_layerwise, "iou": run_iou,
               "drift": run_drift, "embeddings": run_embeddings, "obert": run_obert,
               "modulewise": run_modulewise, "cost": run_cost}
