"""Config validation, the run plan and per-job params (torch-free parts of the pipeline)."""

import json
from pathlib import Path

import pytest
import yaml

from smcbench import config as C

ROOT = Path(__file__).resolve().parents[1]


def base_cfg():
    return {
        "suite": "t", "seeds": [0, 1], "levels": [1, 2, 3],
        "methods": {"dense": {}, "lth": {"prune_fraction": 0.2}, "gmp": {"delta_t": 10}, "snip": {},
                    "snip+rigl": {"delta_t": 5}},
        "datasets": {"d": {"family": "commonsense", "source": "synthetic", "models": ["m"]}},
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


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["methods"].update({"SNIP": {}}), "unknown method 'SNIP' in config.methods (known: dense, lth"),
    (lambda c: c.update({"levels": [0]}), "bad level 0 in levels"),
    (lambda c: c["datasets"]["d"].update({"scope": "everything"}), "unknown scope 'everything' in datasets.d.scope (known: paper"),
    (lambda c: c["datasets"]["d"].update({"scope": "modules:Q+X"}), "bad module subset 'modules:Q+X'"),
    (lambda c: c["datasets"]["d"].update({"models": ["nope"]}), "unknown model 'nope' for dataset 'd'"),
    (lambda c: c["datasets"]["d"].update({"family": "vision"}), "unknown family 'vision' for dataset 'd'"),
    (lambda c: c["datasets"]["d"].update({"source": "/no/such/folder"}), "local path '/no/such/folder' does not exist"),
    (lambda c: c.update({"extra_runs": [{"name": "x", "datasets": ["d"], "methods": ["gmp"], "targets": [1.0]}]}),
     "bad target sparsity 1.0"),
    (lambda c: c["methods"].pop("snip"), "method 'snip+rigl' starts from 'snip'"),
    (lambda c: c["methods"].pop("dense"), "must contain 'dense'"),
    (lambda c: c["models"]["m"].update({"arch": "gpt2"}), "unknown arch 'gpt2' for commonsense model 'm' (known: roberta_mc"),
    (lambda c: c.update({"device": "tpu"}), "bad device 'tpu'"),
])
def test_bad_configs_name_the_value(mutate, message):
    cfg = base_cfg()
    mutate(cfg)
    with pytest.raises(C.ConfigError, match=None) as e:
        C.validate_config(cfg)
    assert message in str(e.value)


def test_wrong_model_family_for_dataset():
    cfg = base_cfg()
    cfg["models"]["p"] = {"family": "protein", "arch": "esm", "source": "synthetic"}
    cfg["datasets"]["d"]["models"] = ["p"]
    with pytest.raises(C.ConfigError, match="is a protein model but dataset 'd' is commonsense"):
        C.validate_config(cfg)


def test_params_hold_only_the_jobs_own_settings():
    cfg = base_cfg()
    p = json.loads(C.train_params(cfg, "d", "m", "gmp", "paper", "s0.3600"))
    assert p["method"] == "gmp" and p["method_settings"] == {"delta_t": 10}
    assert p["level"] == 2 and p["target_sparsity"] == pytest.approx(0.36)
    assert "lth" not in json.dumps(p)  # another method's settings never leak into this job
    # canonical: key order in the config does not matter
    cfg2 = base_cfg()
    cfg2["methods"]["gmp"] = dict(reversed(list({"delta_t": 10, "t0": 0.1}.items())))
    cfg["methods"]["gmp"] = {"delta_t": 10, "t0": 0.1}
    assert C.train_params(cfg, "d", "m", "gmp", "paper", "s0.3600") == C.train_params(cfg2, "d", "m", "gmp", "paper", "s0.3600")


def test_method_overrides_per_dataset():
    cfg = base_cfg()
    cfg["datasets"]["d"]["method_overrides"] = {"gmp": {"delta_t": 500}}
    assert json.loads(C.train_params(cfg, "d", "m", "gmp", "paper", "s0.2000"))["method_settings"]["delta_t"] == 500


def test_extra_runs_and_disabled_datasets():
    cfg = base_cfg()
    cfg["datasets"]["off"] = {"family": "commonsense", "source": "synthetic", "models": ["m"], "enabled": False}
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
                             "run_methods": ["dense", "gmp"]}
    C.validate_config(cfg)
    runs = list(C.iter_runs(cfg))
    assert {r.method for r in runs if r.dataset == "d2"} == {"dense", "gmp"}
    assert {r.method for r in runs if r.dataset == "d"} == {"dense", "lth", "gmp", "snip", "snip+rigl"}
    cfg["datasets"]["d2"]["run_methods"] = ["snip+rigl"]
    cfg["methods"].pop("snip")
    with pytest.raises(C.ConfigError, match="starts from 'snip'"):
        C.validate_config(cfg)
