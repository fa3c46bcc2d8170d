"""Per-run files: mask IoU on known masks, layer order, drift, benchmark.tsv cost and fallback."""

import pandas as pd
import pytest
import torch

from smcbench.analysis.data import load_results
from smcbench.analysis.runfiles import (cost_runs, cost_summary, cumulative_cost, drift_table, iou_table,
                                        layerwise_table, mask_iou, read_benchmark)
from smcbench.sparsity.mask import Mask
from test_analysis_fixtures import make_suite, write_run


def test_iou_on_known_masks(tmp_path):
    a = Mask({"w1": torch.tensor([[1, 1, 0, 0]], dtype=torch.bool), "w2": torch.tensor([1, 0], dtype=torch.bool)})
    b = Mask({"w1": torch.tensor([[1, 0, 1, 0]], dtype=torch.bool), "w2": torch.tensor([1, 0], dtype=torch.bool)})
    c = Mask({"w1": torch.tensor([[0, 0, 1, 1]], dtype=torch.bool), "w2": torch.tensor([0, 1], dtype=torch.bool)})
    for name, m in (("a", a), ("b", b), ("c", c)):
        m.save(tmp_path / f"{name}.safetensors")
    t = mask_iou({m: tmp_path / f"{m}.safetensors" for m in "abc"}).set_index(["method_a", "method_b", "name"])
    assert t.loc[("a", "b", "w1"), "iou"] == pytest.approx(1 / 3)   # {0,1} vs {0,2}
    assert t.loc[("a", "b", "w2"), "iou"] == pytest.approx(1.0)
    assert t.loc[("a", "c", "w1"), "iou"] == 0.0                   # disjoint
    # random-mask reference for densities 1/2 and 1/2: 0.25 / 0.75
    assert t.loc[("a", "b", "w1"), "iou_random"] == pytest.approx(1 / 3)


def test_iou_table_is_seed_matched_with_micro_average(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after", "random_after"), levels=(1, 2), seeds=(0, 1))
    df = load_results(suite / "results.csv")
    table, bad = iou_table(df, [2], tmp_path)
    assert not bad
    assert set(table["level"]) == {2} and set(table["n_pairs"]) == {2}  # 2 seeds, seed-matched
    # recompute the all-layer value of seed 0 by hand from the two masks
    runs = df[(df["level"] == 2) & (df["seed"] == 0)].drop_duplicates("method").set_index("method")["run_dir"]
    ma = Mask.load(tmp_path / runs["omp_after"] / "mask.safetensors")
    mb = Mask.load(tmp_path / runs["random_after"] / "mask.safetensors")
    inter = sum(int((ma[n] & mb[n]).sum()) for n in ma)
    union = sum(int((ma[n] | mb[n]).sum()) for n in ma)
    runs1 = df[(df["level"] == 2) & (df["seed"] == 1)].drop_duplicates("method").set_index("method")["run_dir"]
    ma1 = Mask.load(tmp_path / runs1["omp_after"] / "mask.safetensors")
    mb1 = Mask.load(tmp_path / runs1["random_after"] / "mask.safetensors")
    inter1 = sum(int((ma1[n] & mb1[n]).sum()) for n in ma1)
    union1 = sum(int((ma1[n] | mb1[n]).sum()) for n in ma1)
    allrow = table[table["name"] == "(all layers)"].iloc[0]
    assert allrow["iou"] == pytest.approx((inter / union + inter1 / union1) / 2)
    # per-layer rows come in the layerwise.csv order
    layers = table[table["name"] != "(all layers)"].sort_values("order")
    assert list(layers["name"])[0].endswith("word_embeddings.weight")


def test_missing_mask_files_are_reported(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after", "random_after"), levels=(1,), seeds=(0,))
    df = load_results(suite / "results.csv")
    victim = df[df["method"] == "random_after"]["run_dir"].iloc[0]
    (tmp_path / victim / "mask.safetensors").unlink()
    table, bad = iou_table(df, [1], tmp_path)
    assert table.empty and len(bad) == 1 and victim in bad[0]


def test_layerwise_sorted_by_order_column(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1, 2), seeds=(0,))
    df = load_results(suite / "results.csv")
    # shuffle the rows of one layerwise.csv: the order column, not the row order, decides
    run = tmp_path / df[(df["method"] == "omp_after") & (df["level"] == 2)]["run_dir"].iloc[0]
    lw = pd.read_csv(run / "layerwise.csv")
    lw.iloc[::-1].to_csv(run / "layerwise.csv", index=False)
    table, bad = layerwise_table(df, [2], tmp_path)
    assert not bad and set(table["method"]) == {"omp_after"}
    assert list(table.sort_values("order")["name"]) == list(lw.sort_values("order")["name"])
    assert table.set_index("name")["sparsity_mean"].to_dict() == pytest.approx(lw.set_index("name")["sparsity"].to_dict())


def test_drift_mean_over_seeds(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,), seeds=(0, 1))
    table, bad = drift_table(load_results(suite / "results.csv"), tmp_path)
    assert not bad and len(table) == 4 and set(table["n_runs"]) == {2}
    first = table.sort_values("order").iloc[0]
    assert first["rel_drift_mean"] == pytest.approx(0.01 * (1 + 1.1) / 2)


