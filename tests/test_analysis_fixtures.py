"""Synthetic suites for the analysis tests: a results.csv and the suite's layerwise.csv (every
run's per-tensor sparsity) plus fake run folders holding mask.safetensors (sparse runs) and
drift.csv (dense runs).

``make_suite(tmp_path, ...)`` returns the suite folder; the other analysis test files import it.
The values follow a known formula so the tests can assert exact numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from smcbench.sparsity.mask import Mask

LAYERS = [("roberta.embeddings.word_embeddings.weight", (16, 8)),
          ("roberta.encoder.layer.0.attention.self.query.weight", (8, 8)),
          ("roberta.encoder.layer.0.intermediate.dense.weight", (12, 8)),
          ("classifier.weight", (3, 8))]

COLUMNS = ["family", "dataset", "model", "method", "scope", "extra", "level", "target_sparsity",
           "realized_sparsity", "round", "seed", "fold", "split", "metric", "value", "value_best_on_test",
           "baseline", "n", "selection", "signature", "wall_time_s", "peak_mem_mb", "rss_at_start_mb",
           "mask_wall_time_s", "git_revision", "config_hash", "run_dir"]


def target(k: int) -> float:
    return round(1 - 0.8 ** k, 6)


def default_value(ds, method, k, seed, fold, split):
    """Dense 80 (+seed*0.2); every sparse method loses 0.5 point per level, random_after 2."""
    if method == "dense":
        return 80.0 + 0.2 * seed
    slope = 2.0 if method.startswith("random") else 0.5
    return 80.0 - slope * k + 0.1 * seed


def _magnitude_mask(method: str, k: int, seed: int) -> Mask:
    """A global-magnitude mask of a seeded weight set; random_* methods use random scores."""
    g = torch.Generator().manual_seed(1000 * seed + (7 if method.startswith("random") else 0))
    scores = {n: torch.randn(*shape, generator=g).abs() for n, shape in LAYERS}
    flat = torch.cat([s.flatten() for s in scores.values()])
    n_prune = int(round(target(k) * flat.numel()))
    order = torch.argsort(flat, stable=True)
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[order[:n_prune]] = False
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i:i + s.numel()].view_as(s).clone()
        i += s.numel()
    return Mask(out)


def write_run(run: Path, method: str, k: int, seed: int, mask: Mask | None = None) -> tuple[float, list[dict]]:
    """Write a fake run folder; returns the realized sparsity and the run's per-tensor rows (as a
    training job records them in metrics.json under ``layerwise``)."""
    run.mkdir(parents=True, exist_ok=True)
    if method == "dense":
        pd.DataFrame([{"order": i, "name": n, "numel": torch.Size(s).numel(), "rel_drift": 0.01 * (i + 1) * (1 + 0.1 * seed)}
                      for i, (n, s) in enumerate(LAYERS)]).to_csv(run / "drift.csv", index=False)
        rows = [{"name": n, "shape": "x".join(map(str, s)), "numel": torch.Size(s).numel(),
                 "kept": torch.Size(s).numel(), "sparsity": 0.0} for n, s in LAYERS]
        realized = 0.0
    else:
        mask = mask or _magnitude_mask(method, k, seed)
        mask.save(run / "mask.safetensors")
        rows = mask.layerwise()
        realized = mask.sparsity()
    keys = ["name", "shape", "numel", "kept", "sparsity"]
    return realized, [{"order": i, **{key: r[key] for key in keys}} for i, r in enumerate(rows)]


def make_suite(tmp: Path, datasets=None, methods=("dense", "omp_after", "random_after", "lth"),
               levels=(1, 2, 3), seeds=(0, 1), value=default_value, drop=(), extra_rows=(),
               tolerance=1.0, write_config=True, layerwise_levels=None, n=lambda ds, fold: 100) -> Path:
    """Write results/demo under ``tmp`` and return its path.

    ``datasets``: {name: {"family", "model", "splits": [...], "folds": [...], "counts": bool}}.
    ``drop``: (dataset, method, level, seed) tuples with no rows at all. ``extra_rows``: dicts of
    (dataset, method, scope, extra, level, target) for ablation-style runs (same value formula).
    ``n(dataset, fold)``: the ``n`` column (None: empty).
    """
    datasets = datasets or {"cs_easy": {"family": "commonsense", "model": "tiny_roberta", "splits": ["test"],
                                        "folds": ["all"], "counts": False}}
    suite = tmp / "results" / "demo"
    suite.mkdir(parents=True, exist_ok=True)
    rows, layers = [], []

    def add(ds, spec, method, scope, extra, k, tgt, seed):
        for fold in spec["folds"]:
            rel = Path("results/demo") / ds / spec["model"] / method / scope / extra / f"s{k}_{tgt}" / f"seed{seed}" / f"fold{fold}"
            realized, run_layers = write_run(tmp / rel, method, k, seed)
            layers.extend({"run_dir": str(rel), **r} for r in run_layers)
            for split in ["validation"] + spec["splits"]:
                v = value(ds, method, k, seed, fold, split)
                base = dict(family=spec["family"], dataset=ds, model=spec["model"], method=method, scope=scope,
                            extra=extra, level=k, target_sparsity=tgt, realized_sparsity=realized,
                            round=k if method in ("lth", "imp_lrr") else 0, seed=seed, fold=fold, split=split,
                            value_best_on_test=v + 0.5, baseline=33.3, n=n(ds, fold), selection="best_validation",
                            signature="acc", wall_time_s=61.0, peak_mem_mb=500.0, rss_at_start_mb=380.0,
                            git_revision="abc",
                            config_hash="h", run_dir=str(rel))
                metric = "value_accuracy" if spec.get("counts") else "accuracy"
                rows.append({**base, "metric": metric, "value": v})
                if spec.get("counts"):
                    total = 50 + 10 * int(fold)
                    correct = v / 100 * total
                    counts = {**base, "value_best_on_test": None}
                    rows.append({**counts, "metric": "value_correct", "value": correct})
                    rows.append({**counts, "metric": "value_total", "value": total})

    for ds, spec in datasets.items():
        for method in methods:
            for k in ([0] if method == "dense" else levels):
                for seed in seeds:
                    if (ds, method, k, seed) in drop:
                        continue
                    add(ds, spec, method, "paper", "main", k, 0.0 if k == 0 else target(k), seed)
    for e in extra_rows:
        spec = datasets[e["dataset"]]
        for seed in seeds:
            add(e["dataset"], spec, e["method"], e["scope"], e["extra"], e["level"], e["target"], seed)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(suite / "results.csv", index=False)
    pd.DataFrame(layers, columns=["run_dir", "order", "name", "shape", "numel", "kept", "sparsity"]).to_csv(
        suite / "layerwise.csv", index=False)
    primary = {ds: ("value_accuracy" if spec.get("counts") else "accuracy") for ds, spec in datasets.items()}
    (suite / "primary_metrics.json").write_text(json.dumps(primary))
    if write_config:
        cfg = {"suite": "demo", "seeds": list(seeds), "levels": list(levels), "matching_tolerance": tolerance,
               "run_methods": list(methods),
               "extra_runs": extra_runs_config(extra_rows),
               "analysis": {"layerwise_levels": list(layerwise_levels or levels)},
               "datasets": {ds: {"family": s["family"], "models": [s["model"]]} for ds, s in datasets.items()}}
        (suite / "config.json").write_text(json.dumps(cfg))
    return suite


def extra_runs_config(extra_rows) -> list[dict]:
    """The config ``extra_runs`` entries that describe ``extra_rows`` (one per extra and scope)."""
    out: dict = {}
    for e in extra_rows:
        entry = out.setdefault((e["extra"], e["scope"]), {"name": e["extra"], "datasets": [], "methods": [],
                                                          "scope": e["scope"], "levels": [], "targets": []})
        for key, v in (("datasets", e["dataset"]), ("methods", e["method"])):
            if v not in entry[key]:
                entry[key].append(v)
        if e["level"]:
            entry["levels"] = sorted(set(entry["levels"]) | {e["level"]})
        else:
            entry["targets"] = sorted(set(entry["targets"]) | {e["target"]})
    return [{k: v for k, v in entry.items() if v} for entry in out.values()]


def test_fixture_writes_a_consistent_suite(tmp_path):
    suite = make_suite(tmp_path)
    df = pd.read_csv(suite / "results.csv")
    # 1 dense + 3 methods x 3 levels, 2 seeds, 2 splits
    assert len(df) == (1 + 3 * 3) * 2 * 2
    run = tmp_path / df.loc[df["method"] == "omp_after", "run_dir"].iloc[0]
    m = Mask.load(run / "mask.safetensors")
    assert abs(m.sparsity() - df.loc[df["method"] == "omp_after", "realized_sparsity"].iloc[0]) < 1e-12
    assert not (run / "benchmark.tsv").exists() and not (run / "layerwise.csv").exists()
    lw = pd.read_csv(suite / "layerwise.csv")
    mine = lw[lw["run_dir"] == df.loc[df["method"] == "omp_after", "run_dir"].iloc[0]]
    assert list(mine["order"]) == [0, 1, 2, 3] and (mine["kept"] == [int(m[n].sum()) for n in mine["name"]]).all()
