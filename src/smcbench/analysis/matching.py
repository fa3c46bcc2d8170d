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

Exact ties: a mean equal to ``dense_mean − tolerance`` matches. Values read from the table may
carry float32 rounding (a legacy 92/100 stored as 92.00000166893005), so "equal" means within
:func:`tie_slack` (10⁻⁶ relative to the size of the numbers compared, plus 10⁻¹² absolute),
far below any difference one example makes on a test set of fewer than 10⁵ examples.

Each row also says where its tolerance came from (``tolerance_source``: ``fixed`` when the
configured threshold is at least the dense spread, ``dense spread`` otherwise) and whether the
comparison is **too noisy to call** (``noisy`` with the reasons in ``noise``): the dense
reference has fewer than 2 seeds (its spread is unknown), or the dense spread exceeds
:data:`NOISE_FACTOR` × the fixed threshold (the tolerance is then mostly seed noise, so "matches"
says little), or the method's own spread at the deciding level (the failing level, or the last
level when all match) exceeds that same limit.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from .data import DENSE, MAIN, nominal_target

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

COLUMNS = ["dataset", "model", "split", "metric", "method", "scope", "status", "matching_level",
           "matching_target", "matching_realized", "matching_value", "failing_level", "failing_target",
           "failing_realized", "failing_value", "dense_mean", "dense_spread", "dense_seeds", "tolerance",
           "tolerance_fixed", "tolerance_source", "noisy", "noise", "method_seeds", "method_spread",
           "non_monotone", "highest_matching_any", "levels_evaluated", "missing"]

#: A comparison is flagged too noisy to call when a spread exceeds this multiple of the fixed
#: threshold (``matching_tolerance``), or the dense reference has fewer than 2 seeds.
NOISE_FACTOR = 2.0
#: Relative slack of the tie test (float32 rounds at 6e-8 relative; means of a few such values stay
#: below 1e-6), plus an absolute floor for values near 0.
TIE_REL = 1e-6
TIE_ABS = 1e-12


def tie_slack(*values: float) -> float:
    """The slack within which two metric values count as equal: ``TIE_REL`` × the largest
    magnitude among ``values`` (at least 1) + ``TIE_ABS``."""
    scale = max([1.0] + [abs(float(v)) for v in values if v == v])
    return TIE_REL * scale + TIE_ABS


def matches(mean: float, dense_mean: float, tolerance: float) -> bool:
    """True when ``mean`` ≥ ``dense_mean − tolerance`` up to :func:`tie_slack` (ties match)."""
    return float(mean) >= float(dense_mean) - float(tolerance) - tie_slack(mean, dense_mean, tolerance)