def test_job_record_first_benchmark_as_fallback(tmp_path):
    run = tmp_path / "r"
    write_run(run, "dense", 0, 0, wall=120.0)
    assert read_benchmark(run / "benchmark.tsv") == (pytest.approx(120.0), pytest.approx(512.5))
    assert read_benchmark(tmp_path / "nope.tsv") is None
    suite = make_suite(tmp_path / "s", methods=("dense", "omp_after", "lth"), levels=(1, 2), seeds=(0,))
    # the job's own record (metrics.json -> results.csv: 61 s, 500 MB) wins over benchmark.tsv
    # (60 s, 512.5 MB of the process Snakemake watched); one run without it falls back.
    csv = suite / "results.csv"
    df = pd.read_csv(csv)
    victim = df[(df["method"] == "omp_after") & (df["level"] == 1)]["run_dir"].iloc[0]
    df.loc[df["run_dir"] == victim, ["wall_time_s", "peak_mem_mb"]] = None
    df.to_csv(csv, index=False)
    runs, bad = cost_runs(load_results(csv), tmp_path / "s")
    assert not bad
    by = runs.set_index("run_dir")
    assert by.loc[victim, "source"] == "benchmark.tsv" and by.loc[victim, "wall_s"] == 60.0
    assert (by.drop(victim)["source"] == "metrics.json").all() and (by.drop(victim)["peak_mem_mb"] == 500.0).all()
    summary = cost_summary(runs).set_index("method")
    assert summary.loc["omp_after", "job_hours"] == pytest.approx((61 + 60) / 3600)
    cum = cumulative_cost(runs).set_index(["method", "level"])["cum_wall_s"]
    assert cum[("dense", 0)] == 61.0
    assert cum[("omp_after", 2)] == 122.0            # own run + the dense fine-tune it starts from
    assert cum[("lth", 2)] == 183.0                  # round 2 + round 1 + dense


def test_mask_costs_in_job_or_from_the_mask_job(tmp_path):
    """Before-training masks: inside the train job (mask_wall_time_s) or a separate mask job whose
    mask.json records its time; a shared mask (snip and snip+rigl) counts once in job hours."""
    import json

    base = "results/demo/runs/d/all/m"
    rows = []
    for method, mask_s in (("dense", 0.5), ("snip", None), ("snip+rigl", None), ("omp_before", 3.0)):
        rel = f"{base}/dense/seed0" if method == "dense" else f"{base}/{method}/paper/s0.2000/seed0"
        (tmp_path / rel).mkdir(parents=True)
        rows.append(dict(family="commonsense", dataset="d", model="m", method=method, scope="paper", extra="main",
                         level=0 if method == "dense" else 1, target_sparsity=0.0 if method == "dense" else 0.2,
                         realized_sparsity=0.2, round=0, seed=0, fold="all", split="test", metric="accuracy",
                         value=80.0, n=100, wall_time_s=10.0, peak_mem_mb=400.0, mask_wall_time_s=mask_s,
                         run_dir=rel))
    shared = tmp_path / "results/demo/masks/d/all/m/snip/paper/s0.2000/seed0"
    shared.mkdir(parents=True)
    (shared / "mask.json").write_text(json.dumps({"wall_time_s": 4.0, "peak_mem_mb": 700.0}))
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    runs, bad = cost_runs(load_results(tmp_path / "results.csv"), tmp_path)
    by = runs.set_index("method")
    assert by.loc["omp_before", "mask_source"] == "in train job" and by.loc["omp_before", "mask_wall_s"] == 3.0
    assert by.loc["snip", "mask_source"] == by.loc["snip+rigl", "mask_source"] == "mask job (mask.json)"
    assert by.loc["dense", "mask_source"] == ""        # its recorded set-up time is no mask cost
    cum = cumulative_cost(runs).set_index("method")["cum_wall_s"]
    assert cum["snip"] == 14.0 and cum["snip+rigl"] == 14.0   # own 10 s + the 4 s mask job
    assert cum["omp_before"] == 10.0                        # its 3 s are inside its own 10 s
    summary = cost_summary(runs).set_index("method")
    assert summary.loc["snip", "job_hours"] == pytest.approx(14 / 3600)
    assert summary.loc["snip", "max_peak_mem_mb"] == 700.0
    # no mask.json time and no benchmark.tsv: said, not silently zero
    (shared / "mask.json").write_text("{}")
    runs, _ = cost_runs(load_results(tmp_path / "results.csv"), tmp_path)
    assert runs.set_index("method").loc["snip", "mask_source"] == "not recorded"


def test_drift_from_pretrained_column_or_name_rule(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,), seeds=(0,))
    df = load_results(suite / "results.csv")
    table, _ = drift_table(df, tmp_path)
    by = table.set_index("name")
    assert not by.loc["classifier.weight", "from_pretrained"]            # name rule: a fresh head
    assert by.loc["roberta.encoder.layer.0.attention.self.query.weight", "from_pretrained"]
    assert set(table["pretrained_source"]) == {"name rule"}
    # drift.csv's own column wins over the name rule
    run = tmp_path / df[df["method"] == "dense"]["run_dir"].iloc[0]
    d = pd.read_csv(run / "drift.csv")
    d["from_pretrained"] = [True, False, True, True]
    d.to_csv(run / "drift.csv", index=False)
    by = drift_table(df, tmp_path)[0].set_index("name")
    assert by.loc["classifier.weight", "from_pretrained"]
    assert not by.loc["roberta.encoder.layer.0.attention.self.query.weight", "from_pretrained"]
    assert set(by["pretrained_source"]) == {"drift.csv"}
