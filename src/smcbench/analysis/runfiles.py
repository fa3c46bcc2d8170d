"""Per-run files: layerwise sparsity, mask IoU between methods, dense weight drift, and cost.

Every function returns a tidy DataFrame plus a list of the files it could not read, so the CLI can
warn with their names instead of leaving a silent gap.

Definitions:

* **Layerwise sparsity** of a tensor = 1 − kept/numel from the suite's ``layerwise.csv`` (every
  run's per-tensor rows, gathered by the results step from each run's metrics.json); a point is
  the mean over seeds and folds of the same (dataset, model, method, level, tensor).
* **Mask IoU** of two masks on one tensor = |A ∩ B| / |A ∪ B| over the *kept* weights (True
  entries), for two methods at the same level, seed and fold (seed-matched). ``all layers`` is
  the micro-average Σ|A∩B| / Σ|A∪B| over the tensors both masks have. ``iou_random`` is what two
  independent uniformly random masks of the same densities would give:
  d_A·d_B / (d_A + d_B − d_A·d_B).
* **Weight drift** of a tensor = ‖θ_ft − θ_pre‖ / ‖θ_pre‖ (``rel_drift`` of the dense run's
  ``drift.csv``), averaged over seeds and folds.
* **Cost** of a run = the training job's own wall time and peak memory as the job measured them
  (``wall_time_s`` / ``peak_mem_mb`` of its metrics.json, carried by results.csv; ``source`` =
  ``metrics.json``, or ``none`` for a run without them). ``mem_growth_mb`` = peak minus the
  job's RSS at its start: a job forked from the warm job server starts with the server's image
  (every family and the analysis stack imported), so its peak is larger than a cold job's, while
  the growth is what the training itself needed. A before-training mask is computed inside
  the train job and is part of its time (``mask_wall_time_s`` says how much).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .data import DENSE, MAIN, RUN_KEYS, resolve_run_dir, unique_runs

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _runs(df, root, where):
    runs = unique_runs(df, where)
    runs = runs.assign(path=[resolve_run_dir(root, d) for d in runs["run_dir"]])
    return runs


# --- layerwise -----------------------------------------------------------------------------------

LAYERWISE_NEED = ["run_dir", "order", "name", "numel", "kept", "sparsity"]


def read_layerwise(path: str | Path) -> tuple["pd.DataFrame", str | None]:
    """The suite's ``layerwise.csv`` (written by the results step), and what is wrong with it (None
    when nothing is): a missing or malformed file gives an empty table and a message naming the fix."""
    import pandas as pd

    path = Path(path)
    empty = pd.DataFrame(columns=LAYERWISE_NEED)
    fix = "rerun the results step (`snakemake -R results`, or `python -m smcbench results`) to write it"
    if not path.is_file():
        return empty, f"{path} not found: no per-tensor sparsity; {fix}"
    lw = pd.read_csv(path)
    missing = [c for c in LAYERWISE_NEED if c not in lw.columns]
    if missing:
        return empty, f"{path} has no column(s) {missing} (columns {sorted(lw.columns)}); {fix}"
    return lw, None


def _by_run(layers: "pd.DataFrame | None") -> dict:
    """run_dir -> that run's rows of the layerwise table."""
    if layers is None or not len(layers):
        return {}
    return {str(k): g for k, g in layers.groupby("run_dir", sort=False)}


