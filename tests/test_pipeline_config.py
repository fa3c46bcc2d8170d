"""Config validation, typed settings, the run plan and per-job params (torch-free parts of the pipeline)."""

import ast
import copy
import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from smcbench import config as C
from smcbench import settings as S

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "smcbench"


def base_cfg():
    return {
        "suite": "t", "seeds": [0, 1], "levels": [1, 2, 3],
        "methods": {"dense": {}, "lth": {"prune_fraction": 0.2}, "gmp": {"delta_t": 10}, "snip": {},
                    "snip+rigl": {"delta_t": 5}},
        "datasets": {"d": {"family": "commonsense", "source": "synthetic", "models": ["m"],
                           "settings": {"variant": "easy"}}},
        "models": {"m": {"family": "commonsense", "arch": "roberta_mc", "source": "synthetic"}},
    }


def test_levels_are_one_minus_point_eight_to_the_k():
    assert [round(C.target_sparsity(k), 4) for k in range(1, 11)] == [
        0.2, 0.36, 0.488, 0.5904, 0.6723, 0.7379, 0.7903, 0.8322, 0.8658, 0.8926]
    assert C.level_tag(3) == "s0.4880"
    assert C.parse_level("s0.4880") == (3, pytest.approx(0.488))
    assert C.parse_level("t0.0500") == (0, 0.05)
    assert C.parse_level("s0") == (0, 0.0)


@pytest.mark.parametrize("path", ["config.yaml", "workflow/configs/demo.yaml"])
def test_shipped_configs_validate(path):
    cfg = C.load_config(ROOT / path)
    runs = list(C.iter_runs(cfg))
    methods = {r.method for r in runs}
    assert {"dense", "lth", "imp_lrr", "omp_after", "random_after", "gmp", "omp_before", "random_before", "snip",
            "snip+rigl", "random_before+rigl", "omp_before+rigl"} <= methods
    # dense runs once per (dataset, fold, model, seed)
    dense = [r for r in runs if r.method == "dense"]
    assert len(dense) == len({(r.dataset, r.fold, r.model, r.seed) for r in dense})


