"""The tidy results table: one row per (run, split, metric), built from every run's metrics.json.

Columns (SPEC §3): ``family, dataset, model, method, scope, extra, level, target_sparsity,
realized_sparsity, mask_sparsity, round, seed, fold, split, metric, value, value_best_on_test, baseline, n,
selection, signature, wall_time_s, peak_mem_mb, rss_at_start_mb, mask_wall_time_s, git_revision, config_hash,
run_dir``.

Values are passed through as the run wrote them (``value`` a Python float, ``n`` the number of
examples scored, ``signature`` how the metric was computed including package versions,
``git_revision`` with a ``-dirty`` suffix for an uncommitted tree). ``wall_time_s`` and
``peak_mem_mb`` are the training job's own; ``rss_at_start_mb`` is the job's resident memory when
it started (the interpreter and its imports; under the warm job server, what the forked image
already held), so ``peak_mem_mb - rss_at_start_mb`` is what the job itself added; ``mask_wall_time_s`` is the part of that job spent
computing a before-training mask, when the job computed one (empty otherwise). :func:`collect`
warns on stderr about rows without ``n``.

Beside ``results.csv``, :func:`collect` writes ``layerwise.csv``: every run's realized sparsity per
tensor (the ``layerwise`` rows of its metrics.json), one row per (run, tensor), columns
:data:`LAYERWISE_COLUMNS`; ``run_dir`` is the same string as in ``results.csv``. It is the only
layerwise file: the training jobs write none of their own (one file fewer per job for Snakemake to
track). A metrics.json written before the jobs recorded the rows contributes none, with a warning.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .config import parse_level, scope_from_path
from .io import write_csv_atomic
from .sparsity.registry import METHODS

COLUMNS = ["family", "dataset", "model", "method", "scope", "extra", "level", "target_sparsity",
           "realized_sparsity", "mask_sparsity", "round", "seed", "fold", "split", "metric", "value", "value_best_on_test",
           "baseline", "n", "selection", "signature", "wall_time_s", "peak_mem_mb", "rss_at_start_mb",
           "mask_wall_time_s", "git_revision", "config_hash", "run_dir"]


LAYERWISE_COLUMNS = ["run_dir", "order", "name", "shape", "numel", "kept", "sparsity"]


class ResultsError(RuntimeError):
    pass


def identity_from_run_dir(run_dir: str) -> dict:
    """Parse ``.../runs/<dataset>/<fold>/<model>/<method>[/<scope>/<level>]/seed<n>``."""
    parts = Path(run_dir).parts
    i = len(parts) - 1 - parts[::-1].index("runs")
    rest = parts[i + 1:]
    if len(rest) == 5 and rest[3] == "dense":
        dataset, fold, model, method, seed = rest
        scope, level = None, "s0"
    elif len(rest) == 7:
        dataset, fold, model, method, scope, level, seed = rest
        scope = scope_from_path(scope)
    else:
        raise ResultsError(f"unexpected run directory layout: {run_dir}")
    if not seed.startswith("seed"):
        raise ResultsError(f"unexpected run directory layout (no seed<n>): {run_dir}")
    return {"dataset": dataset, "fold": fold, "model": model, "method": method, "scope": scope,
            "level_tag": level, "seed": int(seed[4:])}


def read_metrics(metrics_path: Path) -> dict:
    try:
        return json.loads(Path(metrics_path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"{metrics_path}: cannot read run metrics ({e}); rerun that job") from None


def layerwise_of_run(m: dict, run_dir: str) -> list[dict] | None:
    """The run's per-tensor rows for layerwise.csv, or None when its metrics.json has none (written
    before the training jobs recorded them)."""
    rows = m.get("layerwise")
    if not isinstance(rows, list):
        return None
    return [{"run_dir": run_dir, **{k: r.get(k) for k in LAYERWISE_COLUMNS[1:]}} for r in rows]


def rows_of_run(metrics_path: Path, extra: str = "main", m: dict | None = None) -> tuple[list[dict], str]:
    """The table rows of one run, and its primary metric (``m``: its metrics.json, if already read)."""
    if m is None:
        m = read_metrics(metrics_path)
    run_dir = str(Path(metrics_path).parent)
    ident = identity_from_run_dir(run_dir)
    k, target = parse_level(ident["level_tag"])
    method = ident["method"]
    round_ = k if METHODS[method].iterative else 0
    out = []
    for r in m["rows"]:
        out.append({
            "family": m["family"], "dataset": ident["dataset"], "model": ident["model"], "method": method,
            "scope": m["scope"], "extra": extra, "level": k, "target_sparsity": target,
            "realized_sparsity": m["realized_sparsity"], "mask_sparsity": m.get("mask_sparsity", 0.0),
            "round": round_, "seed": ident["seed"],
            "fold": ident["fold"], "split": r["split"], "metric": r["metric"], "value": r["value"],
            "value_best_on_test": r.get("value_best_on_test"), "baseline": r.get("baseline"),
            "n": r.get("n"), "selection": m["selection"]["rule"], "signature": m.get("signature", ""),
            "wall_time_s": m.get("wall_time_s"), "peak_mem_mb": m.get("peak_mem_mb"),
            "rss_at_start_mb": m.get("rss_at_start_mb"), "mask_wall_time_s": m.get("mask_wall_time_s"),
            "git_revision": m.get("git_revision", ""), "config_hash": m.get("config_hash", ""),
            "run_dir": run_dir,
        })
    return out, m["primary_metric"]


def collect(metrics_paths: list[Path], out_csv: Path, extras: dict[str, str] | None = None) -> tuple[int, dict]:
    """Write the results table from run metrics, and every run's per-tensor sparsity to
    ``layerwise.csv`` beside it; returns (number of rows, primary metric per dataset)."""
    extras = extras or {}
    missing = [str(p) for p in metrics_paths if not Path(p).exists()]
    if missing:
        raise ResultsError(f"{len(missing)} run(s) have no metrics.json, e.g. {missing[:3]}")
    rows, primary, layer_rows, no_layers = [], {}, [], []
    for p in metrics_paths:
        m = read_metrics(Path(p))
        run_dir = str(Path(p).parent)
        run_rows, primary_metric = rows_of_run(Path(p), extras.get(run_dir, "main"), m)
        rows.extend(run_rows)
        if run_rows:
            primary[run_rows[0]["dataset"]] = primary_metric
        layers = layerwise_of_run(m, run_dir)
        if layers is None:
            no_layers.append(str(p))
        else:
            layer_rows.extend(layers)
    no_n = sorted({r["dataset"] for r in rows if r.get("n") is None and r["split"] != "validation"})
    if no_n:
        print(f"warning: rows without n (number of examples scored) for dataset(s) {', '.join(no_n)}; "
              "their tasks should report it", file=sys.stderr)
    if no_layers:
        print(f"warning: {len(no_layers)} metrics.json without per-tensor sparsity (key 'layerwise'; written "
              f"by an older smcbench), e.g. {no_layers[0]}: those runs are missing from layerwise.csv and the "
              "layerwise figure; rerun those jobs to add them", file=sys.stderr)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(out_csv.with_name("layerwise.csv"), layer_rows, LAYERWISE_COLUMNS)
    write_csv_atomic(out_csv, rows, COLUMNS)
    return len(rows), primary
