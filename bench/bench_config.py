"""Cost of config validation and of building every job's params (what planning pays per config
and per job, on top of Snakemake's own DAG work).

    .venv/bin/python bench/bench_config.py [--config config.yaml] [--repeat 5]

Prints the best of ``--repeat`` runs: ``validate_config`` on a fresh copy of the config, then
``train_params`` for every training run of the plan.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import yaml

from smcbench import config as C


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config.yaml"))
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    raw = yaml.safe_load(Path(a.config).read_text())
    C.validate_config(copy.deepcopy(raw))  # first call: imports
    validate, params = [], []
    runs: list = []
    for _ in range(a.repeat):
        cfg = copy.deepcopy(raw)
        t = time.perf_counter()
        C.validate_config(cfg)
        validate.append(time.perf_counter() - t)
        runs = list(C.iter_runs(cfg))
        t = time.perf_counter()
        for r in runs:
            C.train_params(cfg, r.dataset, r.model, r.method, r.scope, r.level)
        params.append(time.perf_counter() - t)
    print(f"validate_config: {min(validate) * 1e3:.0f} ms; train_params for {len(runs)} runs: "
          f"{min(params) * 1e3:.0f} ms ({min(params) / len(runs) * 1e6:.0f} us each)")


if __name__ == "__main__":
    main()
