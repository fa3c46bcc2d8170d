"""Reading results.csv and reducing it to points: errors, fold micro-averaging, spread, x positions."""

import pandas as pd
import pytest

from smcbench.analysis import AnalysisInputError
from smcbench.analysis.data import count_metrics, load_results
from smcbench.analysis.figures import plot_curves
from smcbench.analysis.reports import Inputs
from smcbench.analysis.style import from_axis, short_layer_name, to_axis
from test_analysis_fixtures import make_suite

ARITH = {"mawps": {"family": "arithmetic", "model": "gts", "splits": ["test"], "folds": ["0", "1", "2"],
                   "counts": True}}


def test_missing_results_and_columns_are_named(tmp_path):
    with pytest.raises(AnalysisInputError, match="results table not found: .*results.csv"):
        load_results(tmp_path / "results.csv")
    pd.DataFrame({"dataset": ["a"], "value": [1.0]}).to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(AnalysisInputError, match="lacks column.*family.*model.*method"):
        load_results(tmp_path / "results.csv")


def test_unknown_primary_metric_is_an_error(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,))
    (suite / "primary_metrics.json").write_text('{"cs_easy": "bleu"}')
    with pytest.raises(AnalysisInputError, match="primary metric 'bleu' of dataset 'cs_easy'.*accuracy"):
        Inputs.load(suite / "results.csv")


def test_count_metric_names():
    assert count_metrics("value_accuracy") == ("value_correct", "value_total")
    assert count_metrics("accuracy") == ("correct", "total")
    assert count_metrics("bleu") is None


def test_fold_micro_average_differs_from_mean(tmp_path):
    # Fold f has total 50 + 10 f and accuracy 90 − 10 f (percent): micro != mean of folds.
    acc = {"0": 90.0, "1": 80.0, "2": 70.0}

    def value(ds, method, k, seed, fold, split):
        return acc[fold] - (0 if method == "dense" else k)

    suite = make_suite(tmp_path, datasets=ARITH, methods=("dense", "omp_after"), levels=(1,), seeds=(0,),
                       value=value)
    inp = Inputs.load(suite / "results.csv")
    dense = inp.seeds[(inp.seeds["method"] == "dense") & (inp.seeds["split"] == "test")].iloc[0]
    micro = 100 * (0.9 * 50 + 0.8 * 60 + 0.7 * 70) / (50 + 60 + 70)
    assert dense["fold_agg"] == "micro" and dense["n_folds"] == 3
    assert dense["value"] == pytest.approx(micro)
    assert dense["value"] != pytest.approx(80.0)
    # One seed, several folds: the spread is the std over folds and says so.
    p = inp.points[(inp.points["method"] == "dense") & (inp.points["split"] == "test")].iloc[0]
    assert p["spread_source"] == "folds" and p["spread"] == pytest.approx(10.0)


def test_mean_over_folds_without_counts(tmp_path):
    ds = {"cv": {"family": "protein", "model": "esm", "splits": ["test"], "folds": ["0", "1"], "counts": False}}

    def value(d, method, k, seed, fold, split):
        return 60.0 + 10 * int(fold) + seed

    suite = make_suite(tmp_path, datasets=ds, methods=("dense",), levels=(1,), seeds=(0, 1), value=value,
                       n=lambda d, fold: None)
    inp = Inputs.load(suite / "results.csv")
    p = inp.points[inp.points["split"] == "test"].iloc[0]
    assert p["fold_agg"] == "mean"
    assert p["mean"] == pytest.approx(65.5)  # seeds 65 and 66
    assert p["spread_source"] == "seeds" and p["spread"] == pytest.approx(2 ** -0.5)


