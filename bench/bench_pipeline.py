"""Pipeline costs that are not training: DAG planning and per-job start-up.

    .venv/bin/python bench/bench_pipeline.py [--repeats 3]

1. `snakemake -n` on the paper grid (config.yaml, every family): wall time of planning the DAG.
2. Per-job start-up of one demo step (`python -m smcbench prepare demo_cs_easy …`, which imports
   the commonsense family, i.e. torch + transformers): a cold process vs the warm job server
   (`smcbench serve`), interleaved, median of the repeats. The ratio is what the demo saves per job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"variant": "easy", "world_seed": 7, "n_train": 40, "n_test": 20, "validation_fraction": 0.2,
            "max_length": 32}


def timed(cmd, env, cwd=ROOT) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    snakemake = str(Path(sys.executable).with_name("snakemake"))

    with tempfile.TemporaryDirectory() as tmp:
        plan = [timed([snakemake, "-n", "-q", "--cores", "1", "-s", str(ROOT / "Snakefile"), "--directory", tmp,
                       "all_figures", "--configfile", str(ROOT / "config.yaml")], env) for _ in range(a.repeats)]
        out = subprocess.run([snakemake, "-n", "--cores", "1", "-s", str(ROOT / "Snakefile"), "--directory", tmp,
                              "all_figures", "--configfile", str(ROOT / "config.yaml")], env=env,
                             capture_output=True, text=True)
        jobs = next((line.split()[-1] for line in out.stdout.splitlines() if line.startswith("total")), "?")
    print(f"snakemake -n, paper grid ({jobs} jobs): median {statistics.median(plan):.2f} s over {a.repeats}")

    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "s.sock"
        server = subprocess.Popen([sys.executable, "-m", "smcbench", "serve", "--socket", str(sock)], env=env,
                                  stderr=subprocess.DEVNULL)
        while not sock.exists():
            time.sleep(0.05)
        step = [sys.executable, "-m", "smcbench", "prepare", "demo_cs_easy", "--source", "synthetic",
                "--settings", json.dumps(SETTINGS), "--out"]
        cold, warm = [], []
        for i in range(a.repeats):  # interleaved: both see the same machine load
            cold.append(timed(step + [f"{tmp}/cold{i}"], env))
            warm.append(timed(step + [f"{tmp}/warm{i}"], {**env, "SMCBENCH_SERVER": str(sock)}))
        server.terminate()
        server.wait()
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"one demo step (prepare demo_cs_easy): cold process {c:.2f} s, via warm server {w:.2f} s, "
          f"ratio {c / w:.1f}x")


if __name__ == "__main__":
    main()