def noise_reasons(dense_seeds: int, dense_spread: float, tol_fixed: float,
                  method_spread: float | None = None, method_seeds: int | None = None) -> list[str]:
    """Why a comparison is too noisy to call (empty list: it can be called); see the module doc."""
    out = []
    limit = NOISE_FACTOR * tol_fixed
    if dense_seeds < 2:
        out.append(f"dense has {dense_seeds} seed(s)")
    if dense_spread > limit:
        out.append(f"dense spread {dense_spread:.2f} > {NOISE_FACTOR:g}× threshold {tol_fixed:g}")
    if method_spread is not None and method_spread == method_spread and method_spread > limit:
        out.append(f"method spread {method_spread:.2f} > {NOISE_FACTOR:g}× threshold {tol_fixed:g}")
    if method_seeds is not None and method_seeds < 2 and dense_seeds >= 2:
        out.append(f"method has {method_seeds} seed(s)")
    return out


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
            row = dict(dataset=ds, model=model, split=split, metric=metric, method=method, tolerance_fixed=tol_cfg,
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
            d_spread = float(d["spread"])
            tol = max(tol_cfg, d_spread)
            row.update(dense_mean=float(d["mean"]), dense_spread=float(d["spread"]),
                       dense_seeds=int(d["n_seeds"]), tolerance=tol,
                       tolerance_source=("fixed" if tol_cfg >= d_spread else
                                         "dense fold spread" if d.get("spread_source") == "folds" else "dense spread"))
            by_level = {int(r.level): r for r in mg.itertuples()}
            matched = None
            failing = None
            failing_reason = None
            for k in grid:
                r = by_level.get(k)
                if r is None:
                    failing, failing_reason = k, "missing"
                    break
                if matches(r.mean, d["mean"], tol):
                    matched = r
                else:
                    failing, failing_reason = k, "fails"
                    break
            any_match = [k for k in grid if k in by_level and matches(by_level[k].mean, d["mean"], tol)]
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
            # the deciding level: the failing one when it has a result, else the last matching one
            decide = by_level.get(failing) if failing is not None else matched
            if decide is None:
                decide = matched
            m_spread = float(decide.spread) if decide is not None else None
            m_seeds = int(decide.n_seeds) if decide is not None else None
            reasons = noise_reasons(int(d["n_seeds"]), float(d["spread"]), tol_cfg, m_spread, m_seeds)
            row.update(method_spread=m_spread, method_seeds=m_seeds, noisy=bool(reasons), noise="; ".join(reasons))
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _pct(x) -> str:
    return f"{100 * float(x):.1f}%"


def _tol_cell(r) -> str:
    src = getattr(r, "tolerance_source", "") or ""
    return f"{r.tolerance:.2f} ({src})" if src else f"{r.tolerance:.2f}"


def matching_markdown(table: "pd.DataFrame", config: dict, notes: list[str] | None = None) -> str:
    """The matching table as Markdown, with the definitions in a short preamble; ``notes`` are
    extra lines (provenance, datasets left out) printed under it."""
    tol = float(config.get("matching_tolerance", 1.0))
    lines = [
        "# Matching sparsity",
        "",
        f"Matching sparsity = the highest level L such that every level ≤ L has a mean over seeds "
        f"≥ dense mean − tolerance (ties match), tolerance = max({tol:g} point(s), dense seed std); "
        f"the tolerance column says which one applied. Failing sparsity = the next level. "
        f"**too noisy to call**: dense has < 2 seeds, or the dense spread or the method's spread at "
        f"the deciding level exceeds {NOISE_FACTOR:g} × {tol:g} point(s). Sparsity shown as nominal "
        f"target (realized in brackets).",
        "",
    ]
    for n in notes or []:
        lines += [f"- {n}"]
    if notes:
        lines.append("")
    lines += [
        "| dataset | model | split | method | matching sparsity | failing sparsity | dense (± spread) | tolerance (source) | notes |",
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
        notes_ = []
        if r.noisy:
            notes_.append(f"**too noisy to call** ({r.noise})")
        if r.non_monotone:
            notes_.append(f"non-monotone: matches again at k={int(r.highest_matching_any)}")
        if r.missing and not r.status.startswith("missing"):
            notes_.append(f"missing: {r.missing}")
        dense = f"{r.dense_mean:.2f} ± {r.dense_spread:.2f} (n={int(r.dense_seeds)})"
        lines.append(f"| {r.dataset} | {r.model} | {r.split} | {r.method} | {match} | {fail} | {dense} | "
                     f"{_tol_cell(r)} | {'; '.join(notes_)} |")
    return "\n".join(lines) + "\n"


# --- the terminal summary (printed at the end of the demo) ---------------------------------------

def difficulty(ds: str, config: dict) -> str:
    """``easy``/``hard`` from the dataset's config (``difficulty``, or ``settings.variant``), else
    from its name; "" when unknown."""
    dcfg = (config.get("datasets") or {}).get(ds) or {}
    for v in (dcfg.get("difficulty"), (dcfg.get("settings") or {}).get("variant")):
        if isinstance(v, str) and v in ("easy", "hard"):
            return v
    for word in ("easy", "hard"):
        if word in ds.split("_") or ds.endswith(word):
            return word
    return ""


def _cell(r) -> str:
    if str(r.status).startswith("missing: dense"):
        return "no dense"
    if r.matching_level and r.matching_level > 0:
        c = f"{100 * float(r.matching_target):.1f}% k={int(r.matching_level)}"
    else:
        c = "none"
    if str(r.status).startswith("all levels match"):
        c = "≥" + c
    elif str(r.status).startswith("missing"):
        c += " (gap)"
    if r.non_monotone:
        c += " ~"
    if r.noisy:
        c += " ?"
    return c


def terminal_table(table: "pd.DataFrame", config: dict) -> str:
    """Method × task grid of the matching sparsity (plain text, fixed-width columns), with the
    dense mean ± seed spread and the tolerance (and where it came from) under each task."""
    if table.empty:
        return "matching sparsity: no main-grid results yet"
    tasks = list(dict.fromkeys(zip(table["dataset"], table["split"])))
    several = {ds for ds, sp in tasks if sum(1 for d, _ in tasks if d == ds) > 1}
    # easy next to hard (same name but for the word), easy first; otherwise name order
    tasks.sort(key=lambda t: (t[0].replace("easy", "").replace("hard", ""), difficulty(t[0], config) != "easy", t))
    names = [f"{ds}:{sp}" if ds in several else ds for ds, sp in tasks]
    diffs = [f"[{difficulty(ds, config)}]" if difficulty(ds, config) else "" for ds, _ in tasks]
    methods = list(dict.fromkeys(table["method"]))
    by = {(r.dataset, r.split, r.method): r for r in table.itertuples()}
    body = [[(_cell(by[(ds, sp, m)]) if (ds, sp, m) in by else "–") for ds, sp in tasks] for m in methods]
    dense_cells, tol_cells = [], []
    for ds, sp in tasks:
        rows = table[(table["dataset"] == ds) & (table["split"] == sp) & table["dense_mean"].notna()]
        if rows.empty:
            dense_cells.append("–")
            tol_cells.append("–")
            continue
        r = rows.iloc[0]
        dense_cells.append(f"{r['dense_mean']:.1f}±{r['dense_spread']:.1f} n={int(r['dense_seeds'])}")
        tol_cells.append(f"{r['tolerance']:.2f} {'fixed' if r['tolerance_source'] == 'fixed' else 'spread'}")
    labels = methods + ["dense ± spread", "tolerance"]
    mw = max(len(x) for x in labels + ["method"]) + 2
    cols = list(zip(names, diffs, *body, dense_cells, tol_cells))
    widths = [max(len(c) for c in col) + 2 for col in cols]

    def line(label, cells):
        return label.ljust(mw) + "".join(c.rjust(w) for c, w in zip(cells, widths))

    head = line("method", names)
    lines = ["Matching sparsity (highest level within tolerance of dense, every lower level matching too)",
             head, line("", diffs), "-" * len(head)]
    lines += [line(m, cells) for m, cells in zip(methods, body)]
    lines += ["-" * len(head), line("dense ± spread", dense_cells), line("tolerance", tol_cells)]
    legend = ("≥: every level matches (the grid's top is a lower bound); (gap): a level has no result; "
              "~: matches again higher up; ?: too noisy to call (dense < 2 seeds, or a spread > "
              f"{NOISE_FACTOR:g} × the fixed threshold); tolerance: the fixed threshold or the dense seed spread, "
              "whichever is larger.")
    lines += textwrap.wrap(legend, 100)
    return "\n".join(line_.rstrip() for line_ in lines)


def format_terminal_table(results_csv, primary_metrics=None, config=None, tolerance: float | None = None) -> str:
    """The matching-sparsity table of a results.csv as plain text for a terminal (method × task).

    Reads ``primary_metrics.json`` and ``config.json`` beside ``results_csv`` unless given. Never
    raises on bad or partial input: it returns a one-line explanation instead, and the analysis
    warnings are not printed (the text says how many expected runs are missing).
    """
    import contextlib
    import io

    from . import AnalysisInputError
    from .reports import Inputs

    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            inp = Inputs.load(results_csv, primary_metrics, config)
            table = matching_table(inp.main_points(), inp.missing, inp.config, tolerance)
            n_missing = len(inp.missing)
    except (AnalysisInputError, OSError, ValueError, KeyError) as e:
        return f"matching sparsity: not available ({e})"
    out = terminal_table(table, inp.config)
    if n_missing:
        out += f"\n{n_missing} expected run(s) have no result (see tables/missing_runs.csv)."
    return out
