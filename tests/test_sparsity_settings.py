"""Typed method settings: defaults, types, ranges and "did you mean" for unknown keys, checked
torch-free (planning) exactly as the training job checks them; the loop names no method."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from smcbench.sparsity.registry import METHODS, build_method, check_run, validate_method_settings
from smcbench.sparsity.settings import SettingsError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_filled_and_values_typed():
    assert validate_method_settings("gmp", {}) == {"t0": 0.1, "t1": 0.8, "delta_t": 1000}
    assert validate_method_settings("gmp", {"delta_t": 10.0})["delta_t"] == 10
    assert validate_method_settings("snip+rigl", {"alpha": 1})["alpha"] == 1.0
    assert validate_method_settings("lth", None) == {"prune_fraction": 0.2}
    assert validate_method_settings("dense", {}) == {}


@pytest.mark.parametrize("method,settings,message", [
    ("gmp", {"t0": 0.9, "t1": 0.5}, "methods.gmp: t0=0.9 must be < t1=0.5"),
    ("gmp", {"delta_t": 0}, "methods.gmp.delta_t=0 is outside [1, inf]"),
    ("gmp", {"delta_t": 2.5}, "methods.gmp.delta_t=2.5 is not an integer"),
    ("snip+rigl", {"alpha": 2}, "methods.snip+rigl.alpha=2.0 is outside (0.0, 1.0]"),
    ("snip+rigl", {"alpha": 0}, "methods.snip+rigl.alpha=0.0 is outside (0.0, 1.0]"),
    ("snip+rigl", {"delta_t": 0}, "methods.snip+rigl.delta_t=0 is outside [1, inf]"),
    ("snip+rigl", {"alpha": 0.1, "alpha_min": 0.2}, "alpha_min=0.2 is outside [0.0, 0.1]"),
    ("snip+rigl", {"init_settings": {"num_batchs": 2}}, "unknown setting 'num_batchs' for method 'snip'; did you mean 'num_batches'?"),
    ("lth", {"prune_fraction": 1.0}, "methods.lth.prune_fraction=1.0 is outside (0.0, 1.0)"),
    ("lth", {"prune_fraction": "fast"}, "methods.lth.prune_fraction='fast' is not a number"),
    ("snip", {"num_batches": 0}, "methods.snip.num_batches=0 is outside [1, inf]"),
    ("dense", {"nonsense_setting": 1}, "unknown setting 'nonsense_setting' for method 'dense' (valid: none)"),
    ("gmp", {"delta": 5}, "unknown setting 'delta' for method 'gmp'; did you mean 'delta_t'?"),
    ("gmp", [1, 2], "settings of method 'gmp' must be a mapping"),
])
def test_bad_settings_name_method_key_and_range(method, settings, message):
    with pytest.raises(SettingsError) as info:
        validate_method_settings(method, settings)
    assert message in str(info.value)
    with pytest.raises(ValueError):  # the job refuses the same (the method is built from the same class)
        build_method(method, settings)


def test_imp_level_must_agree_with_prune_fraction():
    check_run("lth", {"prune_fraction": 0.2}, 2, 0.36)
    with pytest.raises(SettingsError, match=r"prune_fraction=0.3 gives round 2 the sparsity 0.51"):
        check_run("lth", {"prune_fraction": 0.3}, 2, 0.36)
    with pytest.raises(ValueError, match="outside"):
        check_run("gmp", {}, 1, 1.0)


def test_every_registered_method_has_a_settings_class_and_builds_with_defaults():
    for name, info in METHODS.items():
        assert isinstance(validate_method_settings(name, {}), dict), name
        assert build_method(name, {}).config is not None, name


def test_settings_and_registry_are_torch_free():
    code = ("import sys; import smcbench.sparsity.registry as r; r.validate_method_settings('gmp', {'t0': 0.2}); "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_loop_names_no_method():
    """train.py decides by MethodInfo facts, never by comparing a method's name."""
    tree = ast.parse((ROOT / "src" / "smcbench" / "train.py").read_text())
    names = set(METHODS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in names, f"train.py names method {node.value!r} (line {node.lineno})"