@pytest.mark.parametrize("path", ["config.yaml", "workflow/configs/demo.yaml"])
def test_shipped_configs_through_the_cli(path):
    proc = subprocess.run([sys.executable, "-m", "smcbench", "validate", "--config", path], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert ": ok (" in proc.stdout


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["methods"].update({"SNIP": {}}), "unknown method 'SNIP' in config.methods; did you mean 'snip'?"),
    (lambda c: c.update({"levels": [0]}), "levels[0]=0 is out of range: must be in [1, 20]"),
    (lambda c: c["datasets"]["d"].update({"scope": "everything"}), "unknown scope 'everything' in datasets.d.scope"),
    (lambda c: c["datasets"]["d"].update({"scope": "modules:Q+X"}), "bad module subset 'modules:Q+X'"),
    (lambda c: c["datasets"]["d"].update({"models": ["nope"]}), "unknown model 'nope' for dataset 'd'"),
    (lambda c: c["datasets"]["d"].update({"family": "vision"}), "unknown family 'vision' for dataset 'd'"),
    (lambda c: c["datasets"]["d"].update({"source": "/no/such/folder"}), "local path '/no/such/folder' does not exist"),
    (lambda c: c.update({"extra_runs": [{"name": "x", "datasets": ["d"], "methods": ["gmp"], "targets": [1.0]}]}),
     "extra_runs[0].targets[0]=1.0 is out of range: must be in (0, 1)"),
    (lambda c: c["methods"].pop("snip"), "method 'snip+rigl' starts from 'snip'"),
    (lambda c: c["methods"].pop("dense"), "must contain 'dense'"),
    (lambda c: c["models"]["m"].update({"arch": "gpt2"}), "unknown arch 'gpt2' for commonsense model 'm'"),
    (lambda c: c.update({"device": "tpu"}), "device='tpu' is not one of auto, cpu, cuda"),
])
def test_bad_configs_name_the_value(mutate, message):
    cfg = base_cfg()
    mutate(cfg)
    with pytest.raises(C.ConfigError) as e:
        C.validate_config(cfg)
    assert message in str(e.value)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update({"trainng": {"lr": 1}}), "trainng is not a top-level setting: did you mean datasets.<name>.training?"),
    (lambda c: c.update({"run_method": ["dense"]}), "run_method is not a setting; did you mean 'run_methods'?"),
    (lambda c: c["datasets"]["d"].update({"training": {"warmup_step": 10}}),
     "datasets.d.training.warmup_step is not a setting; did you mean 'warmup_steps'?"),
    (lambda c: c["datasets"]["d"]["settings"].update({"max_lenght": 10}),
     "datasets.d.settings.max_lenght is not a setting; did you mean 'max_length'?"),
    (lambda c: c["methods"]["dense"].update({"nonsense_setting": 1}), "unknown setting 'nonsense_setting' for method 'dense'"),
    (lambda c: c["models"]["m"].update({"settings": {"hiden_size": 8}}),
     "models.m.settings.hiden_size is not a setting; did you mean 'hidden_size'?"),
    (lambda c: c["datasets"]["d"].update({"method_overrides": {"gmp": {"delta": 3}}}),
     "unknown setting 'delta' for method 'gmp'; did you mean 'delta_t'?"),
    (lambda c: c["datasets"]["d"].update({"fold": [0]}), "datasets.d.fold is not a setting; did you mean 'folds'?"),
    (lambda c: c["datasets"]["d"].update({"method_training": {"dense": {"max_step": 9}}}),
     "datasets.d.method_training.dense.max_step is not a setting; did you mean 'max_steps'?"),
    (lambda c: c["datasets"]["d"].update({"method_training": {"dens": {"max_steps": 9}}}),
     "unknown method 'dens' in datasets.d.method_training; did you mean 'dense'?"),
    (lambda c: c.update({"extra_runs": [{"name": "x", "datasets": ["d"], "methods": ["gmp"], "target": [0.5]}]}),
     "extra_runs[0].target is not a setting; did you mean 'targets'?"),
    (lambda c: c.update({"resources": {"train": {"mem": 10}}}), "resources.train.mem is not a setting; did you mean 'mem_mb'?"),
])
def test_unknown_keys_name_the_path_and_the_closest_valid_key(mutate, message):
    cfg = base_cfg()
    mutate(cfg)
    with pytest.raises(C.ConfigError) as e:
        C.validate_config(cfg)
    assert message in str(e.value)


def test_wrong_model_family_for_dataset():
    cfg = base_cfg()
    cfg["models"]["p"] = {"family": "protein", "arch": "esm", "source": "synthetic"}
    cfg["datasets"]["d"]["models"] = ["p"]
    with pytest.raises(C.ConfigError, match="is a protein model but dataset 'd' is commonsense"):
        C.validate_config(cfg)


