"""The rows of docs/bad-inputs.md: a bad input gets a clear error (naming the bad value and the
valid choices or the fix) before or at the start of the job, never a traceback deep in torch.

Each test is named after its row (rows of bad files name tests in their area's test files). Rows caught by ``validate_config`` (what the Snakefile runs
before planning any job) are checked there; rows caught only when a job starts are checked at
that entry point (``prepare``, ``make_pretrained``, the training loop, the SLURM plugin).
"""

from __future__ import annotations

import copy
import gc
import json
import math
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from smcbench import config as C

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "workflow" / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def demo_cfg() -> dict:
    return C.load_config(DEMO)


def rejects(cfg: dict, mutate, *fragments: str) -> str:
    """Apply ``mutate`` to a copy of ``cfg``; assert validate_config raises ConfigError whose
    message holds every fragment. Returns the message."""
    bad = copy.deepcopy(cfg)
    mutate(bad)
    with pytest.raises(C.ConfigError) as info:
        C.validate_config(bad)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


# --- names ------------------------------------------------------------------------------------
def test_unknown_method_name(demo_cfg):
    rejects(demo_cfg, lambda c: c["run_methods"].append("SNIP"), "'SNIP'", "known:", "snip+rigl")
    rejects(demo_cfg, lambda c: c["methods"].__setitem__("magnitude", {}), "'magnitude'", "omp_after")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].__setitem__("method_overrides", {"gmpp": {}}),
            "'gmpp'", "gmp")


def test_method_in_run_methods_without_settings(demo_cfg):
    def drop_gmp(c):
        del c["methods"]["gmp"]

    rejects(demo_cfg, drop_gmp, "'gmp'", "config.methods")


def test_unknown_scope_name(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].__setitem__("scope", "everything"),
            "'everything'", "paper", "no_embeddings")
    rejects(demo_cfg, lambda c: c["extra_runs"][0].__setitem__("scope", "modules:Q+X"), "Q+X", "FFN")


def test_unknown_dataset_name(demo_cfg):
    rejects(demo_cfg, lambda c: c["extra_runs"][0]["datasets"].append("csqa"), "'csqa'", "demo_cs_easy")


def test_unknown_dataset_name_for_its_family_loader(tmp_path, demo_cfg):
    """A config key the family has no loader for is refused at planning, and again when its
    prepare job starts."""
    from smcbench.tasks import family_module

    def rename(c):
        c["datasets"]["csqa_typo"] = dict(c["datasets"]["demo_cs_easy"], source=str(tmp_path))
        c["datasets"]["csqa_typo"]["settings"] = {}

    rejects(demo_cfg, rename, "datasets.csqa_typo.settings", "no commonsense loader for dataset 'csqa_typo'",
            "did you mean 'csqa'?")
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match=r"no commonsense loader for dataset 'csqa_typo' \(known: csqa"):
        family_module("commonsense").prepare("csqa_typo", str(tmp_path / "src"), tmp_path / "out", {})


def test_unknown_family_name(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].__setitem__("family", "commonsence"),
            "'commonsence'", "commonsense")


# --- levels, seeds, device ----------------------------------------------------------------------
@pytest.mark.parametrize("levels", [[0], [0.2], [21], [], "1,2", [True], [1, 1]])
def test_bad_levels(demo_cfg, levels):
    rejects(demo_cfg, lambda c: c.__setitem__("levels", levels), "level")


def test_bad_levels_per_dataset(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].__setitem__("levels", [-1]),
            "datasets.demo_cs_easy.levels")


@pytest.mark.parametrize("seeds", [[-1], [], [0.5], "0", [0, 0]])
def test_bad_seeds(demo_cfg, seeds):
    rejects(demo_cfg, lambda c: c.__setitem__("seeds", seeds), "seeds")


