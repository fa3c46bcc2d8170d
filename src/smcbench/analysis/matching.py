"""The matching-sparsity table (SPEC §3), the benchmark's headline.

For each (dataset, model, report split, method) of the main grid:

* ``dense_mean`` / ``dense_spread``: mean and spread (sample std over seeds, see
  :mod:`smcbench.analysis.data`) of the dense fine-tune.
* ``tolerance`` = max(``matching_tolerance`` from config, ``dense_spread``), in points of the metric.
* a level **matches** when the method's mean over seeds is ≥ ``dense_mean − tolerance`` (one-sided:
  beating dense never fails; equality counts as a match).
* **matching level** = the highest level L such that *every* level ≤ L of the grid matches (a
  contiguous prefix); a curve that dips and recovers does not get credit for the recovery, which is
  flagged as ``non_monotone`` with ``highest_matching_any``.
* **failing level** = the first level after the matching level: the first level that does not
  match, or that has no result (then the table says ``missing: …`` instead of a number, and the
  matching level is only a lower bound).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .data import DENSE, EPS, MAIN, nominal_target

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

COLUMNS = ["dataset", "model", "split", "metric", "method", "scope", "status", "matching_level",
           "matching_target", "matching_realized", "matching_value", "failing_level", "failing_target",
           "failing_realized", "failing_value", "dense_mean", "dense_spread", "dense_seeds", "tolerance",
           "non_monotone", "highest_matching_any", "levels_evaluated", "missing"]


def _fmt_missing(rows: "pd.DataFrame") -> str:
    items = []
    for r in rows.itertuples():
        fold = "" if r.fold == "all" else f"/fold{r.fold}"
        items.append(f"k={r.level}/seed{r.seed}{fold}")
    return "; ".join(items)


def matching_table(points: "pd.DataFrame", missing: "pd.DataFrame", config: dict,
                   tolerance: float | None = None) -> "pd.DataFrame":
    """Build the matching table from curve points (:func:`smcbench.analysis.data.points`) and the
    missing-run listing (:func:`smcbench.analysis.data.missing_runs`).

    ``tolerance`` overrides ``config['matching_tolerance']`` (default 1.0 point). The grid levels
    are the config's (a dataset's own ``levels`` first) or, without config, the levels seen.
    """
    import pandas as pd

    tol_cfg = float(tolerance if tolerance is not None else config.get("matching_tolerance", 1.0))
    main = points[points["extra"] == MAIN]
    methods_cfg = [m for m in (config.get("run_methods") or []) if m != DENSE]
    rows = []
    groups = main.groupby(["dataset", "model", "split", "metric"], sort=True)
    for (ds, model, split, metric), g in groups:
        dcfg = (config.get("datasets") or {}).get(ds) or {}
        grid = sorted(int(k) for k in (dcfg.get("levels") or config.get("levels") or []))
        if not grid:
            grid = sorted(set(g.loc[g["method"] != DENSE, "level"]))
        dense = g[g["method"] == DENSE]
        ds_methods = [m for m in dcfg.get("run_methods", methods_cfg) if m != DENSE]
        methods = list(dict.fromkeys(ds_methods + sorted(set(g["method"]) - {DENSE})))
        miss_here = (missing[(missing["dataset"] == ds) & (missing["model"] == model) & (missing["extra"] == MAIN)]
                     if len(missing) else missing)
        for method in methods:
            mg = g[g["method"] == method]
            mmiss = miss_here[miss_here["method"] == method] if len(miss_here) else miss_here
            row = dict(dataset=ds, model=model, split=split, metric=metric, method=method,
                       scope=",".join(sorted(set(mg["scope"]))) if len(mg) else "",
                       missing=_fmt_missing(mmiss) if len(mmiss) else "", levels_evaluated=len(mg),
                       non_monotone=False)
            if dense.empty:
                dmiss = miss_here[miss_here["method"] == DENSE] if len(miss_here) else miss_here
                row.update(status="missing: dense reference" + (f" ({_fmt_missing(dmiss)})" if len(dmiss) else ""),
                           tolerance=tol_cfg)
                rows.append(row)
                continue
            d = dense.iloc[0]
            tol = max(tol_cfg, float(d["spread"]))
            row.update(dense_mean=float(d["mean"]), dense_spread=float(d["spread"]),
                       dense_seeds=int(d["n_seeds"]), tolerance=tol)
            by_level = {int(r.level): r for r in mg.itertuples()}
            matched = None
            failing = None
            failing_reason = None
            for k in grid:
                r = by_level.get(k)
                if r is None:
                    failing, failing_reason = k, "missing"
                    break
                if r.mean >= d["mean"] - tol - EPS:
                    matched = r
                else:
                    failing, failing_reason = k, "fails"
                    break
            any_match = [k for k in grid if k in by_level and by_level[k].mean >= d["mean"] - tol - EPS]
            row["highest_matching_any"] = max(any_match) if any_match else None
            if matched is not None:
                row.update(matching_level=int(matched.level), matching_target=float(matched.target_sparsity),
                           matching_realized=float(matched.realized_mean), matching_value=float(matched.mean))
            else:
                row.update(matching_level=0, matching_target=0.0)
            if failing is not None:
                row["failing_level"] = failing
                row["failing_target"] = (float(by_level[failing].target_sparsity) if failing in by_level
                                         else round(nominal_target(failing), 6))
                if failing_reason == "fails":
                    row.update(failing_realized=float(by_level[failing].realized_mean),
                               failing_value=float(by_level[failing].mean))
                    row["non_monotone"] = any(k > failing for k in any_match)
                    row["status"] = "ok" if not row["missing"] else "ok (some seeds missing)"
                else:
                    row["status"] = f"missing: k={failing}"
                    if row["missing"]:
                        row["status"] += f" ({row['missing']})"
            elif not grid:
                row["status"] = "no sparse levels in the grid"
            else:
                row["status"] = "all levels match" + ("" if not row["missing"] else " (some seeds missing)")
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _pct(x) -> str:
    return f"{100 * float(x):.1f}%"


def matching_markdown(table: "pd.DataFrame", config: dict) -> str:
    """The matching table as Markdown, with the definitions in a short preamble."""
    tol = float(config.get("matching_tolerance", 1.0))
    lines = [
        "# Matching sparsity",
        "",
        f"Matching sparsity = the highest level L such that every level ≤ L has a mean over seeds "
        f"≥ dense mean − tolerance, tolerance = max({tol:g} point(s), dense seed std). Failing "
        f"sparsity = the next level. Sparsity shown as nominal target (realized in brackets).",
        "",
        "| dataset | model | split | method | matching sparsity | failing sparsity | dense (± spread) | tolerance | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if table.empty:
        lines.append("| — | — | — | — | no results | — | — | — | results.csv has no main-grid rows |")
    for r in table.itertuples():
        if str(r.status).startswith("missing: dense"):
            lines.append(f"| {r.dataset} | {r.model} | {r.split} | {r.method} | {r.status} | — | — | "
                         f"{r.tolerance:.2f} | |")
            continue
        if r.matching_level and r.matching_level > 0:
            match = f"{_pct(r.matching_target)} (k={r.matching_level}; {_pct(r.matching_realized)})"
        else:
            match = "none (0%)"
        if r.status.startswith("missing"):
            fail = r.status
        elif r.status.startswith("all levels match"):
            fail = "none (all levels match)"
        else:
            fail = f"{_pct(r.failing_target)} (k={int(r.failing_level)}; {_pct(r.failing_realized)}): {r.failing_value:.2f}"
        notes = []
        if r.non_monotone:
            notes.append(f"non-monotone: matches again at k={int(r.highest_matching_any)}")
        if r.missing and not r.status.startswith("missing"):
            notes.append(f"missing: {r.missing}")
        dense = f"{r.dense_mean:.2f} ± {r.dense_spread:.2f} (n={int(r.dense_seeds)})"
        lines.append(f"| {r.dataset} | {r.model} | {r.split} | {r.method} | {match} | {fail} | {dense} | "
                     f"{r.tolerance:.2f} | {'; '.join(notes)} |")
    return "\n".join(lines) + "\n"