def test_params_hold_only_the_jobs_own_settings_with_defaults_filled():
    cfg = C.validate_config(base_cfg())
    p = json.loads(C.train_params(cfg, "d", "m", "gmp", "paper", "s0.3600"))
    assert p["method"] == "gmp" and p["method_settings"] == {"t0": 0.1, "t1": 0.8, "delta_t": 10}
    assert p["level"] == 2 and p["target_sparsity"] == pytest.approx(0.36)
    assert "lth" not in json.dumps(p)  # another method's settings never leak into this job
    # the full typed recipe, defaults filled; "unset" keys stay absent
    training = p["task"]["training"]
    declared = {f.name for f in fields(S.CommonsenseTraining)}
    assert set(training) == declared - {"max_steps", "warmup_steps"}
    assert training["lr"] == 1e-4 and training["batch_size"] == 16 and training["schedule"] == "linear"
    assert p["task"]["max_length"] == 128 and p["task"]["validation_fraction"] == 0.1
    assert p["task"]["model"]["settings"]["hidden_size"] == 64
    typed = S.parse_training("commonsense", training)
    assert typed.lr == 1e-4 and typed.warmup_steps is None
    # canonical: key order in the config does not matter
    cfg1, cfg2 = base_cfg(), base_cfg()
    cfg1["methods"]["gmp"] = {"delta_t": 10, "t0": 0.1}
    cfg2["methods"]["gmp"] = dict(reversed(list({"delta_t": 10, "t0": 0.1}.items())))
    C.validate_config(cfg1), C.validate_config(cfg2)
    assert C.train_params(cfg1, "d", "m", "gmp", "paper", "s0.3600") == C.train_params(cfg2, "d", "m", "gmp", "paper", "s0.3600")
    # a default written out explicitly gives the same params as the default left out
    cfg3 = base_cfg()
    cfg3["datasets"]["d"]["training"] = {"lr": 1e-4, "schedule": "linear"}
    cfg3["methods"]["gmp"] = {"delta_t": 10, "t1": 0.8}
    C.validate_config(cfg3)
    assert C.train_params(cfg3, "d", "m", "gmp", "paper", "s0.3600") == C.train_params(cfg, "d", "m", "gmp", "paper", "s0.3600")


def test_yaml_number_without_a_dot_is_a_number():
    cfg = base_cfg()
    cfg["datasets"]["d"]["training"] = yaml.safe_load("{lr: 1e-5}")  # YAML 1.1 reads this as a string
    assert cfg["datasets"]["d"]["training"]["lr"] == "1e-5"
    C.validate_config(cfg)
    assert cfg["datasets"]["d"]["training"]["lr"] == 1e-5


def test_validation_is_idempotent_and_fills_defaults_in_place():
    cfg = base_cfg()
    assert C.validate_config(cfg) is cfg
    assert cfg["run_methods"] == ["dense", "lth", "gmp", "snip", "snip+rigl"] and cfg["device"] == "auto"
    assert cfg["datasets"]["d"]["scope"] == "paper" and cfg["datasets"]["d"]["enabled"] is True
    again = copy.deepcopy(cfg)
    C.validate_config(again)
    assert again == cfg


def test_method_overrides_per_dataset():
    cfg = base_cfg()
    cfg["datasets"]["d"]["method_overrides"] = {"gmp": {"delta_t": 500}}
    C.validate_config(cfg)
    assert json.loads(C.train_params(cfg, "d", "m", "gmp", "paper", "s0.2000"))["method_settings"]["delta_t"] == 500
    bad = base_cfg()
    bad["datasets"]["d"]["method_overrides"] = {"gmp": {"t0": 0.9}}  # merged: t0 0.9 > t1 0.8
    with pytest.raises(C.ConfigError, match=r"datasets\.d\.method_overrides\.gmp.*t0=0.9"):
        C.validate_config(bad)


def test_method_training_changes_only_that_methods_recipe():
    cfg = base_cfg()
    C.validate_config(cfg)
    before = {m: json.loads(C.train_params(cfg, "d", "m", m, "paper", lvl))
              for m, lvl in (("dense", "s0"), ("gmp", "s0.2000"), ("lth", "s0.2000"))}
    cfg = base_cfg()
    cfg["datasets"]["d"]["method_training"] = {"dense": {"epochs": 7, "eval_every": 11}}
    C.validate_config(cfg)
    after = {m: json.loads(C.train_params(cfg, "d", "m", m, "paper", lvl))
             for m, lvl in (("dense", "s0"), ("gmp", "s0.2000"), ("lth", "s0.2000"))}
    assert after["gmp"] == before["gmp"] and after["lth"] == before["lth"]
    dense = after["dense"]["task"]["training"]
    assert (dense["epochs"], dense["eval_every"]) == (7, 11)
    assert {k: v for k, v in dense.items() if k not in ("epochs", "eval_every")} == \
        {k: v for k, v in before["dense"]["task"]["training"].items() if k not in ("epochs", "eval_every")}
    # the uncached path builds the same JSON
    fresh = copy.deepcopy(cfg)
    assert C.canonical_json(C._job_params(fresh, "d", "m", "dense", "paper", "s0")) == \
        C.train_params(cfg, "d", "m", "dense", "paper", "s0")
    bad = base_cfg()
    bad["datasets"]["d"]["method_training"] = {"dense": {"lr": -1}}
    with pytest.raises(C.ConfigError, match=r"datasets\.d\.method_training\.dense\.lr"):
        C.validate_config(bad)


