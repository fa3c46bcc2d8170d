"""The "Add your own sparse method" example of docs/sparsity.md works as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from smcbench.sparsity import registry
from smcbench.sparsity.registry import MethodInfo, build_method
from smcbench.sparsity.select import num_to_prune
from test_sparsity_fixtures import make_ctx, mlp, mlp_data, mlp_loss, train

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "sparsity.md"


def _snippet(tag: str) -> str:
    text = DOC.read_text()
    m = re.search(rf"<!-- docs-test: {tag} -->\s*```\w+\n(.*?)```", text, re.S)
    assert m, f"docs/sparsity.md lacks the '{tag}' example"
    return m.group(1)


@pytest.fixture
def registered(monkeypatch):
    """Load the example class as the module the registry line names, and add the entry."""
    entry = eval("{" + _snippet("registry") + "}", {"MethodInfo": MethodInfo})
    (name, info), = entry.items()
    module_name, cls_name = info.cls.split(":")
    module = types.ModuleType(module_name)
    monkeypatch.setitem(sys.modules, module_name, module)  # before exec: dataclasses look the module up
    exec(compile(_snippet("class"), f"<docs/sparsity.md {module_name}>", "exec"), module.__dict__)
    assert hasattr(module, cls_name)
    monkeypatch.setitem(registry.METHODS, name, info)
    return name


def test_example_method_trains_with_exact_per_tensor_sparsity(registered):
    model = mlp()
    x, y = mlp_data()
    method = build_method(registered, {})
    ctx = make_ctx(model, s=0.5, total_steps=10)
    mask = train(method, ctx, lambda step: mlp_loss(model, x, y))
    for n, m in mask.items():
        assert int((~m).sum()) == num_to_prune(0.5, m.numel()), n
    params = dict(model.named_parameters())
    assert all(not params[n][~mask[n]].any() for n in mask)
    assert method.stats()["realized_sparsity"] == pytest.approx(0.5, abs=len(mask) / mask.numel())


def test_example_settings_are_typed_and_checked(registered):
    from smcbench.sparsity.registry import validate_method_settings
    from smcbench.sparsity.settings import SettingsError

    assert validate_method_settings(registered, {}) == {"min_numel": 0}
    with pytest.raises(SettingsError, match="did you mean 'min_numel'"):
        validate_method_settings(registered, {"min_numl": 5})
    with pytest.raises(SettingsError, match=r"min_numel=-1 is outside \[0, inf\]"):
        build_method(registered, {"min_numel": -1})
    model = mlp()
    mask = build_method(registered, {"min_numel": 300}).compute_mask(make_ctx(model, s=0.5))
    assert [int((~m).sum()) for m in mask.values()] == [num_to_prune(0.5, m.numel()) if m.numel() >= 300 else 0
                                                        for m in mask.values()] == [0, 512, 0]


def test_example_config_validates_and_plans_runs(registered):
    from smcbench import config as cfgmod

    cfg = yaml.safe_load((ROOT / "workflow" / "configs" / "demo.yaml").read_text())
    extra = yaml.safe_load(_snippet("config"))
    cfg["methods"].update(extra["methods"])
    cfg["run_methods"] = list(cfg.get("run_methods", cfg["methods"])) + extra["run_methods"]
    for entry in cfg["datasets"].values():  # datasets with their own method list run it too
        if "run_methods" in entry:
            entry["run_methods"] = list(entry["run_methods"]) + extra["run_methods"]
    cfgmod.validate_config(cfg)
    runs = [r for r in cfgmod.iter_runs(cfg) if r.method == registered]
    for ds in {r.dataset for r in runs}:  # every level of each dataset that runs it
        assert {r.level for r in runs if r.dataset == ds} == {cfgmod.level_tag(k) for k in cfgmod.levels_of(cfg, ds)}
    assert {r.dataset for r in runs} == set(cfgmod.enabled_datasets(cfg))
