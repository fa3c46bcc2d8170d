"""Reading the results table and reducing it to curve points.

Vocabulary used across the analyses:

* a **run** is one trained model: (dataset, model, method, scope, extra, level, target_sparsity,
  round, seed, fold); it has one ``run_dir``.
* a **seed value** is the metric of one seed after the folds are aggregated (micro-average of
  correct/total over folds when the table has them, or Σ value·n / Σ n when every fold row of an
  ``…accuracy`` metric carries ``n``; else the mean over folds).
* a **point** is one (dataset, model, method, scope, extra, level, target_sparsity, split,
  metric): the mean over seeds, the spread, and the mean realized sparsity (its x position).

The *spread* of a point is the sample standard deviation (ddof = 1) of its seed values. With a
single seed and several folds it is the sample std of that seed's fold values (``spread_source``
says ``folds``); with a single seed and a single fold it is 0 (``spread_source`` = ``none``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from . import AnalysisInputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Columns results.csv must have (the contract with the pipeline).
REQUIRED_COLUMNS = (
    "family", "dataset", "model", "method", "scope", "extra", "level", "target_sparsity",
    "realized_sparsity", "round", "seed", "fold", "split", "metric", "value", "run_dir",
)
#: Optional columns; created empty when absent.
OPTIONAL_COLUMNS = ("value_best_on_test", "baseline", "n", "selection", "signature",
                    "wall_time_s", "peak_mem_mb", "rss_at_start_mb", "mask_wall_time_s", "git_revision",
                    "config_hash")
#: What identifies one curve point (before split and metric).
POINT_KEYS = ["family", "dataset", "model", "method", "scope", "extra", "level", "target_sparsity"]
#: What identifies one run.
RUN_KEYS = POINT_KEYS + ["round", "seed", "fold"]
#: The ``extra`` value of the main grid.
MAIN = "main"
#: Level reported as 0 for the dense reference.
DENSE = "dense"
#: Numerical slack when comparing a mean to dense − tolerance (values are floats read from CSV).
EPS = 1e-9


def warn(msg: str) -> None:
    """Print a warning line on stderr (the CLI's way to report gaps without failing)."""
    print(f"warning: {msg}", file=sys.stderr)


# --- reading -------------------------------------------------------------------------------------

def load_results(path: str | Path) -> "pd.DataFrame":
    """Read results.csv with stable dtypes; raise :class:`AnalysisInputError` naming what is wrong.

    ``fold``, ``split``, ``extra``, ``seed`` and the names are read as strings (fold "all" and
    "0" must stay distinguishable); ``level`` and ``round`` as int; values as float.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise AnalysisInputError(f"results table not found: {path} (run the pipeline first, e.g. "
                                 f"'snakemake --cores 2 {path}')")
    str_cols = ["family", "dataset", "model", "method", "scope", "extra", "fold", "split", "metric",
                "run_dir", "selection", "signature", "git_revision", "config_hash"]
    df = pd.read_csv(path, dtype={c: "string" for c in str_cols}, keep_default_na=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise AnalysisInputError(f"{path} lacks column(s) {', '.join(missing)} "
                                 f"(required: {', '.join(REQUIRED_COLUMNS)})")
    for c in OPTIONAL_COLUMNS:
        if c not in df.columns:
            df[c] = float("nan")
    for c in str_cols:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["extra"] = df["extra"].fillna(MAIN)
    df["fold"] = df["fold"].fillna("all")
    for c in ("level", "round", "seed"):
        bad = df[c].isna()
        if bad.any():
            raise AnalysisInputError(f"{path}: column {c!r} is empty in {int(bad.sum())} row(s)")
        df[c] = df[c].astype(float).astype(int)
    for c in ("target_sparsity", "realized_sparsity", "value", "value_best_on_test", "baseline", "n",
              "wall_time_s", "peak_mem_mb", "rss_at_start_mb", "mask_wall_time_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    # Round the target so 1-0.8**k computed on different machines keys identically.
    df["target_sparsity"] = df["target_sparsity"].round(6)
    return df


def load_json(path: str | Path | None, what: str, required: bool) -> dict:
    """Read a JSON object file; ``None``/absent returns {} unless ``required``."""
    if path is None or not Path(path).is_file():
        if required:
            raise AnalysisInputError(f"{what} not found: {path}")
        return {}
    with open(path) as f:
        obj = json.load(f)
    if not isinstance(obj, dict):
        raise AnalysisInputError(f"{what} {path} must hold a JSON object, got {type(obj).__name__}")
    return obj


def resolve_primary_metrics(df: "pd.DataFrame", primary: dict[str, str]) -> dict[str, str]:
    """The primary metric of every dataset in ``df``.

    A dataset absent from primary_metrics.json falls back to its only metric (ignoring
    ``*_correct``/``*_total`` helper rows); with several candidates the error lists them.
    """
    out: dict[str, str] = {}
    for ds, sub in df.groupby("dataset", sort=True):
        metrics = sorted(set(sub["metric"].dropna()))
        if ds in primary:
            if primary[ds] not in metrics:
                raise AnalysisInputError(f"primary metric {primary[ds]!r} of dataset {ds!r} has no row "
                                         f"in results.csv (metrics there: {', '.join(metrics)})")
            out[ds] = primary[ds]
            continue
        cands = [m for m in metrics if not (m.endswith("correct") or m.endswith("total"))]
        if len(cands) != 1:
            raise AnalysisInputError(f"dataset {ds!r} is missing from primary_metrics.json and has "
                                     f"several metrics ({', '.join(cands)}); add it there")
        warn(f"dataset {ds!r} is missing from primary_metrics.json; using its only metric {cands[0]!r}")
        out[ds] = cands[0]
    return out


def count_metrics(metric: str) -> tuple[str, str] | None:
    """The (correct, total) helper metric names for a fold micro-average of ``metric``.

    ``value_accuracy`` -> (``value_correct``, ``value_total``); ``accuracy`` -> (``correct``,
    ``total``); metrics not ending in ``accuracy`` have none.
    """
    if not metric.endswith("accuracy"):
        return None
    stem = metric[: -len("accuracy")]
    return stem + "correct", stem + "total"


def eval_splits(df: "pd.DataFrame") -> dict[str, list[str]]:
    """Per dataset, the splits the figures report: every ``test``/``test_<variant>`` split, or
    ``validation`` when a dataset has no test split at all (with a warning)."""
    out = {}
    for ds, sub in df.groupby("dataset", sort=True):
        splits = sorted(set(sub["split"].dropna()))
        tests = [s for s in splits if s == "test" or s.startswith("test_")]
        if not tests:
            warn(f"dataset {ds!r} has no test split in results.csv; reporting {splits}")
            tests = splits
        out[ds] = tests
    return out


# --- reduction -----------------------------------------------------------------------------------

def seed_values(df: "pd.DataFrame", primary: dict[str, str], value_col: str = "value",
                splits: dict[str, list[str]] | None = None) -> "pd.DataFrame":
    """One row per (point, seed, split) for each dataset's primary metric on its report splits.

    Columns: POINT_KEYS + seed, split, metric, value (fold aggregate), fold_agg (``micro``,
    ``mean`` or ``single``), n_folds, fold_std (sample std of the fold values, NaN if one fold),
    realized_sparsity (mean over folds), baseline (mean), run_dirs (';'-joined).
    Rows whose value is empty are dropped here (they are reported as missing by
    :func:`missing_runs`).
    """
    import pandas as pd

    splits = splits if splits is not None else eval_splits(df)
    parts = []
    for ds, sub in df.groupby("dataset", sort=True):
        metric = primary[ds]
        sub = sub[sub["split"].isin(splits.get(ds, []))]
        helpers = count_metrics(metric)
        main = sub[sub["metric"] == metric]
        main = main[main[value_col].notna()]
        if main.empty:
            continue
        keys = POINT_KEYS + ["seed", "split"]
        counts = None
        if helpers is not None:
            c = sub[sub["metric"] == helpers[0]].set_index(RUN_KEYS + ["split"])[value_col].rename("correct")
            t = sub[sub["metric"] == helpers[1]].set_index(RUN_KEYS + ["split"])[value_col].rename("total")
            if len(c) and len(t):
                counts = pd.concat([c, t], axis=1)
        m = main.set_index(RUN_KEYS + ["split"])
        if counts is None and helpers is not None and main["n"].notna().all() and (main["n"] > 0).all():
            # no count rows, but every row says how many examples it scored: correct = value·n
            counts = pd.concat([(main[value_col] * main["n"]).rename("correct"), main["n"].rename("total")],
                               axis=1).set_axis(m.index)
            counts = counts.assign(correct=counts["correct"] / _unit(main[value_col]))
        if counts is not None:
            m = m.join(counts[~counts.index.duplicated()], how="left")
        else:
            m["correct"] = float("nan")
            m["total"] = float("nan")
        m = m.reset_index()
        for key, g in m.groupby(keys, sort=True, dropna=False):
            row = dict(zip(keys, key))
            vals = g[value_col].to_numpy(dtype=float)
            n = len(vals)
            if n > 1 and g["correct"].notna().all() and g["total"].notna().all() and g["total"].sum() > 0:
                # Fold micro-average, in the unit of the metric itself (percent or fraction).
                ratio = g["correct"] / g["total"].where(g["total"] > 0)
                scale_c = (g[value_col] / ratio).where(ratio > 0).dropna()
                scale = float(scale_c.median()) if len(scale_c) else 100.0
                scale = 100.0 if abs(scale - 100.0) < abs(scale - 1.0) else 1.0
                value = scale * float(g["correct"].sum()) / float(g["total"].sum())
                agg = "micro"
            else:
                value = float(vals.mean())
                agg = "mean" if n > 1 else "single"
            row.update(metric=metric, value=value, fold_agg=agg, n_folds=n,
                       fold_std=float(vals.std(ddof=1)) if n > 1 else float("nan"),
                       realized_sparsity=float(g["realized_sparsity"].mean()),
                       baseline=float(g["baseline"].mean()) if g["baseline"].notna().any() else float("nan"),
                       run_dirs=";".join(sorted(set(str(r) for r in g["run_dir"].dropna()))))
            parts.append(row)
    cols = POINT_KEYS + ["seed", "split", "metric", "value", "fold_agg", "n_folds", "fold_std",
                         "realized_sparsity", "baseline", "run_dirs"]
    return pd.DataFrame(parts, columns=cols)


def _unit(values) -> float:
    """100 when a metric is in percent (any value above 1), else 1 (a fraction)."""
    return 100.0 if (values.abs() > 1.0 + 1e-9).any() else 1.0


def best_on_test_gaps(df: "pd.DataFrame", primary: dict[str, str]) -> list[str]:
    """Datasets whose primary-metric rows on test splits have no ``value_best_on_test`` at all
    (tasks with ``report_best_on_test: false``): with ``--value-column value_best_on_test`` they
    would drop out of every figure and table."""
    out = []
    for ds, sub in df.groupby("dataset", sort=True):
        rows = sub[(sub["metric"] == primary.get(ds)) & (sub["split"] != "validation")]
        if len(rows) and rows["value_best_on_test"].isna().all():
            out.append(ds)
    return out


def provenance_notes(df: "pd.DataFrame") -> list[str]:
    """One-line notes on where the numbers come from: git revisions (with ``-dirty`` trees called
    out), rows without ``n``, several signatures for one dataset and metric."""
    notes = []
    runs = df.drop_duplicates(subset=RUN_KEYS)
    revs = runs["git_revision"].fillna("(none)").value_counts()
    if len(revs):
        items = sorted(revs.items(), key=lambda x: (-x[1], str(x[0])))
        listed = ", ".join(f"{r} ({c} runs)" for r, c in items[:5])
        more = f", … {len(items) - 5} more (see the git_revision column)" if len(items) > 5 else ""
        notes.append(f"git revision(s): {listed}{more}")
        dirty = int(sum(c for r, c in revs.items() if str(r).endswith("-dirty")))
        if dirty:
            notes.append(f"{dirty} run(s) ran from a tree with uncommitted changes (revision ends in -dirty): "
                         "their code is not exactly the named commit")
    no_n = sorted(set(df.loc[df["n"].isna() & (df["split"] != "validation"), "dataset"]))
    if no_n:
        notes.append(f"rows without n (number of examples scored): {', '.join(no_n)}")
    for (ds, metric), g in df.groupby(["dataset", "metric"], sort=True):
        sigs = set(g["signature"].dropna())
        if len(sigs) > 1:
            notes.append(f"{ds}/{metric}: {len(sigs)} different signatures in one table (see results.csv)")
    return notes


def aggregate_points(seeds: "pd.DataFrame") -> "pd.DataFrame":
    """Reduce seed values to points: mean, spread (see the module docstring), n_seeds, seeds,
    realized sparsity mean/std (x position), baseline, fold aggregation."""
    import pandas as pd

    keys = POINT_KEYS + ["split", "metric"]
    rows = []
    for key, g in seeds.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key))
        vals = g["value"].to_numpy(dtype=float)
        if len(vals) > 1:
            spread, source = float(vals.std(ddof=1)), "seeds"
        elif g["n_folds"].iloc[0] > 1 and not math.isnan(g["fold_std"].iloc[0]):
            spread, source = float(g["fold_std"].iloc[0]), "folds"
        else:
            spread, source = 0.0, "none"
        row.update(mean=float(vals.mean()), spread=spread, spread_source=source, n_seeds=len(vals),
                   seeds=",".join(str(s) for s in sorted(g["seed"])),
                   realized_mean=float(g["realized_sparsity"].mean()),
                   realized_std=float(g["realized_sparsity"].std(ddof=1)) if len(g) > 1 else 0.0,
                   baseline=float(g["baseline"].mean()) if g["baseline"].notna().any() else float("nan"),
                   fold_agg=",".join(sorted(set(g["fold_agg"]))), n_folds=int(g["n_folds"].max()))
        rows.append(row)
    cols = keys + ["mean", "spread", "spread_source", "n_seeds", "seeds", "realized_mean",
                   "realized_std", "baseline", "fold_agg", "n_folds"]
    return pd.DataFrame(rows, columns=cols)


def points(df: "pd.DataFrame", primary: dict[str, str], value_col: str = "value") -> "pd.DataFrame":
    """Shortcut: :func:`seed_values` then :func:`aggregate_points`."""
    return aggregate_points(seed_values(df, primary, value_col))


# --- the expected grid and what is missing -------------------------------------------------------

def _dataset_levels(config: dict, ds: str) -> list[int]:
    dcfg = (config.get("datasets") or {}).get(ds) or {}
    levels = dcfg.get("levels", config.get("levels")) or []
    return sorted(int(k) for k in levels)


GRID_KEYS = ["dataset", "model", "method", "extra", "scope", "level", "target_sparsity", "seed", "fold"]


def expected_grid(df: "pd.DataFrame", config: dict) -> "pd.DataFrame":
    """Every run that should exist, as rows of :data:`GRID_KEYS`.

    Main grid (``extra`` = main, ``scope`` = "*" meaning the dataset's own scope): from config.json
    (enabled datasets -> models, a dataset's own ``run_methods`` or the global list, levels or a
    dataset's own ``levels``, seeds) when it has them,
    otherwise inferred from the table (the union of methods, levels and seeds seen per
    dataset/model). Dense has level 0 only. Extra runs: every ``extra_runs`` entry of the config
    (datasets × their models × methods × scopes × (``targets`` at level 0, or ``levels``, or the
    global levels) × seeds). Folds are those seen in the table for the dataset.
    """
    import pandas as pd

    folds = {ds: sorted(set(g["fold"])) for ds, g in df.groupby("dataset")}
    rows = []
    datasets = config.get("datasets") or {}
    seeds_cfg = config.get("seeds")

    def add(ds, model, method, extra, scope, levels_targets, seeds):
        for k, tgt in levels_targets:
            for seed in seeds:
                for fold in folds.get(ds, ["all"]):
                    rows.append((ds, model, method, extra, scope, int(k), round(float(tgt), 6), int(seed), fold))

    if datasets and config.get("run_methods") and seeds_cfg is not None:
        for ds, dcfg in datasets.items():
            if not (dcfg or {}).get("enabled", True):
                continue
            for model in (dcfg or {}).get("models", []):
                for method in (dcfg or {}).get("run_methods", config["run_methods"]):
                    lv = [(0, 0.0)] if method == DENSE else [(k, nominal_target(k)) for k in _dataset_levels(config, ds)]
                    add(ds, model, method, MAIN, "*", lv, seeds_cfg)
        for extra in config.get("extra_runs") or []:
            scopes = extra.get("scopes") or [extra.get("scope", "paper")]
            if extra.get("targets"):
                lv = [(0, t) for t in extra["targets"]]
            else:
                lv = [(k, nominal_target(k)) for k in (extra.get("levels") or config.get("levels") or [])]
            for ds in extra.get("datasets", []):
                if not (datasets.get(ds) or {}).get("enabled", True):
                    continue
                for model in extra.get("models") or ((datasets.get(ds) or {}).get("models", [])):
                    for method in extra.get("methods", []):
                        for scope in scopes:
                            add(ds, model, method, extra["name"], scope, lv, seeds_cfg)
    else:
        main = df[df["extra"] == MAIN]
        for (ds, model), g in main.groupby(["dataset", "model"], sort=True):
            levels = sorted(set(g.loc[g["method"] != DENSE, "level"]))
            seeds = sorted(set(g["seed"]))
            for method in sorted(set(g["method"])):
                lv = [(0, 0.0)] if method == DENSE else [(k, nominal_target(k)) for k in levels]
                add(ds, model, method, MAIN, "*", lv, seeds)
    return pd.DataFrame(rows, columns=GRID_KEYS)


def missing_runs(df: "pd.DataFrame", config: dict, primary: dict[str, str]) -> "pd.DataFrame":
    """Expected runs (:func:`expected_grid`) with no row of the primary metric on a report split,
    or only rows with an empty value. Columns: GRID_KEYS + reason."""
    import numpy as np
    import pandas as pd

    expected = expected_grid(df, config)
    splits = eval_splits(df) if len(df) else {}
    pairs = {(ds, sp) for ds, sps in splits.items() for sp in sps}
    on_split = np.asarray([(ds, sp) in pairs for ds, sp in zip(df["dataset"], df["split"])], dtype=bool)
    have = df[(df["metric"] == df["dataset"].map(primary)).to_numpy() & on_split]

    def keys(frame, any_scope):
        scope = ["*"] * len(frame) if any_scope else list(frame["scope"])
        return set(zip(frame["dataset"], frame["model"], frame["method"], frame["extra"], scope,
                       frame["target_sparsity"].round(6), frame["seed"].astype(int), frame["fold"]))

    ok, empty = have[have["value"].notna()], have[have["value"].isna()]
    present = keys(ok, True) | keys(ok, False)
    blank = keys(empty, True) | keys(empty, False)
    rows = []
    for t in expected.itertuples(index=False, name=None):
        key = t[:5] + (t[6], t[7], t[8])
        if key not in present:
            rows.append(t + ("empty value in results.csv" if key in blank else "no row in results.csv",))
    return pd.DataFrame(rows, columns=GRID_KEYS + ["reason"])


def describe_missing(missing: "pd.DataFrame", limit: int = 20) -> str:
    """A one-line listing of missing runs (for warnings)."""
    items = []
    for r in missing.itertuples():
        extra = "" if r.extra == MAIN else f"[{r.extra}:{r.scope}]"
        where = f"k={r.level}" if r.level or r.method == DENSE else f"s={r.target_sparsity:g}"
        items.append(f"{r.dataset}/{r.model}/{r.method}{extra}/{where}/seed{r.seed}"
                     + ("" if r.fold == "all" else f"/fold{r.fold}"))
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def nominal_target(level: int) -> float:
    """The paper's target sparsity of level k: 1 − 0.8^k."""
    return 1.0 - 0.8 ** int(level)


def unique_runs(df: "pd.DataFrame", where: Iterable[bool] | None = None) -> "pd.DataFrame":
    """One row per run (RUN_KEYS + run_dir), first row of each; optional boolean filter."""
    sub = df if where is None else df[where]
    return sub.drop_duplicates(subset=RUN_KEYS)[RUN_KEYS + ["run_dir", "realized_sparsity",
                                                          "wall_time_s", "peak_mem_mb", "rss_at_start_mb",
                                                          "mask_wall_time_s"]]


def resolve_run_dir(root: str | Path, run_dir: Any) -> Path | None:
    """The run folder of a row, relative to ``root`` unless absolute; None when empty."""
    if run_dir is None or (isinstance(run_dir, float) and math.isnan(run_dir)) or str(run_dir) == "":
        return None
    p = Path(str(run_dir))
    return p if p.is_absolute() else Path(root) / p