def test_extra_runs_and_disabled_datasets():
    cfg = base_cfg()
    cfg["datasets"]["off"] = {"family": "commonsense", "source": "synthetic", "models": ["m"], "enabled": False,
                              "settings": {"variant": "hard"}}
    cfg["extra_runs"] = [{"name": "modulewise", "datasets": ["d"], "methods": ["gmp"], "scopes": ["modules:Q+K"],
                          "targets": [0.05]}]
    C.validate_config(cfg)
    runs = list(C.iter_runs(cfg))
    assert not [r for r in runs if r.dataset == "off"]
    extra = [r for r in runs if r.extra == "modulewise"]
    assert len(extra) == 2 and extra[0].scope == "modules:Q+K" and extra[0].level == "t0.0500"
    assert extra[0].run_dir == "runs/d/all/m/gmp/modules-Q+K/t0.0500/seed0"


def test_demo_config_yaml_is_plain():
    # the demo config must not depend on anything outside the repo
    cfg = yaml.safe_load((ROOT / "workflow/configs/demo.yaml").read_text())
    for d in cfg["datasets"].values():
        assert d["source"] == "synthetic"


def test_per_dataset_run_methods():
    cfg = base_cfg()
    cfg["datasets"]["d2"] = {"family": "commonsense", "source": "synthetic", "models": ["m"],
                             "run_methods": ["dense", "gmp"], "settings": {"variant": "hard"}}
    C.validate_config(cfg)
    runs = list(C.iter_runs(cfg))
    assert {r.method for r in runs if r.dataset == "d2"} == {"dense", "gmp"}
    assert {r.method for r in runs if r.dataset == "d"} == {"dense", "lth", "gmp", "snip", "snip+rigl"}
    cfg = base_cfg()
    cfg["run_methods"] = ["dense", "lth"]
    cfg["datasets"]["d2"] = {"family": "commonsense", "source": "synthetic", "models": ["m"],
                             "run_methods": ["snip+rigl"], "settings": {"variant": "hard"}}
    cfg["methods"].pop("snip")
    with pytest.raises(C.ConfigError, match="starts from 'snip'"):
        C.validate_config(cfg)


# --- one definition: families, methods, schema, reference ---------------------------------------
def test_family_and_method_lists_are_defined_once():
    from smcbench import tasks
    from smcbench.sparsity.registry import METHODS

    assert list(S.families()) == list(tasks.FAMILIES) and set(tasks.ARCHS) == set(tasks.FAMILIES)
    assert set(S.FAMILY_SETTINGS) <= set(tasks.FAMILIES)
    assert C.FAMILIES is tasks.FAMILIES
    schema = S.json_schema()
    assert schema["$defs"]["DatasetEntry"]["properties"]["family"]["enum"] == list(tasks.FAMILIES)
    assert list(schema["properties"]["methods"]["properties"]) == list(METHODS)


def test_schema_file_is_generated_from_the_settings():
    text = (ROOT / "workflow/schemas/config.schema.yaml").read_text()
    assert yaml.safe_load(text) == S.json_schema(), \
        "workflow/schemas/config.schema.yaml is stale: run `python -m smcbench.settings --write`"


