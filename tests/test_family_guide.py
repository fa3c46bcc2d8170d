"""The "Add your own task family" example of docs/families.md works as written: its five files
become a package, its registration line goes into a patched ``tasks.FAMILIES``, its config entries
validate, and prepare, pretrained, a dense run and an ``omp_before`` run go through the CLI and
the pipeline's own training loop."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from smcbench import config as C
from smcbench import tasks

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "families.md"
SNIPPET = re.compile(r"<!-- docs-test: (\S+) -->\s*```\w+\n(.*?)```", re.S)


def _snippets() -> dict[str, str]:
    found = dict(SNIPPET.findall(DOC.read_text()))
    assert {"registry", "config"} <= set(found), "docs/families.md lacks the registry or config example"
    return found


@pytest.fixture
def family(tmp_path, monkeypatch):
    """Write the guide's package where its registration line points (a folder added to
    ``smcbench.tasks.__path__``), register it, and re-derive the registries from it."""
    snippets = _snippets()
    (name, module), = eval("{" + snippets["registry"] + "}").items()
    assert module.startswith("smcbench.tasks."), module
    package = module.rsplit(".", 1)[1]
    root = tmp_path / "pkgs"
    files = {k: v for k, v in snippets.items() if k.endswith(".py")}
    assert {f"{package}/{f}" for f in ("__init__.py", "synthetic.py", "data.py", "model.py", "task.py")} == set(files)
    for rel, code in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(code)
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(root)])
    importlib.invalidate_caches()
    monkeypatch.setitem(tasks.FAMILIES, name, module)
    known, archs = tasks._declarations()  # the registries as derived at import, now with the new family
    for dataset, fam in known.items():
        if fam == name:
            monkeypatch.setitem(tasks.KNOWN_DATASETS, dataset, fam)
    monkeypatch.setitem(tasks.ARCHS, name, archs[name])
    monkeypatch.setenv("SMCBENCH_NO_PROGRESS", "1")
    yield name, module, snippets
    for mod in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        del sys.modules[mod]


def _config(snippets: dict) -> dict:
    cfg = yaml.safe_load((ROOT / "workflow" / "configs" / "demo.yaml").read_text())
    extra = yaml.safe_load(snippets["config"])
    cfg["models"].update(extra["models"])
    cfg["datasets"].update(extra["datasets"])
    return cfg


def test_registration_derives_datasets_archs_and_settings(family):
    name, module, snippets = family
    assert tasks.dataset_family("demo_majority") == name and tasks.ARCHS[name] == ("bow_mlp",)
    cfg = _config(snippets)
    C.validate_config(cfg)
    # planning imported only the light __init__, never the torch code of the family
    assert module in sys.modules and f"{module}.task" not in sys.modules and f"{module}.model" not in sys.modules
    runs = [r for r in C.iter_runs(cfg) if r.dataset == "demo_majority"]
    assert {(r.method, r.level) for r in runs} == {("dense", "s0")} | {
        (m, C.level_tag(k)) for m in ("omp_before", "omp_after") for k in (1, 3)}
    assert cfg["datasets"]["demo_majority"]["settings"]["validation_fraction"] == 0.2  # defaults filled
    for bad, message in (({"lenght": 15}, "datasets.demo_majority.settings.lenght is not a setting; "
                                          "did you mean 'length'"),
                         ({"length": 14}, "datasets.demo_majority.settings.length=14 must be odd")):
        cfg = _config(snippets)
        cfg["datasets"]["demo_majority"]["settings"] = bad
        with pytest.raises(C.ConfigError, match=re.escape(message)):
            C.validate_config(cfg)
    cfg = _config(snippets)
    cfg["models"]["toy_bow"]["arch"] = "bow_mpl"
    with pytest.raises(C.ConfigError, match="unknown arch 'bow_mpl'.*did you mean 'bow_mlp'"):
        C.validate_config(cfg)


def test_prepare_pretrained_dense_and_pruned_runs(family, tmp_path):
    import torch

    from smcbench.cli import main as cli
    from smcbench.train import RunSpec, run_training

    _, _, snippets = family
    cfg = _config(snippets)
    C.validate_config(cfg)
    data, pre, cache = tmp_path / "data", tmp_path / "pre", str(tmp_path / "cache")
    # the CLI finds the family from the dataset name, as the prepare rule calls it
    assert cli(["prepare", "demo_majority", "--source", "synthetic", "--cache", cache, "--out", str(data),
                "--settings", C.prepare_params(cfg, "demo_majority")]) == 0
    meta = json.loads((data / "meta.json").read_text())
    assert meta["counts"]["train"] + meta["counts"]["validation"] == 400
    assert meta["counts"]["test"] == 200 - meta["dropped"]["test_in_train"] > 150
    assert cli(["pretrained", "toy_bow", "--source", "synthetic", "--cache", cache, "--out", str(pre),
                "--entry", C.pretrained_params(cfg, "toy_bow")]) == 0
    assert json.loads((pre / "pretrained.json").read_text())["path"] == "."

    runs = {(r.method, r.level): r for r in C.iter_runs(cfg) if r.dataset == "demo_majority" and r.seed == 0}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for key in (("dense", "s0"), ("omp_before", C.level_tag(1))):
            r = runs[key]
            params = json.loads(C.train_params(cfg, r.dataset, r.model, r.method, r.scope, r.level))
            spec = RunSpec(params=params, data_dir=data, pretrained_dir=pre, out_dir=tmp_path / r.method,
                           seed=r.seed, log=lambda s: None)
            run_training(spec)
            out[r.method] = json.loads((tmp_path / r.method / "metrics.json").read_text())
    finally:
        torch.set_num_threads(threads)

    for method, m in out.items():
        assert m["family"] == "toyseq" and m["primary_metric"] == "accuracy"
        test = next(row for row in m["rows"] if row["split"] == "test" and row["metric"] == "accuracy")
        assert test["n"] == meta["counts"]["test"]
        assert test["value"] > test["baseline"] + 20, (method, test)  # it learned the task
        assert m["selection"]["total_steps"] == 3 * 10  # epochs x ceil(320 / 32)
    dense, pruned = out["dense"], out["omp_before"]
    assert dense["realized_sparsity"] == 0.0
    # one-shot magnitude pruning before training: exact global count over the scope, kept through training
    assert pruned["target_sparsity"] == pytest.approx(C.target_sparsity(1))
    assert pruned["realized_sparsity"] == pytest.approx(C.target_sparsity(1), abs=1 / pruned["scope_size"])
    assert pruned["mask_sparsity"] == pytest.approx(pruned["realized_sparsity"])
    assert pruned["scope_size"] == 2 * 8 + 8 * 16 + 16 * 2  # paper scope: embedding, hidden, classifier
