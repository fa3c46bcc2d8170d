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


# --- `snakemake --profile slurm|local all_figures`, typed as is from the repo root ----------------
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake_from_root(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_profile_names_resolve_from_the_repo_root():
    """Snakemake looks a profile name up in the working directory: ./slurm and ./local must be
    profile folders (links into profiles/)."""
    for name in ("slurm", "local"):
        link = ROOT / name
        assert link.is_dir() and (link / "config.yaml").is_file(), f"./{name} is not a profile folder"
        assert link.resolve() == (ROOT / "profiles" / name).resolve()


def test_slurm_profile_by_name_stops_at_the_account_message():
    out = _snakemake_from_root("--profile", "slurm", "-n", "all_figures")
    text = out.stdout + out.stderr
    assert "no profile.yaml (or config.yaml) found" not in text
    assert out.returncode != 0
    assert "set default-resources.slurm_account to your SLURM account" in text, text[-2000:]


def test_local_profile_by_name_plans_the_workflow(tmp_path):
    out = _snakemake_from_root("--profile", "local", "-n", "--configfile", "workflow/configs/demo.yaml",
                               "--directory", str(tmp_path), "all_figures")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-2000:]
    assert re.search(r"Using profiles? local", text), text[-2000:]
    assert re.search(r"^all_figures\s+1$", text, flags=re.M), text[-2000:]


def test_the_workflow_is_lint_clean():
    out = _snakemake_from_root("--lint")
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "good condition" in text, text[-3000:]