def test_configuration_reference_is_generated_from_the_settings():
    text = (ROOT / "docs/configuration.md").read_text()
    start, end = text.index(S.BEGIN) + len(S.BEGIN), text.index(S.END)
    assert text[start:end].strip() == S.reference_markdown().strip(), \
        "docs/configuration.md's reference is stale: run `python -m smcbench.settings --write`"


@pytest.mark.parametrize("path", ["config.yaml", "workflow/configs/demo.yaml"])
def test_schema_accepts_the_shipped_configs_and_refuses_unknown_keys(path):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(ROOT / "workflow/schemas/config.schema.yaml")
    raw = yaml.safe_load((ROOT / path).read_text())
    validate(copy.deepcopy(raw), schema)
    ds = next(iter(raw["datasets"]))
    for mutate in (lambda c: c.update(trainng={}),
                   lambda c: c["datasets"][ds].setdefault("training", {}).update(warmup_step=1),
                   lambda c: c["methods"]["dense"].update(nonsense_setting=1)):
        bad = copy.deepcopy(raw)
        mutate(bad)
        with pytest.raises(WorkflowError):
            validate(bad, schema)


def _reads(path: Path, names: str) -> dict[str, object]:
    """``key -> default`` of every ``<name>.get("key"[, default])`` in ``path`` for the variable
    names in ``names`` (a regex alternation); a default that is not a literal maps to ``...``."""
    out: dict[str, object] = {}
    for m in re.finditer(rf"\b(?:{names})\.get\(\"(\w+)\"(?:,\s*([^()]*?(?:\([^()]*\))?[^()]*?))?\)", path.read_text()):
        key, default = m.group(1), m.group(2)
        try:
            value = ast.literal_eval(default) if default else None
        except (ValueError, SyntaxError):
            value = ...
        out.setdefault(key, value)
    return out


def _same_default(code, declared) -> bool:
    if code is ... or code is None or declared is None:
        return True
    if isinstance(code, (list, tuple)):
        return list(code) == list(declared)
    return code == declared


def test_every_training_key_the_loop_reads_is_declared_with_its_default():
    declared = {f.name: f.default for f in fields(S.TrainingSettings)}
    reads = _reads(SRC / "train.py", "training")
    assert reads, "no training.get(...) found in train.py"
    for key, default in reads.items():
        assert key in declared, f"train.py reads training.{key}, which smcbench.settings.TrainingSettings lacks"
        assert _same_default(default, declared[key]), f"training.{key}: train.py default {default!r} != {declared[key]!r}"


def test_the_loop_knows_every_declared_schedule():
    pytest.importorskip("torch")
    from smcbench import train

    assert tuple(train.SCHEDULES) == S.SCHEDULES


@pytest.mark.parametrize("family", list(S.FAMILY_SETTINGS))
def test_every_setting_a_family_reads_is_declared(family):
    """Keys read from dataset/model/training settings in a family's modules exist in its classes,
    with the same default."""
    fam = S.family_settings(family)
    declared: dict = {}
    for cls in (fam.model, fam.training, fam.dataset):
        for f in fields(cls):
            declared.setdefault(f.name, []).append(f.default)
    prefix = {"arithmetic": "arith"}.get(family, family)
    files = [p for p in (SRC / "tasks").rglob("*.py") if p.name.startswith(prefix) or family in p.parts]
    files += [p for p in (SRC / "tasks").glob("synthetic_*.py") if family in p.name]
    assert files
    names = r"settings|s|ms|self\.ms|self\.settings|model_settings|self\.model_settings|training|self\.training"
    for path in files:
        for key, default in _reads(path, names).items():
            if key in ("model", "training", "settings", "arch", "source"):
                continue
            assert key in declared, f"{path.name} reads {key!r}, which {family}'s settings classes do not declare"
            # a literal default in the code is the declared one (params carry the declared defaults)
            assert any(_same_default(default, d) for d in declared[key]), \
                f"{path.name} reads {key!r} with default {default!r}, declared {declared[key]}"


