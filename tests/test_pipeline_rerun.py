"""Change one method's setting → `snakemake -n` plans only that method's jobs plus the aggregates.

Outputs are faked (empty files + `snakemake --touch` to record metadata), so nothing trains; what
is tested is the DAG and the params each job receives.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [str(Path(sys.executable).with_name("snakemake"))]

MINI = {
    "suite": "mini",
    "seeds": [0],
    "levels": [1, 2],
    "methods": {"dense": {}, "lth": {"prune_fraction": 0.2}, "omp_after": {}, "gmp": {"t0": 0.1, "t1": 0.8, "delta_t": 10},
                "snip": {"num_batches": 1}, "snip+rigl": {"delta_t": 10, "alpha": 0.5, "alpha_min": 0.005}},
    "datasets": {"d1": {"family": "commonsense", "source": "synthetic", "models": ["m1"], "scope": "paper",
                        "settings": {"variant": "easy"}, "training": {"lr": 0.1, "epochs": 1}}},
    "models": {"m1": {"family": "commonsense", "arch": "roberta_mc", "source": "synthetic"}},
}


def smk(workdir: Path, config: Path, *args: str) -> str:
    cmd = SNAKEMAKE + ["-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
                       "-c1", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def trained_methods(output: str) -> set[str]:
    """Methods whose training jobs the dry run plans (from the jobs' `output:` lines)."""
    return set(re.findall(r"^\s*output: results/mini/runs/d1/all/m1/([\w+]+)/paper/s0\.\d+/seed0/metrics\.json",
                          output, flags=re.M))


def planned(output: str) -> dict[str, int]:
    """Job counts from the 'Job stats' table of a dry run."""
    counts, in_table = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats"):
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            elif line.strip() == "" and counts:
                break
    return counts


@pytest.fixture(scope="module")
def done_workflow(tmp_path_factory):
    """A workflow whose every output exists with recorded metadata (nothing to do)."""
    work = tmp_path_factory.mktemp("wf")
    cfg = work / "mini.yaml"
    cfg.write_text(yaml.safe_dump(MINI))
    summary = smk(work, cfg, "all", "--summary")
    for line in summary.splitlines()[1:]:
        path = line.split("\t")[0].strip()
        if path.startswith("results/"):
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).touch()
    smk(work, cfg, "all", "--touch", "-q")
    assert "Nothing to be done" in smk(work, cfg, "all", "-n") or planned(smk(work, cfg, "all", "-n")) == {}
    return work


def test_changing_one_method_plans_only_its_jobs(done_workflow, tmp_path):
    changed = yaml.safe_load(yaml.safe_dump(MINI))
    changed["methods"]["gmp"]["delta_t"] = 20
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(yaml.safe_dump(changed))
    out = smk(done_workflow, cfg, "all", "-n")
    assert planned(out) == {"train": 2, "results": 1, "all": 1}
    assert trained_methods(out) == {"gmp"}


def test_changing_an_init_method_reruns_its_masks_and_both_users(done_workflow, tmp_path):
    changed = yaml.safe_load(yaml.safe_dump(MINI))
    changed["methods"]["snip"]["num_batches"] = 4
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(yaml.safe_dump(changed))
    out = smk(done_workflow, cfg, "all", "-n")
    counts = planned(out)
    assert counts["mask"] == 2  # the SNIP mask at both levels, shared by snip and snip+rigl
    assert counts["train"] == 4  # snip and snip+rigl at both levels, nothing else
    assert trained_methods(out) == {"snip", "snip+rigl"}


def test_reordering_keys_changes_nothing(done_workflow, tmp_path):
    reordered = dict(MINI)
    reordered["methods"] = {k: dict(reversed(list((v or {}).items()))) for k, v in reversed(list(MINI["methods"].items()))}
    cfg = tmp_path / "reordered.yaml"
    cfg.write_text(yaml.safe_dump(reordered, sort_keys=False))
    out = smk(done_workflow, cfg, "all", "-n")
    assert planned(out).get("train", 0) == 0 and planned(out).get("dense", 0) == 0


def test_slurm_profile_with_the_placeholder_account_is_refused_while_planning(tmp_path):
    cfg = tmp_path / "mini.yaml"
    cfg.write_text(yaml.safe_dump(MINI))
    cmd = SNAKEMAKE + ["-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(cfg),
                       "--profile", str(ROOT / "profiles/slurm"), "-n", "all"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0
    assert "set default-resources.slurm_account to your SLURM account" in out.stdout + out.stderr