def test_several_test_splits_are_separate_points(tmp_path):
    ds = {"race": {"family": "commonsense", "model": "roberta", "splits": ["test_high", "test_middle"],
                   "folds": ["all"]}}

    def value(d, method, k, seed, fold, split):
        return 70.0 if split == "test_high" else 75.0

    suite = make_suite(tmp_path, datasets=ds, methods=("dense", "omp_after"), levels=(1,), value=value)
    inp = Inputs.load(suite / "results.csv")
    assert set(inp.points["split"]) == {"test_high", "test_middle"}  # validation is not reported
    assert set(inp.points.loc[inp.points["split"] == "test_middle", "mean"]) == {75.0}


def test_points_sit_at_realized_sparsity(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after", "random_after"), levels=(1, 2))
    inp = Inputs.load(suite / "results.csv", root=tmp_path)
    df = pd.read_csv(suite / "results.csv")
    pts = inp.main_points()
    fig, panels = plot_curves(pts)
    ax = panels[("cs_easy", "tiny_roberta", "test")]
    for method in ("omp_after", "random_after"):
        realized = (df[(df["method"] == method) & (df["split"] == "test")]
                    .groupby("level")["realized_sparsity"].mean().sort_index().to_numpy())
        mine = pts[pts["method"] == method].sort_values("level")
        assert mine["realized_mean"].to_numpy() == pytest.approx(realized)
        # the plotted line's x data is the realized sparsity (not the nominal target), dodged by one
        # constant offset per method along the level axis so error bars do not overlap
        xs = [line.get_xdata() for line in ax.get_lines() if list(line.get_ydata()) == list(mine["mean"])]
        assert xs
        shift = to_axis(list(xs[0])) - to_axis(list(realized))
        assert shift == pytest.approx([shift[0]] * len(shift)) and 0 < abs(shift[0]) <= 0.25
    targets = sorted(set(pts["target_sparsity"]) - {0.0})
    assert list(ax.get_xticks()) == pytest.approx(targets)


def test_axis_transform_and_short_names():
    assert to_axis([0.2, 0.36]) == pytest.approx([1.0, 2.0])
    assert from_axis(to_axis(0.5904)) == pytest.approx(0.5904)
    assert short_layer_name("roberta.encoder.layer.3.attention.self.query.weight") == "encoder3.q"
    assert short_layer_name("roberta.embeddings.word_embeddings.weight") == "emb.tok"
    assert short_layer_name("classifier.weight") == "head"


def test_folds_weighted_by_n_without_count_rows(tmp_path):
    # No value_correct/value_total rows, but every row has n: fold f scores 90 - 10 f on n = 10 + 40 f.
    ds = {"cv": {"family": "arithmetic", "model": "gts", "splits": ["test"], "folds": ["0", "1"], "counts": False}}

    def value(d, method, k, seed, fold, split):
        return 90.0 - 10 * int(fold)

    suite = make_suite(tmp_path, datasets=ds, methods=("dense",), levels=(1,), seeds=(0,), value=value,
                       n=lambda d, fold: 10 + 40 * int(fold))
    p = Inputs.load(suite / "results.csv").points.query("split == 'test'").iloc[0]
    assert p["fold_agg"] == "micro"
    assert p["mean"] == pytest.approx((0.9 * 10 + 0.8 * 50) / 60 * 100)


def test_value_best_on_test_gaps_are_warned_not_silent(tmp_path, capsys):
    ds = {"a": {"family": "commonsense", "model": "m", "splits": ["test"], "folds": ["all"]},
          "b": {"family": "arithmetic", "model": "m", "splits": ["test"], "folds": ["all"]}}
    suite = make_suite(tmp_path, datasets=ds, methods=("dense", "omp_after"), levels=(1,))
    df = pd.read_csv(suite / "results.csv")
    df.loc[df["dataset"] == "b", "value_best_on_test"] = None   # report_best_on_test: false
    df.to_csv(suite / "results.csv", index=False)
    inp = Inputs.load(suite / "results.csv", value_col="value_best_on_test")
    err = capsys.readouterr().err
    assert inp.left_out == ["b"] and "value_best_on_test is empty for dataset(s) b" in err
    assert set(inp.points["dataset"]) == {"a"}
    assert Inputs.load(suite / "results.csv").left_out == []
