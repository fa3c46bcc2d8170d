"""Time and score one demo dataset of the arithmetic or protein family through the real code path
(prepare → pretrained → dense training → a second schedule from the dense weights), without
Snakemake: is dense at a plateau (the second schedule buys nothing), how far above the baseline,
and how many seconds each run takes.

    python bench/bench_demo_tasks.py demo_asdiv [--seeds 0 1] [--config workflow/configs/demo.yaml]
        [--method omp_after random_after] [--levels 1 10] [--work /tmp/smcbench-bench]

Prints one line per run: dataset, method, level, seed, test primary metric, baseline, wall and
CPU seconds of the ``run_training`` call (one thread), mean step time, and the selected step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def _quiet() -> None:
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    _quiet()
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--config", default="workflow/configs/demo.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--method", nargs="*", default=["omp_after"],
                    help="methods run from the dense weights after dense (none: only dense)")
    ap.add_argument("--levels", type=int, nargs="*", default=[1])
    ap.add_argument("--work", default="/tmp/smcbench-bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--zero-scope", action="store_true",
                    help="also evaluate the dense model with every weight of the dataset's scope zeroed "
                         "(no retraining): does the label live in the pruned weights?")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from smcbench import config as C
    from smcbench.tasks import family_module
    from smcbench.tasks.base import write_json_atomic
    from smcbench.train import RunSpec, run_training

    cfg = C.validate_config(C.load_config(a.config))
    d = cfg["datasets"][a.dataset]
    fam = family_module(d["family"])
    work = Path(a.work) / a.dataset
    folds = d.get("folds") or [None]
    for model in d["models"]:
        pre = Path(a.work) / "pretrained" / model
        if not (pre / "pretrained.json").is_file():
            t0 = time.perf_counter()
            info = fam.make_pretrained(model, cfg["models"][model], "synthetic", pre)
            write_json_atomic(pre / "pretrained.json", info)
            print(f"pretrained {model}: {time.perf_counter() - t0:.1f}s", flush=True)
        for fold in folds:
            data = work / f"data{'' if fold is None else fold}"
            t0 = time.perf_counter()
            meta = fam.prepare(a.dataset, "synthetic", data, dict(d.get("settings") or {}), fold=fold)
            write_json_atomic(data / "meta.json", meta)
            print(f"prepare {a.dataset} fold {fold}: {meta['counts']} {time.perf_counter() - t0:.2f}s", flush=True)
            for seed in a.seeds:
                runs = [("dense", "s0", None)] + [(m, C.level_tag(k), "dense") for m in a.method for k in a.levels]
                for method, level, start in runs:
                    scope = d.get("scope", "paper")
                    params = json.loads(C.train_params(cfg, a.dataset, model, method, scope, level))
                    params["config_hash"] = C.config_hash(params)
                    out = work / f"{model}-f{fold}-{method}-{level}-s{seed}"
                    sw = work / f"{model}-f{fold}-dense-s0-s{seed}" / "model.safetensors" if start else None
                    spec = RunSpec(params=params, data_dir=data, pretrained_dir=pre, out_dir=out, seed=seed,
                                   start_weights=sw, save_model=method == "dense", log=lambda m: None)
                    t0, c0 = time.perf_counter(), time.process_time()
                    run_training(spec)
                    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
                    m = json.loads((out / "metrics.json").read_text())
                    rows = [r for r in m["rows"] if r["split"].startswith("test")]
                    prim = m.get("primary_metric")
                    vals = {r["split"]: (r["value"], r.get("baseline")) for r in rows if r["metric"] == prim}
                    if a.zero_scope and method == "dense":
                        print(f"{a.dataset} {model} fold {fold} dense seed {seed}, scope {scope} zeroed: "
                              f"test={_zeroed_accuracy(d['family'], a.dataset, params, data, pre, out, seed, scope):.1f}",
                              flush=True)
                    print(f"{a.dataset} {model} fold {fold} {method} {level} seed {seed}: "
                          + " ".join(f"{s}={v:.1f} (baseline {b:.1f})" for s, (v, b) in vals.items())
                          + f"  {sec:.1f} s wall, {cpu:.1f} CPU s, {m.get('step_seconds', 0) * 1000:.0f} ms/step, "
                          f"best step {m['selection']['step']}/{m['selection']['total_steps']}", flush=True)
    return 0


def _zeroed_accuracy(family, dataset, params, data, pre, out, seed, scope) -> float:
    from safetensors.torch import load_file

    from smcbench.sparsity.scopes import resolve_scope
    from smcbench.tasks import task_class

    task = task_class(family)(dataset, params["task"], data, pre, seed)
    model = task.build_model()
    model.load_state_dict(load_file(str(out / "model.safetensors")), strict=False)
    weights = dict(model.named_parameters())
    with torch.no_grad():
        for name in resolve_scope(model, scope):
            weights[name].zero_()
    return task.evaluate(model, "test")[task.primary_metric]


if __name__ == "__main__":
    sys.exit(main())
