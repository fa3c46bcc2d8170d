"""Per-run files and the suite's layerwise table: mask IoU on known masks, layer order, drift, cost."""

import pandas as pd
import pytest
import torch

from smcbench.analysis.data import load_results
from smcbench.analysis.runfiles import (cost_runs, cost_summary, cumulative_cost, drift_table, iou_table,
                                        layerwise_table, mask_iou, read_layerwise)
from smcbench.sparsity.mask import Mask
from test_analysis_fixtures import make_suite


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
    layers, problem = read_layerwise(suite / "layerwise.csv")
    assert problem is None
    table, bad = iou_table(df, [2], tmp_path, layers)
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
    per_layer = table[table["name"] != "(all layers)"].sort_values("order")
    assert list(per_layer["name"])[0].endswith("word_embeddings.weight")
    # reversed order in the layerwise table: the IoU rows follow it
    flipped = layers.assign(order=3 - layers["order"])
    again, _ = iou_table(df, [2], tmp_path, flipped)
    assert list(again[again["name"] != "(all layers)"].sort_values("order")["name"])[0] == "classifier.weight"


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
    # shuffle the rows of the layerwise table: the order column, not the row order, decides
    run = df[(df["method"] == "omp_after") & (df["level"] == 2)]["run_dir"].iloc[0]
    layers, _ = read_layerwise(suite / "layerwise.csv")
    lw = layers[layers["run_dir"] == run]
    table, bad = layerwise_table(df, [2], layers.iloc[::-1])
    assert not bad and set(table["method"]) == {"omp_after"}
    assert list(table.sort_values("order")["name"]) == list(lw.sort_values("order")["name"])
    assert table.set_index("name")["sparsity_mean"].to_dict() == pytest.approx(lw.set_index("name")["sparsity"].to_dict())


def test_layerwise_runs_without_rows_and_a_missing_table_are_said(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,), seeds=(0, 1))
    df = load_results(suite / "results.csv")
    layers, _ = read_layerwise(suite / "layerwise.csv")
    victim = df[(df["method"] == "omp_after") & (df["seed"] == 1)]["run_dir"].iloc[0]
    table, bad = layerwise_table(df, [1], layers[layers["run_dir"] != victim])   # e.g. an old metrics.json
    assert len(bad) == 1 and victim in bad[0] and set(table["n_runs"]) == {1}
    empty, problem = read_layerwise(tmp_path / "nope.csv")
    assert empty.empty and "not found" in problem and "results" in problem


def test_drift_mean_over_seeds(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,), seeds=(0, 1))
    table, bad = drift_table(load_results(suite / "results.csv"), tmp_path)
    assert not bad and len(table) == 4 and set(table["n_runs"]) == {2}
    first = table.sort_values("order").iloc[0]
    assert first["rel_drift_mean"] == pytest.approx(0.01 * (1 + 1.1) / 2)


def test_cost_from_the_jobs_own_records(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after", "lth"), levels=(1, 2), seeds=(0,))
    # every job's own record (metrics.json -> results.csv: 61 s, 500 MB); one run without it is said
    csv = suite / "results.csv"
    df = pd.read_csv(csv)
    victim = df[(df["method"] == "omp_after") & (df["level"] == 1)]["run_dir"].iloc[0]
    df.loc[df["run_dir"] == victim, ["wall_time_s", "peak_mem_mb"]] = None
    df.to_csv(csv, index=False)
    runs, bad = cost_runs(load_results(csv))
    assert bad == [victim]
    by = runs.set_index("run_dir")
    assert by.loc[victim, "source"] == "none" and by.loc[victim, "wall_s"] != by.loc[victim, "wall_s"]
    assert (by.drop(victim)["source"] == "metrics.json").all() and (by.drop(victim)["peak_mem_mb"] == 500.0).all()
    assert (by.drop(victim)["mem_growth_mb"] == 120.0).all()   # the peak over the job's RSS at its start (380)
    summary = cost_summary(runs).set_index("method")
    assert summary.loc["lth", "max_mem_growth_mb"] == 120.0
    assert summary.loc["lth", "job_hours"] == pytest.approx(2 * 61 / 3600)
    cum = cumulative_cost(runs).set_index(["method", "level"])["cum_wall_s"]
    assert cum[("dense", 0)] == 61.0
    assert cum[("omp_after", 2)] == 122.0            # own run + the dense fine-tune it starts from
    assert cum[("lth", 2)] == 183.0                  # round 2 + round 1 + dense


def test_mask_cost_is_inside_the_train_job(tmp_path):
    """Before-training masks are computed inside the train job: mask_wall_time_s says how much of
    its time they took; a before-training run without it says so; other methods have none."""
    base = "results/demo/runs/d/all/m"
    rows = []
    for method, mask_s in (("dense", 0.5), ("snip", None), ("omp_before", 3.0)):
        rel = f"{base}/dense/seed0" if method == "dense" else f"{base}/{method}/paper/s0.2000/seed0"
        rows.append(dict(family="commonsense", dataset="d", model="m", method=method, scope="paper", extra="main",
                         level=0 if method == "dense" else 1, target_sparsity=0.0 if method == "dense" else 0.2,
                         realized_sparsity=0.2, round=0, seed=0, fold="all", split="test", metric="accuracy",
                         value=80.0, n=100, wall_time_s=10.0, peak_mem_mb=400.0, mask_wall_time_s=mask_s,
                         run_dir=rel))
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    runs, bad = cost_runs(load_results(tmp_path / "results.csv"))
    assert not bad
    by = runs.set_index("method")
    assert by.loc["omp_before", "mask_source"] == "in train job" and by.loc["omp_before", "mask_wall_s"] == 3.0
    assert by.loc["snip", "mask_source"] == "not recorded"
    assert by.loc["dense", "mask_source"] == ""        # its recorded set-up time is no mask cost
    cum = cumulative_cost(runs).set_index("method")["cum_wall_s"]
    assert cum["omp_before"] == 10.0                   # its 3 s are inside its own 10 s
    assert cost_summary(runs).set_index("method").loc["omp_before", "job_hours"] == pytest.approx(10 / 3600)


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