def test_bad_device_rejected_by_schema(demo_cfg):
    """The generated JSON schema (for editors and other tools) refuses it too."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    bad = copy.deepcopy(demo_cfg)
    bad["device"] = "gpu"
    with pytest.raises(WorkflowError, match="gpu"):
        validate(bad, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))


# --- typos: unknown keys (issue 13) -------------------------------------------------------------
@pytest.mark.parametrize("mutate, fragments", [
    (lambda c: c.update(trainng={"lr": 0.1}), ["trainng is not a top-level setting", "datasets.<name>.training"]),
    (lambda c: c.update(run_method=["dense"]), ["run_method is not a setting", "did you mean 'run_methods'?"]),
    (lambda c: c["datasets"]["demo_cs_easy"]["training"].update(warmup_step=5),
     ["datasets.demo_cs_easy.training.warmup_step is not a setting", "did you mean 'warmup_steps'?"]),
    (lambda c: c["datasets"]["demo_cs_easy"]["settings"].update(max_lenght=64),
     ["datasets.demo_cs_easy.settings.max_lenght is not a setting", "did you mean 'max_length'?"]),
    (lambda c: c["methods"]["dense"].update(nonsense_setting=1),
     ["methods.dense", "unknown setting 'nonsense_setting' for method 'dense'"]),
    (lambda c: c["models"]["demo_esm"]["settings"].update(hiden_size=8),
     ["models.demo_esm.settings.hiden_size is not a setting", "did you mean 'hidden_size'?"]),
])
def test_unknown_keys_are_errors_with_did_you_mean(demo_cfg, mutate, fragments):
    rejects(demo_cfg, mutate, *fragments)


# --- values every job would refuse, refused at planning (issue 16) ------------------------------
def test_prune_fraction_out_of_range(demo_cfg):
    from smcbench.sparsity.registry import build_method

    rejects(demo_cfg, lambda c: c["methods"]["lth"].update(prune_fraction=1.0),
            "methods.lth.prune_fraction=1.0", "(0.0, 1.0)")
    with pytest.raises(ValueError, match="prune_fraction"):  # the job refuses it too
        build_method("lth", {"prune_fraction": 1.0}).compute_mask(None)


def test_imp_prune_fraction_that_misses_the_levels(demo_cfg):
    """IMP round k reaches 1 - (1 - f)**k; the levels are 1 - 0.8**k, so f = 0.3 fails every round."""
    rejects(demo_cfg, lambda c: c["methods"]["lth"].update(prune_fraction=0.3),
            "method 'lth' at level 1", "prune_fraction=0.3", "0.2")
    def override(c):
        c.pop("extra_runs", None)
        c["datasets"]["demo_cs_easy"].update(run_methods=["dense", "imp_lrr"],
                                             method_overrides={"imp_lrr": {"prune_fraction": 0.3}})

    rejects(demo_cfg, override, "datasets.demo_cs_easy: method 'imp_lrr' at level 1", "prune_fraction=0.3")


def test_imp_at_a_target_it_cannot_reach(demo_cfg):
    """An iterative method at an explicit target runs one round: the target must be prune_fraction."""
    def target(c):
        c["extra_runs"] = [{"name": "x", "datasets": ["demo_cs_easy"], "methods": ["lth"], "targets": [0.05]}]

    rejects(demo_cfg, target, "extra_runs[0] on demo_cs_easy", "'lth' at target 0.05", "prune_fraction=0.2")


def test_folds_out_of_range(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_mawps"].update(folds=[7]),
            "datasets.demo_mawps.folds", "fold 7", "5-fold", "0..4")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].update(folds=[0]),
            "datasets.demo_cs_easy.folds", "no cross-validation folds")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_mawps"].pop("folds"),
            "datasets.demo_mawps.folds", "5-fold cross-validated")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_mawps"].update(folds=[0, 0]), "repeats a fold")


def test_validation_fraction_out_of_range(demo_cfg):
    from smcbench.tasks.arithmetic import carve_validation

    rejects(demo_cfg, lambda c: c["datasets"]["demo_mawps"]["settings"].update(validation_fraction=1.0),
            "datasets.demo_mawps.settings.validation_fraction=1.0", "(0, 1)")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"]["settings"].update(validation_fraction=1.0),
            "datasets.demo_cs_easy.settings.validation_fraction=1.0", "[0, 1)")
    with pytest.raises(ValueError, match="validation_fraction"):  # the job refuses it too
        carve_validation([{"id": 1}, {"id": 2}], 1.0, 0)


@pytest.mark.parametrize("key, value, fragment", [
    ("lr", "fast", "training.lr='fast' is not a number"),
    ("batch_size", 0, "training.batch_size=0 is out of range: must be >= 1"),
    ("epochs", 2.5, "training.epochs=2.5 is not an integer"),
    ("schedule", "cosin", "did you mean 'cosine'?"),
    ("betas", [0.9], "training.betas=[0.9]: needs exactly 2 items"),
    ("warmup_ratio", 1.5, "training.warmup_ratio=1.5 is out of range: must be in [0, 1]"),
])
def test_bad_training_values(demo_cfg, key, value, fragment):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"]["training"].update({key: value}),
            f"datasets.demo_cs_easy.training.{key}", fragment)


def test_step_schedule_without_a_step_size(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"]["training"].update(schedule="step"),
            "datasets.demo_cs_easy.training", "schedule 'step' needs step_size_epochs or step_size_steps > 0")


def test_gmp_t0_after_t1(demo_cfg):
    from smcbench.sparsity.registry import build_method

    rejects(demo_cfg, lambda c: c["methods"]["gmp"].update(t0=0.9, t1=0.1), "methods.gmp", "t0=0.9", "t1=0.1")
    with pytest.raises(ValueError, match="t0"):
        build_method("gmp", {"t0": 0.9, "t1": 0.1})


def test_rigl_alpha_and_delta_t_out_of_range(demo_cfg):
    from smcbench.sparsity.registry import build_method

    rejects(demo_cfg, lambda c: c["methods"]["snip+rigl"].update(alpha=2), "methods.snip+rigl.alpha=2", "1.0")
    rejects(demo_cfg, lambda c: c["methods"]["gmp"].update(delta_t=0), "methods.gmp.delta_t=0", "[1, inf]")
    rejects(demo_cfg, lambda c: c["methods"]["omp_before+rigl"].update(delta_t=0), "methods.omp_before+rigl.delta_t=0")
    for name, bad in (("snip+rigl", {"alpha": 2}), ("gmp", {"delta_t": 0})):
        with pytest.raises(ValueError):
            build_method(name, bad)


def test_dataset_or_model_name_with_a_slash(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"].update({"a/b": c["datasets"].pop("demo_protein5")}),
            "dataset name 'a/b'", "letters, digits, '-' and '_'")
    rejects(demo_cfg, lambda c: c["models"].update({"x y": c["models"]["demo_esm"]}), "model name 'x y'")


def test_empty_run_methods(demo_cfg):
    rejects(demo_cfg, lambda c: c.update(run_methods=[]), "run_methods is empty")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_mawps"].update(run_methods=[]),
            "datasets.demo_mawps.run_methods is empty")


def test_synthetic_dataset_and_model_from_different_worlds(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_mt_5to5"]["settings"].update(world_seed=8),
            "datasets.demo_mt_5to5.settings.world_seed=8", "models.demo_mbart.settings.world_seed=7", "same world")
    rejects(demo_cfg, lambda c: c["models"]["demo_roberta"]["settings"].update(n_people=50),
            "datasets.demo_cs_easy.settings.n_people=60", "n_people=50")


def test_model_the_dataset_cannot_use():
    cfg = C.load_config(ROOT / "config.yaml")
    rejects(cfg, lambda c: c["datasets"]["csqa"].update(models=["roberta_large_mlm"]),
            "datasets.csqa with model 'roberta_large_mlm'", "arch 'roberta_mlm'", "use a model of arch 'roberta_mc'")
    rejects(cfg, lambda c: c["models"]["graph2tree"]["settings"].update(hidden_size=385),
            "models.graph2tree.settings: hidden_size=385", "multiple of 4")


def test_repeated_language(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_mt_5to5"]["settings"].update(languages=["fr", "fr"]),
            "datasets.demo_mt_5to5.settings.languages=['fr', 'fr'] repeats an item")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_mt_5to5"]["settings"].update(languages=["fr", "en"]),
            "datasets.demo_mt_5to5.settings.languages[1]='en' is not one of cs, de")


@pytest.mark.parametrize("mutate, fragment", [
    (lambda c: c["datasets"]["demo_cs_easy"]["training"].update(warmup_step=3), "did you mean 'warmup_steps'?"),
    (lambda c: c["methods"]["lth"].update(prune_fraction=0.3), "prune_fraction=0.3"),
])
def test_snakemake_planning_refuses_before_any_job(tmp_path, demo_cfg, mutate, fragment):
    """The Snakefile runs the same checks: a dry run stops with the message, nothing is planned."""
    bad = yaml.safe_load(DEMO.read_text())
    mutate(bad)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-q", "--nolock", "--configfile",
                           str(path), "--", "all_figures"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and fragment in out, out[-2000:]
    assert "Job stats" not in out


def test_bad_values_through_the_cli(tmp_path, demo_cfg):
    bad = copy.deepcopy(demo_cfg)
    bad["datasets"]["demo_cs_easy"]["training"]["lr"] = "fast"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "smcbench", "validate", "--config", str(path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "datasets.demo_cs_easy.training.lr='fast' is not a number" in proc.stderr


# --- paths and files ------------------------------------------------------------------------------
def test_missing_local_path(demo_cfg, tmp_path):
    missing = str(tmp_path / "no" / "such" / "csqa")
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].__setitem__("source", missing),
            "datasets.demo_cs_easy.source", missing, "does not exist")
    rejects(demo_cfg, lambda c: c["models"]["demo_roberta"].__setitem__("source", missing),
            "models.demo_roberta.source", "does not exist")


def test_local_folder_without_the_expected_files(tmp_path):
    from smcbench.tasks import family_module

    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match="no CSQA files found; expected train_rand_split.jsonl"):
        family_module("commonsense").prepare("csqa", str(tmp_path / "src"), tmp_path / "out", {})


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: demo\nlevels: [1, 2\n")
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load_config(bad)


def _csqa_record(i: int, answer: str = "A") -> dict:
    return {"id": f"q{i}", "answerKey": answer,
            "question": {"stem": f"question {i}?", "question_concept": "c",
                         "choices": [{"label": L, "text": f"option {L}"} for L in "ABCDE"]}}


def _write_csqa(folder: Path, train_lines: list[str]) -> None:
    folder.mkdir(parents=True)
    (folder / "train_rand_split.jsonl").write_text("\n".join(train_lines) + "\n")
    (folder / "dev_rand_split.jsonl").write_text("\n".join(json.dumps(_csqa_record(100 + i)) for i in range(3)) + "\n")


@pytest.mark.parametrize("bad_line, message", [
    ('{"id": "q9", "answerKey": "A", "question": {"stem": "cut off', "train_rand_split.jsonl:3"),
    (json.dumps(_csqa_record(9, answer="F")), "answerKey 'F' is not one of the choice labels"),
    (json.dumps({"id": "q9", "answerKey": "A", "question": 7}), "'question' must be an object"),
])
def test_malformed_records(tmp_path, bad_line, message):
    from smcbench.tasks import family_module

    good = [json.dumps(_csqa_record(i)) for i in range(2)]
    _write_csqa(tmp_path / "src", good + [bad_line])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        family_module("commonsense").prepare("csqa", str(tmp_path / "src"), tmp_path / "out", {})


def test_malformed_record_through_the_cli_is_one_line_not_a_traceback(tmp_path):
    _write_csqa(tmp_path / "src", [json.dumps(_csqa_record(0)), "{not json"])
    proc = subprocess.run([sys.executable, "-m", "smcbench", "prepare", "csqa", "--family", "commonsense",
                           "--source", str(tmp_path / "src"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "train_rand_split.jsonl:2" in proc.stderr and proc.stderr.startswith("error: prepare csqa")
    assert not (tmp_path / "out" / "meta.json").exists()


def test_bad_config_through_the_cli(tmp_path, demo_cfg):
    bad = copy.deepcopy(demo_cfg)
    bad["run_methods"] = ["dense", "Magnitude"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "smcbench", "validate", "--config", str(path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown method 'Magnitude'" in proc.stderr and "omp_after" in proc.stderr


# --- models -------------------------------------------------------------------------------------
def test_model_of_another_family(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].__setitem__("models", ["demo_gts"]),
            "'demo_gts'", "arithmetic", "demo_cs_easy")


def test_unknown_model_name(demo_cfg):
    rejects(demo_cfg, lambda c: c["datasets"]["demo_cs_easy"].__setitem__("models", ["roberta"]),
            "unknown model 'roberta'")


def test_wrong_arch_for_the_family(tmp_path):
    """An arch the family does not build is refused when the pretrained job starts."""
    from smcbench.tasks import family_module

    entry = {"family": "commonsense", "arch": "gts", "source": "synthetic", "settings": {}}
    with pytest.raises(ValueError, match=r"arch 'gts' is unknown \(known: roberta_mc, roberta_mlm\)"):
        family_module("commonsense").make_pretrained("m", entry, "synthetic", tmp_path / "p")


def test_local_model_folder_that_is_not_a_model(tmp_path):
    from smcbench.tasks import family_module

    (tmp_path / "weights").mkdir()
    entry = {"family": "commonsense", "arch": "roberta_mc", "source": str(tmp_path / "weights")}
    with pytest.raises(ValueError, match="has no config.json"):
        family_module("commonsense").make_pretrained("m", entry, str(tmp_path / "weights"), tmp_path / "p")


# --- during training --------------------------------------------------------------------------
class _NaNTask:
    """The smallest Task the loop accepts; its loss turns NaN at the third step."""

    family, primary_metric, higher_is_better = "toy", "accuracy", True

    def __init__(self):
        self.calls = 0

    def build_model(self):
        torch.manual_seed(0)
        return torch.nn.Linear(3, 2)

    def param_groups(self, model, lr, wd):
        return [{"params": list(model.parameters()), "lr": lr, "weight_decay": wd}]

    def steps_per_epoch(self):
        return 4

    def train_batches(self, epoch):
        for i in range(4):
            yield torch.full((2, 3), float(i))

    def loss(self, model, batch):
        self.calls += 1
        out = model(batch).sum()
        return out * math.nan if self.calls == 3 else out

    def evaluate(self, model, split):
        return {"accuracy": 50.0}

    def eval_splits(self):
        return ["test"]

    def baseline(self, split):
        return {"accuracy": 50.0}

    def signature(self):
        return "toy"


def test_nan_loss_stops_the_run_naming_it(tmp_path, monkeypatch):
    from smcbench import train

    monkeypatch.setattr(train, "build_task", lambda spec, device: _NaNTask())
    monkeypatch.setattr(train, "resolve_run_scope", lambda model, scope: ["weight"])
    monkeypatch.setenv("SMCBENCH_NO_PROGRESS", "1")
    params = {"family": "toy", "dataset": "toyset", "method": "dense", "method_settings": {}, "scope": "paper",
              "level": 0, "target_sparsity": 0.0, "device": "cpu",
              "task": {"training": {"lr": 0.1, "epochs": 2, "schedule": "constant"}}}
    out = tmp_path / "runs" / "toyset" / "dense" / "seed0"
    spec = train.RunSpec(params=params, data_dir=tmp_path, pretrained_dir=tmp_path, out_dir=out, seed=0,
                         log=lambda s: None)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(train.TrainingError, match=r"run .*toyset/dense/seed0: loss is nan at step 2") as info:
        train.run_training(spec)
    assert not (out / "metrics.json").exists()          # nothing a later run could trust
    del info                                            # drop the traceback (and the run's frames)
    gc.collect()
    assert signal.getsignal(signal.SIGTERM) is before   # the dead run's SIGTERM handler is gone


def test_bad_checkpoint_interval(monkeypatch, tmp_path):
    from smcbench.checkpoint import Checkpointer

    monkeypatch.setenv("SMCBENCH_CHECKPOINT_MINUTES", "ten")
    with pytest.raises(ValueError, match="SMCBENCH_CHECKPOINT_MINUTES='ten' is not a number"):
        Checkpointer.from_env(tmp_path)


def test_checkpoint_is_never_unpickled(tmp_path):
    """A checkpoint whose tensor file is a pickle (e.g. planted by torch.save) is not loaded."""
    from smcbench.checkpoint import Checkpointer

    ckpt = Checkpointer(tmp_path, enabled=True, log=lambda s: None)
    ckpt.save(1, {"w": torch.ones(2)})
    ckpt.close()
    tensor_file = next((tmp_path / ".checkpoint").glob("*.safetensors"))
    torch.save({"w": torch.ones(2)}, tensor_file)
    logs = []
    assert Checkpointer(tmp_path, log=logs.append).load() is None
    assert "unreadable" in logs[-1]


# --- cluster profile ----------------------------------------------------------------------------
def _profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def test_profile_account_is_a_placeholder_the_user_must_edit():
    """profiles/slurm ships no real account; the README (Cluster) says to set it (see "Bad inputs"
    for what an unedited profile gets)."""
    prof = _profile("slurm")
    assert prof["default-resources"]["slurm_account"].startswith("REPLACE_WITH")
    assert _profile("ci-slurm")["default-resources"]["slurm_account"] == "smcbench-ci"


def test_profiles_never_request_gpus_through_slurm_extra():
    for name in ("slurm", "ci-slurm"):
        prof = _profile(name)
        blocks = [prof.get("default-resources", {})] + list((prof.get("set-resources") or {}).values())
        for block in blocks:
            extra = str(block.get("slurm_extra", ""))
            assert "--gres" not in extra and "--gpus" not in extra, (name, extra)


def test_profile_rule_names_exist_in_the_workflow():
    rules_text = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    for name in ("slurm", "ci-slurm"):
        for rule in _profile(name).get("set-resources") or {}:
            assert f"rule {rule}:" in rules_text, f"profiles/{name} sets resources of unknown rule {rule!r}"


def test_gres_in_slurm_extra_is_refused_by_the_plugin():
    validation = pytest.importorskip("snakemake_executor_plugin_slurm.validation")
    from types import SimpleNamespace

    from snakemake_interface_common.exceptions import WorkflowError

    job = SimpleNamespace(resources=SimpleNamespace(slurm_extra="--gres=gpu:1"))
    with pytest.raises(WorkflowError, match="not allowed in the 'slurm_extra'"):
        validation.validate_slurm_extra(job)


def test_every_row_of_the_table_names_a_test_that_exists():
    """docs/bad-inputs.md: each row's last column names tests found in tests/."""
    table = [line for line in (ROOT / "docs" / "bad-inputs.md").read_text().splitlines()
             if line.startswith("| ") and not line.startswith("| bad input")]
    assert len(table) >= 30
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), re.M))
    for row in table:
        names = re.findall(r"`(test_\w+)`", row.rsplit("|", 2)[-2])
        assert names, f"row without a test: {row[:80]}"
        for name in names:
            assert name in defined, f"{name} (docs/bad-inputs.md) is not a test"
