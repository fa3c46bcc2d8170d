"""The Quickstart's own path: `make demo` → `python -m smcbench demo` → Snakemake.

A dry run through the real entry point (same argument list as `make demo`, plus `-n` after `--`)
catches argument errors such as a greedy option swallowing the target, without training anything.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_demo_calls_the_demo_entry_point():
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe, "Makefile has no demo target"
    assert "-m smcbench demo" in recipe.group(1)


def test_demo_entry_point_dry_run_plans_every_figure(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "smcbench", "demo", "--cores", "1", "--",
                          "-n", "--directory", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "invalid choice" not in text
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", text, flags=re.M))
    # the target survived the argument list and every stage of the pipeline is planned
    assert stats.get("all_figures") == "1", text[-3000:]
    for rule in ("download_dataset", "prepare", "pretrained", "dense", "train", "train_imp", "results"):
        assert int(stats.get(rule, 0)) > 0, f"{rule} not planned:\n{text[-3000:]}"
    assert not (tmp_path / "results").exists()  # a dry run writes no results
