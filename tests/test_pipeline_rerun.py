"""Rerun only what changed: one dry run per case on a finished mini workflow.

The workflow (Snakefile, workflow/, profiles/, src/) is copied into a temporary checkout, so a test
can edit the code the way a user would (one method's class, a family module, the loop, a rule's
shell string) and nothing else in the working tree affects the versions. Outputs are faked
(empty files + `snakemake --touch` to record metadata), so nothing trains: what is tested is which
jobs a dry run plans.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

MINI = {
    "suite": "mini",
    "seeds": [0],
    "levels": [1, 2],
    "methods": {"dense": {}, "lth": {"prune_fraction": 0.2}, "omp_after": {}, "gmp": {"t0": 0.1, "t1": 0.8, "delta_t": 10},
                "snip": {"num_batches": 1}, "snip+rigl": {"delta_t": 10, "alpha": 0.5, "alpha_min": 0.005}},
    "datasets": {"d1": {"family": "commonsense", "source": "synthetic", "models": ["m1"], "scope": "paper",
                        "settings": {"variant": "easy"}, "training": {"lr": 0.1, "epochs": 1}}},
    "models": {"m1": {"family": "commonsense", "arch": "roberta_mc", "source": "synthetic"}},
    "resources": {"train": {"gpu": 0, "threads": 1, "runtime": 10, "mem_mb": 1000}},
}
TRAINING_RULES = {"dense", "train", "train_imp", "mask"}
AGGREGATES = {"results", "all_figures"}


def copy_checkout(dest: Path) -> Path:
    for name in ("Snakefile", "workflow", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    shutil.copytree(ROOT / "src" / "smcbench", dest / "src" / "smcbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def smk(repo: Path, work: Path, config: dict, *args: str) -> str:
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(work), "--configfile", str(cfg), "-c1", *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(cmd, capture_output=True, text=True, env={**env, "HF_HUB_OFFLINE": "1"}, cwd=repo, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def planned(output: str) -> dict[str, int]:
    """Job counts from the 'Job stats' table of a dry run ({} when nothing is to be done)."""
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.M) if name != "total"}


def trained_methods(output: str) -> set[str]:
    """Methods whose training jobs the dry run plans (from the jobs' `output:` lines)."""
    return set(re.findall(r"^\s*output: results/mini/runs/d1/all/m1/([\w+]+)/(?:paper/s0\.\d+/)?seed0/metrics\.json",
                          output, flags=re.M))


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """(checkout, workdir) of a mini workflow whose every output exists with recorded metadata."""
    repo = copy_checkout(tmp_path_factory.mktemp("repo"))
    work = tmp_path_factory.mktemp("work")
    summary = smk(repo, work, MINI, "all_figures", "--summary")
    for line in summary.splitlines()[1:]:
        path = line.split("\t")[0].strip()
        if path.startswith("results/"):
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).touch()
    smk(repo, work, MINI, "all_figures", "--touch", "--forceall", "-q")  # every job records metadata
    assert planned(smk(repo, work, MINI, "all_figures", "-n")) == {}
    return repo, work


def dry_run(done, config=None) -> str:
    repo, work = done
    return smk(repo, work, config or MINI, "all_figures", "-n")