# --- cost ------------------------------------------------------------------------------------------
def test_validation_is_cheap_and_params_are_not_revalidated(monkeypatch):
    cfg = C.load_config(ROOT / "config.yaml")
    calls = []
    monkeypatch.setattr(S, "parse", lambda *a, **k: calls.append(a))
    runs = list(C.iter_runs(cfg))
    for r in runs[:500]:
        C.train_params(cfg, r.dataset, r.model, r.method, r.scope, r.level)
    assert not calls  # params read the normalized config; nothing is parsed again per job


def test_params_from_cached_pieces_are_the_canonical_json_of_the_jobs_settings():
    cfg = C.load_config(ROOT / "workflow/configs/demo.yaml")
    fresh = copy.deepcopy(cfg)  # not the validated object: nothing cached, built from scratch
    for r in C.iter_runs(cfg):
        scope = cfg["datasets"][r.dataset]["scope"] if r.method == "dense" else r.scope
        p = C._job_params(fresh, r.dataset, r.model, r.method, scope, r.level)
        assert C.mask_params(cfg, r.dataset, r.model, r.method, scope, r.level) == C.canonical_json(p)
        init = C.METHODS[r.method].init_mask_from
        if init:
            p["init_mask_from"] = init
        assert C.train_params(cfg, r.dataset, r.model, r.method, r.scope, r.level) == C.canonical_json(p)
        assert json.loads(C.train_params(cfg, r.dataset, r.model, r.method, r.scope, r.level)) == p


