"""The tidy results table from run folders' metrics.json."""

import csv
import json

import pytest

from smcbench.results import COLUMNS, ResultsError, collect, identity_from_run_dir


def fake_run(root, rel, method, realized, rows, primary="accuracy"):
    d = root / rel
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "family": "commonsense", "dataset": "d", "method": method, "scope": "paper", "realized_sparsity": realized,
        "mask_sparsity": realized, "primary_metric": primary, "selection": {"rule": "best validation"},
        "signature": "accuracy|x", "rows": rows, "wall_time_s": 1.5, "peak_mem_mb": 10, "rss_at_start_mb": 7.5, "git_revision": "abc",
        "config_hash": "h"}))
    return d / "metrics.json"


def test_identity_from_run_dir():
    assert identity_from_run_dir("results/demo/runs/d/all/m/dense/seed1") == {
        "dataset": "d", "fold": "all", "model": "m", "method": "dense", "scope": None, "level_tag": "s0", "seed": 1}
    ident = identity_from_run_dir("results/demo/runs/d/3/m/snip+rigl/modules-Q+K/s0.3600/seed0")
    assert ident["method"] == "snip+rigl" and ident["scope"] == "modules:Q+K" and ident["fold"] == "3"
    with pytest.raises(ResultsError, match="unexpected run directory layout"):
        identity_from_run_dir("results/demo/runs/d/all/m/lth/seed0")


def test_collect_writes_one_row_per_split_and_metric(tmp_path):
    rows = [{"split": "validation", "metric": "accuracy", "value": 70.0, "n": 10},
            {"split": "test", "metric": "accuracy", "value": 60.0, "value_best_on_test": 62.0, "baseline": 25.0, "n": 20}]
    dense = fake_run(tmp_path, "runs/d/all/m/dense/seed0", "dense", 0.001, rows)
    lth = fake_run(tmp_path, "runs/d/all/m/lth/paper/s0.3600/seed0", "lth", 0.36, rows)
    abl = fake_run(tmp_path, "runs/d/all/m/lth/no_embeddings/s0.3600/seed0", "lth", 0.36, rows)
    out = tmp_path / "results.csv"
    n, primary = collect([dense, lth, abl], out, {str(abl.parent): "embeddings_ablation"})
    assert n == 6 and primary == {"d": "accuracy"}
    table = list(csv.DictReader(out.open()))
    assert list(table[0]) == COLUMNS
    by = {(r["method"], r["extra"], r["split"]): r for r in table}
    r = by[("lth", "main", "test")]
    assert (r["level"], r["round"], float(r["target_sparsity"])) == ("2", "2", pytest.approx(0.36))
    assert (r["value"], r["value_best_on_test"], r["baseline"], r["n"]) == ("60.0", "62.0", "25.0", "20")
    assert by[("dense", "main", "test")]["level"] == "0" and by[("dense", "main", "test")]["round"] == "0"
    assert ("lth", "embeddings_ablation", "test") in by


def test_missing_metrics_are_named(tmp_path):
    with pytest.raises(ResultsError, match="have no metrics.json"):
        collect([tmp_path / "runs/d/all/m/dense/seed0/metrics.json"], tmp_path / "r.csv")


def test_provenance_passes_through_and_missing_n_is_warned(tmp_path, capsys):
    sig = "accuracy|family:commonsense|versions:torch=2.4.0,transformers=4.44.0"
    with_n = [{"split": "test", "metric": "accuracy", "value": 100 * 183 / 200, "n": 200}]
    without_n = [{"split": "test", "metric": "accuracy", "value": 50.0}]
    a = fake_run(tmp_path, "runs/d/all/m/dense/seed0", "dense", 0.0, with_n)
    b = fake_run(tmp_path, "runs/e/all/m/dense/seed0", "dense", 0.0, without_n)
    for path, extra in ((a, {"git_revision": "0123abc-dirty", "signature": sig, "mask_wall_time_s": 2.5}), (b, {})):
        m = json.loads(path.read_text())
        m.update(extra)
        path.write_text(json.dumps(m))
    out = tmp_path / "results.csv"
    collect([a, b], out)
    assert "rows without n" in capsys.readouterr().err
    rows = {r["dataset"]: r for r in csv.DictReader(out.open())}
    # identity of run e comes from its folder: dataset "e"
    r = rows["d"]
    assert float(r["value"]) == 91.5 and r["n"] == "200"            # a Python float, exact
    assert r["git_revision"] == "0123abc-dirty" and r["signature"] == sig and r["mask_wall_time_s"] == "2.5"
    assert (r["peak_mem_mb"], r["rss_at_start_mb"]) == ("10", "7.5")
    assert rows["e"]["n"] == "" and rows["e"]["mask_wall_time_s"] == ""


def test_collect_gathers_every_runs_layerwise_rows_and_names_old_metrics(tmp_path, capsys):
    """Per-tensor sparsity lives in each metrics.json (`layerwise`); collect writes one
    layerwise.csv beside results.csv. An older metrics.json without the key is still read."""
    rows = [{"split": "test", "metric": "accuracy", "value": 60.0, "n": 20}]
    layers = [{"order": 0, "name": "emb.weight", "shape": "4x2", "numel": 8, "kept": 8, "sparsity": 0.0},
              {"order": 1, "name": "fc.weight", "shape": "2x2", "numel": 4, "kept": 1, "sparsity": 0.75}]
    new = fake_run(tmp_path, "runs/d/all/m/lth/paper/s0.3600/seed0", "lth", 0.25, rows)
    m = json.loads(new.read_text())
    new.write_text(json.dumps({**m, "layerwise": layers}))
    old = fake_run(tmp_path, "runs/d/all/m/dense/seed0", "dense", 0.0, rows)
    out = tmp_path / "results.csv"
    n, _ = collect([new, old], out)
    assert n == 2                                         # the old run's results are kept
    err = capsys.readouterr().err
    assert "1 metrics.json without per-tensor sparsity" in err and str(old) in err
    table = list(csv.DictReader((tmp_path / "layerwise.csv").open()))
    assert list(table[0]) == ["run_dir", "order", "name", "shape", "numel", "kept", "sparsity"]
    assert [(r["run_dir"], r["name"], r["kept"]) for r in table] == [
        (str(new.parent), "emb.weight", "8"), (str(new.parent), "fc.weight", "1")]
    results_dirs = {r["run_dir"] for r in csv.DictReader(out.open())}
    assert str(new.parent) in results_dirs                # the same run_dir string joins the two tables