@contextlib.contextmanager
def edited(path: Path, old: str, new: str):
    """Edit a file of the copied checkout for the duration of a test."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
    try:
        yield
    finally:
        path.write_text(text)


def changed(**edits) -> dict:
    cfg = yaml.safe_load(yaml.safe_dump(MINI))
    for dotted, value in edits.items():
        node = cfg
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return cfg


# --- config edits ----------------------------------------------------------------------------------
def test_nothing_changed_plans_nothing(done):
    assert planned(dry_run(done)) == {}


def test_changing_one_method_setting_plans_only_its_jobs(done):
    out = dry_run(done, changed(methods__gmp__delta_t=20))
    assert trained_methods(out) == {"gmp"}
    assert planned(out)["train"] == 2 and set(planned(out)) - {"train"} <= AGGREGATES | {"analysis_cost", "analysis_curves",
        "analysis_drift", "analysis_embeddings", "analysis_iou", "analysis_layerwise", "analysis_matching",
        "analysis_modulewise", "analysis_obert"}


def test_changing_an_init_method_reruns_only_its_users(done):
    """SNIP's settings: the snip runs rerun (and snip+rigl where its params carry the SNIP
    settings its in-job mask uses); no other method, no mask job (masks are computed in-job)."""
    out = dry_run(done, changed(methods__snip__num_batches=4))
    assert "snip" in trained_methods(out) <= {"snip", "snip+rigl"}
    assert "mask" not in planned(out)


def test_reordering_keys_changes_nothing(done):
    reordered = dict(MINI)
    reordered["methods"] = {k: dict(reversed(list((v or {}).items()))) for k, v in reversed(list(MINI["methods"].items()))}
    assert planned(dry_run(done, reordered)) == {}


def test_cluster_resources_rerun_nothing(done):
    assert planned(dry_run(done, changed(resources__train__runtime=600))) == {}


def test_matching_tolerance_reruns_only_the_aggregates(done):
    counts = planned(dry_run(done, changed(matching_tolerance=2.5)))
    assert counts and not set(counts) & (TRAINING_RULES | {"prepare", "pretrained", "download_dataset"}), counts
    assert counts.get("results") == 1


# --- code edits ------------------------------------------------------------------------------------
def _method_class(name: str) -> tuple[Path, str]:
    from smcbench.sparsity.registry import METHODS

    module, cls = METHODS[name].cls.split(":")
    return Path(*module.split(".")).with_suffix(".py"), cls


def test_editing_one_method_class_reruns_only_its_jobs(done):
    repo, _ = done
    rel, cls = _method_class("gmp")
    path = repo / "src" / rel
    text = path.read_text()
    body_start = re.search(rf"^class {cls}\(.*\):\n(    \"\"\"(?:.|\n)*?\"\"\"\n)?", text, flags=re.M)
    assert body_start
    with edited(path, body_start.group(0), body_start.group(0) + "    _edited_here = True\n"):
        out = dry_run(done)
    assert trained_methods(out) == {"gmp"}, planned(out)
    assert planned(out)["train"] == 2


def test_editing_the_family_module_reruns_its_whole_pipeline(done):
    repo, _ = done
    from smcbench.tasks import FAMILIES

    module = FAMILIES["commonsense"]
    rel = Path(*module.split("."))
    path = repo / "src" / (rel.with_suffix(".py") if (ROOT / "src" / rel.with_suffix(".py")).is_file() else rel / "__init__.py")
    with edited(path, '"""', '"""Edited. ', ):
        counts = planned(dry_run(done))
    assert {"prepare", "pretrained", "dense", "train", "train_imp"} <= set(counts), counts
    assert "download_dataset" not in counts


def test_editing_the_training_loop_reruns_training_not_data(done):
    repo, _ = done
    with edited(repo / "src" / "smcbench" / "train.py", '"""', '"""Edited. '):
        counts = planned(dry_run(done))
    assert {"dense", "train", "train_imp"} <= set(counts), counts
    assert not {"prepare", "pretrained", "download_dataset", "download_model"} & set(counts), counts


def test_a_cosmetic_edit_of_a_rule_shell_string_reruns_nothing(done):
    repo, _ = done
    with edited(repo / "workflow" / "rules" / "train.smk", '"--threads {threads} --log {log} {params.job[starts]}',
                '"--threads {threads}  --log {log} {params.job[starts]}'):
        assert planned(dry_run(done)) == {}


def test_profiles_keep_the_rerun_triggers_without_code():
    """The workflow profile (applied to every run) sets the triggers; no other profile overrides them."""
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert sorted(default["rerun-triggers"]) == ["input", "mtime", "params", "software-env"]
    for name in ("slurm", "local", "ci-slurm"):
        assert "rerun-triggers" not in yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def test_slurm_profile_with_the_placeholder_account_is_refused_while_planning(tmp_path):
    cfg = tmp_path / "mini.yaml"
    cfg.write_text(yaml.safe_dump(MINI))
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(cfg),
           "--profile", str(ROOT / "profiles/slurm"), "-n", "all"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0
    assert "set default-resources.slurm_account to your SLURM account" in out.stdout + out.stderr


@pytest.mark.parametrize("where", ["dataset", "top"])
def test_a_config_typo_is_refused_with_did_you_mean_before_planning(tmp_path, where):
    """`snakemake -n` checks the config with smcbench's own validation first (not Snakemake's
    schema `validate`, whose message would be "Additional properties are not allowed")."""
    bad = yaml.safe_load(yaml.safe_dump(MINI))
    if where == "dataset":
        bad["datasets"]["d1"]["trainng"] = bad["datasets"]["d1"].pop("training")
        expected = "datasets.d1.trainng is not a setting; did you mean 'training'?"
    else:
        bad["trainng"] = {"lr": 0.1}
        expected = "trainng is not a top-level setting: did you mean datasets.<name>.training?"
    cfg = tmp_path / "typo.yaml"
    cfg.write_text(yaml.safe_dump(bad))
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(cfg), "-n", "all"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert expected in text, text[-2000:]
    assert "Additional properties are not allowed" not in text