def test_cli_validate_shows_an_entry_with_defaults_filled():
    proc = subprocess.run([sys.executable, "-m", "smcbench", "validate", "--config", "workflow/configs/demo.yaml",
                           "--show", "demo_mawps"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    entry = yaml.safe_load(proc.stdout.rsplit("\n", 2)[0])
    raw = yaml.safe_load((ROOT / "workflow/configs/demo.yaml").read_text())["datasets"]["demo_mawps"]
    assert "amp" not in raw["training"] and entry["training"]["amp"] == "bf16"  # a default, filled in
    assert entry == C.load_config(ROOT / "workflow/configs/demo.yaml")["datasets"]["demo_mawps"]
    proc = subprocess.run([sys.executable, "-m", "smcbench", "validate", "--config", "workflow/configs/demo.yaml",
                           "--show", "nope"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "not a dataset or model" in proc.stderr


def test_a_model_may_override_the_datasets_training_recipe():
    cfg = base_cfg()
    cfg["datasets"]["d"]["training"] = {"lr": 1e-3, "schedule": "cosine", "warmup_ratio": 0.1}
    cfg["models"]["m"]["training"] = {"schedule": "linear", "warmup_steps": 100}
    C.validate_config(cfg)
    t = json.loads(C.train_params(cfg, "d", "m", "dense", "-", "s0"))["task"]["training"]
    assert t["lr"] == 1e-3 and t["schedule"] == "linear" and t["warmup_steps"] == 100 and t["warmup_ratio"] == 0.1
    assert "training" not in json.loads(C.pretrained_params(cfg, "m"))  # the pre-trained model does not depend on it
    # an override is checked alone for keys and types, and merged with each dataset's recipe as a whole
    for override, message in (({"warmup_step": 1}, "models.m.training.warmup_step is not a setting"),
                              ({"schedule": "step"}, "datasets.d.training with models.m.training: schedule 'step' needs")):
        bad = base_cfg()
        bad["models"]["m"]["training"] = override
        with pytest.raises(C.ConfigError, match=re.escape(message)):
            C.validate_config(bad)


def test_a_new_family_declares_its_settings_in_its_own_module(monkeypatch):
    """Adding a family: its module (with SETTINGS) plus its registration in smcbench.tasks; the
    config checks, the schema and the reference follow."""
    import types
    from dataclasses import MISSING

    from smcbench import tasks

    @S.settings
    class ToyData:
        """Toy dataset settings."""

        n_rows: int = S.opt("int", 10, "rows", ge=1)

    @S.settings
    class ToyModel:
        """Toy model settings."""

        width: int = S.opt("int", MISSING, "hidden width", ge=1)

    module = types.ModuleType("toy_family")
    module.SETTINGS = S.Family(training=S.TrainingSettings, dataset=ToyData, model=ToyModel)
    monkeypatch.setitem(sys.modules, "toy_family", module)
    monkeypatch.setitem(tasks.FAMILIES, "toy", "toy_family")
    monkeypatch.setitem(tasks.ARCHS, "toy", ("toy_net",))
    cfg = base_cfg()
    cfg["models"]["t"] = {"family": "toy", "arch": "toy_net", "source": "synthetic", "settings": {"width": 4}}
    cfg["datasets"]["td"] = {"family": "toy", "source": "synthetic", "models": ["t"], "settings": {"n_rows": 5}}
    C.validate_config(cfg)
    assert json.loads(C.train_params(cfg, "td", "t", "dense", "-", "s0"))["task"]["n_rows"] == 5
    assert "ToyData" in S.json_schema()["$defs"] and "toy dataset settings" in S.reference_markdown()
    cfg["datasets"]["td"]["settings"] = {"n_row": 5}
    with pytest.raises(C.ConfigError, match="datasets.td.settings.n_row is not a setting; did you mean 'n_rows'"):
        C.validate_config(cfg)
    cfg["datasets"]["td"]["settings"] = {}
    cfg["models"]["t"]["settings"] = {}
    with pytest.raises(C.ConfigError, match="models.t.settings.width is required"):
        C.validate_config(cfg)


def test_resources_keys_are_groups_or_group_slash_name():
    cfg = base_cfg()
    cfg["resources"] = {"train": {"gpu": 1}, "train/m": {"runtime": 60}, "train/snip": {"gpu": 1}, "prepare/d": {}}
    C.validate_config(cfg)
    for key, message in (("trian", "resources.trian: unknown group 'trian'; did you mean 'train'?"),
                         ("mask/snip", "resources.mask/snip: there is no mask rule any more"),
                         ("train/mm", "resources.train/mm: 'mm' is not a model, dataset or method of this config; "
                                      "did you mean 'm'?")):
        bad = base_cfg()
        bad["resources"] = {key: {"gpu": 0}}
        with pytest.raises(C.ConfigError, match=re.escape(message)):
            C.validate_config(bad)
    smk = (ROOT / "workflow/rules/common.smk").read_text()
    block = smk[smk.index("RESOURCE_DEFAULTS = {"):]
    block = block[:block.index("\n}")]
    assert tuple(re.findall(r'^\s+"(\w+)": \{', block, re.M)) == S.RESOURCE_GROUPS


def test_source_pins_are_typed():
    cfg = base_cfg()
    cfg["models"]["m"].update(revision="a" * 40, files=["*.json", "model.safetensors"])
    cfg["datasets"]["d"].update(sha256="0" * 64)
    C.validate_config(cfg)
    bad = base_cfg()
    bad["datasets"]["d"]["sha256"] = "xyz"
    with pytest.raises(C.ConfigError, match=r"datasets\.d\.sha256='xyz' does not match .*64 lowercase hex digits"):
        C.validate_config(bad)


def test_editing_a_validated_config_then_validating_again_refreshes_the_params():
    cfg = C.validate_config(base_cfg())
    before = json.loads(C.train_params(cfg, "d", "m", "gmp", "paper", "s0.2000"))
    cfg["datasets"]["d"]["training"]["lr"] = 0.5
    cfg["methods"]["gmp"]["delta_t"] = 7
    C.validate_config(cfg)
    after = json.loads(C.train_params(cfg, "d", "m", "gmp", "paper", "s0.2000"))
    assert before["task"]["training"]["lr"] == 1e-4 and after["task"]["training"]["lr"] == 0.5
    assert after["method_settings"]["delta_t"] == 7