def layerwise_table(df: "pd.DataFrame", levels: list[int], layers: "pd.DataFrame | None"):
    """Per (dataset, model, method, level, tensor) the mean/std layer sparsity over seeds and folds
    of the main grid's sparse runs at ``levels``, from ``layers`` (the suite's layerwise.csv, see
    :func:`read_layerwise`). Returns (table, runs without rows in it)."""
    import pandas as pd

    runs = unique_runs(df, (df["extra"] == MAIN) & (df["method"] != DENSE) & df["level"].isin(levels))
    per_run = _by_run(layers)
    parts, bad = [], []
    for r in runs.itertuples():
        lw = per_run.get(str(r.run_dir))
        if lw is None:
            bad.append(f"{r.run_dir} ({r.dataset}/{r.model}/{r.method}/k={r.level}/seed{r.seed}: no rows)")
            continue
        lw = lw.drop(columns=["run_dir"]).assign(
            dataset=r.dataset, model=r.model, method=r.method, scope=r.scope, level=r.level,
            target_sparsity=r.target_sparsity, seed=r.seed, fold=r.fold)
        parts.append(lw)
    cols = ["dataset", "model", "method", "scope", "level", "target_sparsity", "order", "name", "numel",
            "sparsity_mean", "sparsity_std", "n_runs"]
    if not parts:
        return pd.DataFrame(columns=cols), bad
    all_ = pd.concat(parts, ignore_index=True)
    g = all_.groupby(["dataset", "model", "method", "scope", "level", "target_sparsity", "order", "name"],
                     sort=True)
    out = g.agg(numel=("numel", "first"), sparsity_mean=("sparsity", "mean"),
                sparsity_std=("sparsity", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
                n_runs=("sparsity", "size")).reset_index()
    return out[cols], bad


# --- mask IoU ------------------------------------------------------------------------------------

def _mask_names(path: Path) -> list[str]:
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        return json.loads(meta["names"]) if "names" in meta else list(f.keys())


def _flat_bits(handle, name: str):
    """One tensor of a mask file as a flat bool tensor: bit-packed files
    (:data:`smcbench.sparsity.mask.PACKED_FORMAT`) are unpacked, older files hold bool tensors."""
    import json

    import numpy as np
    import torch

    from smcbench.sparsity.mask import PACKED_FORMAT

    t = handle.get_tensor(name)
    meta = handle.metadata() or {}
    if meta.get("format") == PACKED_FORMAT:
        shape = json.loads(meta["shapes"])[name]
        numel = int(np.prod(shape)) if len(shape) else 1
        return torch.from_numpy(np.unpackbits(t.numpy(), count=numel).astype(bool))
    return t.bool().flatten()


def _layer_order(rows: "pd.DataFrame | None", names: list[str]) -> dict[str, int]:
    """Tensor order from the run's rows of the layerwise table (input → output), else the mask
    file's order."""
    if rows is not None and len(rows):
        order = dict(zip(rows["name"], rows["order"].astype(int)))
        if all(n in order for n in names):
            return order
    return {n: i for i, n in enumerate(names)}


#: Elements per chunk of the pairwise count: float32 counts stay exact below 2**24.
IOU_CHUNK = 1 << 22


def mask_iou(paths: dict[str, Path]) -> "pd.DataFrame":
    """Per-tensor IoU of every pair of masks in ``paths`` (method -> mask.safetensors).

    Tensors are streamed one at a time (a paper-scale mask is hundreds of MB), so memory stays at
    one tensor per method. All pairwise intersections of a tensor come from one product X·Xᵀ of
    the stacked 0/1 masks per chunk (|A ∪ B| = |A| + |B| − |A ∩ B|). Columns: method_a, method_b,
    name, numel, intersection, union, density_a, density_b, iou, iou_random.
    """
    import pandas as pd
    import torch
    from safetensors import safe_open

    names = {m: _mask_names(p) for m, p in paths.items()}
    methods = list(paths)
    sets = {m: set(v) for m, v in names.items()}
    common = [n for n in names[methods[0]] if all(n in sets[m] for m in methods)] if methods else []
    rows = []
    with contextlib.ExitStack() as stack:
        handles = {m: stack.enter_context(safe_open(str(p), framework="pt", device="cpu")) for m, p in paths.items()}
        for name in common:
            ts = [_flat_bits(handles[m], name) for m in methods]
            if len({t.numel() for t in ts}) != 1:
                continue
            n = ts[0].numel()
            inter = torch.zeros(len(methods), len(methods), dtype=torch.float64)
            for lo in range(0, n, IOU_CHUNK):
                x = torch.stack([t[lo:lo + IOU_CHUNK] for t in ts]).to(torch.float32)
                inter += (x @ x.T).to(torch.float64)
            kept = inter.diagonal().clone()
            for i, j in itertools.combinations(range(len(methods)), 2):
                it = int(round(float(inter[i, j])))
                union = int(round(float(kept[i] + kept[j]))) - it
                da, db = float(kept[i]) / n, float(kept[j]) / n
                denom = da + db - da * db
                rows.append(dict(method_a=methods[i], method_b=methods[j], name=name, numel=n, intersection=it,
                                 union=union, density_a=da, density_b=db,
                                 iou=it / union if union else float("nan"),
                                 iou_random=da * db / denom if denom > 0 else float("nan")))
    return pd.DataFrame(rows, columns=["method_a", "method_b", "name", "numel", "intersection", "union",
                                       "density_a", "density_b", "iou", "iou_random"])


def iou_table(df: "pd.DataFrame", levels: list[int], root: str | Path = ".", layers: "pd.DataFrame | None" = None):
    """Per-tensor IoU between methods at the same level, seed and fold (main grid, ``levels``),
    averaged over seeds/folds; plus a row ``name = "(all layers)"`` with the micro-average.
    Tensors are ordered by ``layers`` (the suite's layerwise.csv), else by the mask file.

    Returns (table, unreadable paths). Columns: dataset, model, level, target_sparsity, method_a,
    method_b, order, name, numel, iou, iou_random, n_pairs.
    """
    import pandas as pd

    runs = _runs(df, root, (df["extra"] == MAIN) & (df["method"] != DENSE) & df["level"].isin(levels))
    per_run = _by_run(layers)
    parts, bad = [], []
    for (ds, model, level, seed, fold), g in runs.groupby(["dataset", "model", "level", "seed", "fold"], sort=True):
        paths, first = {}, None
        for r in g.itertuples():
            f = r.path / "mask.safetensors" if r.path is not None else None
            if f is None or not f.is_file():
                bad.append(str(f) if f else f"{ds}/{model}/{r.method}/k={level}/seed{seed}: empty run_dir")
                continue
            if r.method not in paths:
                paths[r.method] = f
                first = first if first is not None else str(r.run_dir)
        if len(paths) < 2:
            continue
        t = mask_iou(paths)
        if t.empty:
            continue
        order = _layer_order(per_run.get(first), list(dict.fromkeys(t["name"])))
        t["order"] = t["name"].map(order)
        tot = t.groupby(["method_a", "method_b"], sort=False).agg(
            intersection=("intersection", "sum"), union=("union", "sum"), numel=("numel", "sum")).reset_index()
        dens = t.assign(ka=t["density_a"] * t["numel"], kb=t["density_b"] * t["numel"]).groupby(
            ["method_a", "method_b"], sort=False)[["ka", "kb"]].sum().reset_index()
        tot = tot.merge(dens, on=["method_a", "method_b"])
        da, db = tot["ka"] / tot["numel"], tot["kb"] / tot["numel"]
        tot["iou"] = tot["intersection"] / tot["union"].where(tot["union"] > 0)
        tot["iou_random"] = da * db / (da + db - da * db)
        tot["name"], tot["order"] = "(all layers)", -1
        t = pd.concat([t, tot[t.columns.intersection(tot.columns)]], ignore_index=True)
        t = t.assign(dataset=ds, model=model, level=level, target_sparsity=float(g["target_sparsity"].iloc[0]),
                     seed=seed, fold=fold)
        parts.append(t)
    cols = ["dataset", "model", "level", "target_sparsity", "method_a", "method_b", "order", "name",
            "numel", "iou", "iou_random", "n_pairs"]
    if not parts:
        return pd.DataFrame(columns=cols), bad
    all_ = pd.concat(parts, ignore_index=True)
    out = all_.groupby(["dataset", "model", "level", "target_sparsity", "method_a", "method_b", "order", "name"],
                       sort=True).agg(numel=("numel", "first"), iou=("iou", "mean"),
                                      iou_random=("iou_random", "mean"), n_pairs=("iou", "size")).reset_index()
    return out[cols], bad


# --- weight drift --------------------------------------------------------------------------------

_FRESH = re.compile(r"(^|\.)(classifier|classification_heads?|pooler|head|heads|lm_head|score|qa_outputs)(\.|$)")


def no_pretrained_value(name: str, family: str | None = None) -> bool:
    """Name rule for tensors that start from a fresh init rather than the pre-trained checkpoint
    (used when drift.csv has no ``from_pretrained`` column): classification heads and poolers in
    every family, and in the arithmetic family everything outside the pre-trained RoBERTa embedder
    (``roberta.*``): the LSTM encoder and the GTS / Graph2Tree tree decoder are trained from scratch."""
    if _FRESH.search(name):
        return True
    if family == "arithmetic":
        return not name.startswith("roberta.")
    return False


def drift_table(df: "pd.DataFrame", root: str | Path = "."):
    """Per (dataset, model, tensor) the mean/std over seeds and folds of the dense fine-tune's
    relative drift ‖θ_ft − θ_pre‖/‖θ_pre‖, and ``from_pretrained`` (the tensor had a pre-trained
    value: from drift.csv's column when present, else :func:`no_pretrained_value`;
    ``pretrained_source`` says which). Returns (table, unreadable paths)."""
    import pandas as pd

    runs = _runs(df, root, (df["extra"] == MAIN) & (df["method"] == DENSE))
    parts, bad = [], []
    for r in runs.itertuples():
        f = r.path / "drift.csv" if r.path is not None else None
        if f is None or not f.is_file():
            bad.append(str(f) if f else f"{r.dataset}/{r.model}/dense/seed{r.seed}: empty run_dir")
            continue
        d = pd.read_csv(f)
        need = {"order", "name", "numel", "rel_drift"}
        if not need <= set(d.columns):
            bad.append(f"{f} (columns {sorted(d.columns)}, need {sorted(need)})")
            continue
        if "from_pretrained" in d.columns:
            fp = d["from_pretrained"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))
            d = d.assign(from_pretrained=fp, pretrained_source="drift.csv")
        else:
            d = d.assign(from_pretrained=[not no_pretrained_value(n, r.family) for n in d["name"]],
                         pretrained_source="name rule")
        parts.append(d.assign(dataset=r.dataset, model=r.model, seed=r.seed, fold=r.fold))
    cols = ["dataset", "model", "order", "name", "numel", "rel_drift_mean", "rel_drift_std", "n_runs",
            "from_pretrained", "pretrained_source"]
    if not parts:
        return pd.DataFrame(columns=cols), bad
    all_ = pd.concat(parts, ignore_index=True)
    out = all_.groupby(["dataset", "model", "order", "name"], sort=True).agg(
        numel=("numel", "first"), rel_drift_mean=("rel_drift", "mean"),
        rel_drift_std=("rel_drift", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
        n_runs=("rel_drift", "size"), from_pretrained=("from_pretrained", "all"),
        pretrained_source=("pretrained_source", "first")).reset_index()
    return out[cols], bad


# --- cost ----------------------------------------------------------------------------------------

def cost_runs(df: "pd.DataFrame"):
    """One row per run (every extra): wall_s, peak_mem_mb, source (``metrics.json`` = the job's
    own numbers via results.csv, ``none``), and the before-training mask's part of the job:
    mask_wall_s and mask_source (``in train job``, ``not recorded``, or empty for methods without
    one). Returns (table, runs without any cost record)."""
    import pandas as pd

    from smcbench.sparsity.registry import METHODS

    runs = unique_runs(df)
    rows, bad = [], []
    for r in runs.itertuples():
        if r.wall_time_s == r.wall_time_s:  # not NaN: the job's own record
            wall, mem, src = float(r.wall_time_s), float(r.peak_mem_mb), "metrics.json"
            start = float(getattr(r, "rss_at_start_mb", float("nan")))
        else:
            wall, mem, src, start = float("nan"), float("nan"), "none", float("nan")
            bad.append(str(r.run_dir) if str(r.run_dir) not in ("", "nan") else f"{r.dataset}/{r.model}/{r.method}/k={r.level}")
        info = METHODS.get(r.method)
        m_wall, m_src = float("nan"), ""
        if info is not None and getattr(info, "init_mask_from", None):
            if r.mask_wall_time_s == r.mask_wall_time_s:
                m_wall, m_src = float(r.mask_wall_time_s), "in train job"
            else:
                m_src = "not recorded"
        # (for other methods a recorded mask_wall_time_s is the method's set-up time, no mask cost)
        rows.append({**{k: getattr(r, k) for k in RUN_KEYS}, "run_dir": r.run_dir, "wall_s": wall,
                     "peak_mem_mb": mem, "mem_growth_mb": mem - start, "source": src, "mask_wall_s": m_wall,
                     "mask_source": m_src})
    cols = RUN_KEYS + ["run_dir", "wall_s", "peak_mem_mb", "mem_growth_mb", "source", "mask_wall_s", "mask_source"]
    return pd.DataFrame(rows, columns=cols), bad


def cost_summary(runs: "pd.DataFrame") -> "pd.DataFrame":
    """Per (dataset, model, method, extra): number of runs, job hours (the train jobs' wall time;
    a before-training mask is inside it), mean wall seconds per run, max peak memory and max
    memory growth over the job's start.
    ``job_hours`` of a GPU method is its GPU-hours on a one-GPU-per-job cluster."""
    import pandas as pd

    g = runs.groupby(["dataset", "model", "method", "extra"], sort=True)
    out = g.agg(n_runs=("wall_s", "size"), train_s=("wall_s", "sum"),
                mean_wall_s=("wall_s", "mean"), max_peak_mem_mb=("peak_mem_mb", "max"),
                max_mem_growth_mb=("mem_growth_mb", "max"),
                sources=("source", lambda s: ",".join(sorted(set(s)))),
                mask_sources=("mask_source", lambda s: ",".join(sorted(set(x for x in s if x))))).reset_index()
    out["job_hours"] = out["train_s"] / 3600.0
    return pd.DataFrame(out[["dataset", "model", "method", "extra", "n_runs", "job_hours", "mean_wall_s",
                             "max_peak_mem_mb", "max_mem_growth_mb", "sources", "mask_sources"]])


def cumulative_cost(runs: "pd.DataFrame") -> "pd.DataFrame":
    """Wall seconds needed to obtain each run's model, prerequisites included: methods starting
    from the dense fine-tune add the same seed's/fold's dense run, IMP round k adds rounds < k
    (and the dense run), as the registry's ``start_from`` says. Adds column ``cum_wall_s``."""
    from smcbench.sparsity.registry import METHODS

    key = ["dataset", "model", "scope", "seed", "fold"]
    dense = {tuple(r[k] for k in key[:2] + key[3:]): r["wall_s"]
             for _, r in runs[(runs["method"] == DENSE) & (runs["extra"] == MAIN)].iterrows()}
    own = {(r["dataset"], r["model"], r["method"], r["scope"], r["extra"], r["seed"], r["fold"], int(r["level"])): r["wall_s"]
           for _, r in runs.iterrows()}
    cum = []
    for _, r in runs.iterrows():
        info = METHODS.get(r["method"])
        base = dense.get((r["dataset"], r["model"], r["seed"], r["fold"]), 0.0)
        total = r["wall_s"]
        if info is not None and info.start_from == "dense":
            total += base
        elif info is not None and info.start_from == "previous_round":
            total += base
            for k in range(1, int(r["level"])):
                total += own.get((r["dataset"], r["model"], r["method"], r["scope"], r["extra"], r["seed"], r["fold"], k), 0.0)
        cum.append(total)
    return runs.assign(cum_wall_s=cum)
