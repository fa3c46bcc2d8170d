"""Figures a reader of the paper can read: units on the axes, y range from the data and the dense
band, identical masks and chance level named, drift only from pre-trained values, Table 1 order,
and no PNG taller than 3,000 px."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from smcbench.analysis.figures import (MAX_PX, identical_groups, plot_curves, plot_drift, plot_iou,  # noqa: E402
                                       plot_layerwise, png_size, save, y_range)
from smcbench.analysis.reports import OUTPUTS, FAMILIES, Inputs, module_order_key, run_modulewise  # noqa: E402
from smcbench.analysis.runfiles import no_pretrained_value  # noqa: E402
from smcbench.analysis.style import metric_label  # noqa: E402
from test_analysis_fixtures import make_suite  # noqa: E402


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def test_curves_y_range_from_data_and_dense_band_baseline_as_text(tmp_path):
    # MAWPS-like: everything between 88 and 92, trivial baseline 33.3
    def value(ds, method, k, seed, fold, split):
        return 91.0 + 0.5 * seed if method == "dense" else 90.5 - 0.5 * k

    suite = make_suite(tmp_path, methods=("dense", "omp_after", "lth"), value=value)
    fig, panels = plot_curves(Inputs.load(suite / "results.csv").main_points())
    ax = panels[("cs_easy", "tiny_roberta", "test")]
    lo, hi = ax.get_ylim()
    assert 87.0 < lo < 89.0 and 91.0 < hi < 93.0          # not stretched down to 33.3
    assert any("trivial baseline: 33.3 (below the axis)" in t for t in _texts(fig))
    assert ax.get_ylabel() == "accuracy (%)" and ax.get_xlabel() == "realized sparsity (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["20", "36", "48.8"]


def test_y_range_keeps_small_effects_visible():
    assert y_range([89.0, 92.0]) == pytest.approx((88.54, 92.46))
    lo, hi = y_range([0.90, 0.91])          # a fraction-scale metric gets a fraction-scale margin
    assert 0.89 < lo < 0.90 and 0.91 < hi < 0.92


def test_metric_labels_have_units():
    assert metric_label("accuracy") == "accuracy (%)"
    assert metric_label("value_accuracy") == "value accuracy (%)"
    assert metric_label("bleu") == "BLEU"
    assert metric_label("top1_accuracy") == "top1 accuracy (%)"


def test_no_png_taller_than_3000_px(tmp_path):
    # 30 layerwise panels (the size that used to give a 5,198 px canvas)
    rows = []
    for d in range(10):
        for level in (2, 5, 8):
            for order, name in enumerate(["emb", "l0.q", "l0.k", "l0.ffn1", "head"]):
                rows.append(dict(dataset=f"ds{d}", model="m", method="omp_after", scope="paper", level=level,
                                 target_sparsity=1 - 0.8 ** level, order=order, name=name, numel=64,
                                 sparsity_mean=1 - 0.8 ** level, sparsity_std=0.0, n_runs=1))
    fig = plot_layerwise(pd.DataFrame(rows))
    png = tmp_path / "lw.png"
    save(fig, png, tmp_path / "lw.pdf")
    w, h = png_size(png)
    assert h <= MAX_PX and w > 1000
    assert all(ax.get_xlabel() == "layer (input → output)" for ax in fig.axes if ax.get_visible())


def test_layerwise_and_iou_are_written_per_family():
    assert FAMILIES == ("commonsense", "arithmetic", "protein", "translation")
    for stem, sub in (("layerwise_sparsity", "layerwise"), ("mask_iou", "iou"), ("mask_iou_layers", "iou")):
        for fam in FAMILIES:
            assert f"figures/{stem}_{fam}.png" in OUTPUTS[sub]


def _iou_rows(pairs):
    rows = []
    for a, b, iou in pairs:
        rows.append(dict(dataset="d", model="m", level=3, target_sparsity=0.488, method_a=a, method_b=b, order=-1,
                         name="(all layers)", numel=100, iou=iou, iou_random=0.34, n_pairs=2))
    return pd.DataFrame(rows)


def test_iou_heatmap_names_chance_colour_bar_and_identical_masks():
    t = _iou_rows([("omp_after", "random_after", 0.35), ("omp_after", "random_before", 0.35),
                   ("random_after", "random_before", 1.0)])
    fig = plot_iou(t)
    title = " ".join(fig.axes[0].get_title().split())   # wrapped lines joined
    assert "chance (independent random masks): 0.34" in title
    assert "identical masks" in title and "random_after = random_before" in title
    assert any(ax.get_ylabel() == "IoU of kept weights" for ax in fig.axes)      # the colour bar
    # symmetric: both triangles hold IoU (no hidden chance-level triangle)
    mesh = fig.axes[0].collections[0].get_array().reshape(3, 3)
    assert mesh[0, 1] == mesh[1, 0] == pytest.approx(0.35)
    assert identical_groups([("a", "b"), ("b", "c"), ("x", "y")], ["c", "b", "a", "y", "x"]) == [["c", "b", "a"], ["y", "x"]]


def test_drift_marks_tensors_without_a_pretrained_value():
    assert no_pretrained_value("classifier.weight") and no_pretrained_value("roberta.pooler.dense.weight")
    assert not no_pretrained_value("roberta.encoder.layer.0.attention.self.query.weight")
    assert no_pretrained_value("predict.concat_l.weight", "arithmetic")
    assert not no_pretrained_value("roberta.encoder.layer.0.output.dense.weight", "arithmetic")
    t = pd.DataFrame([dict(dataset="d", model="m", order=i, name=n, numel=10, rel_drift_mean=0.01 * (i + 1),
                           rel_drift_std=0.0, n_runs=2, from_pretrained=fp)
                      for i, (n, fp) in enumerate([("enc.q", True), ("enc.ffn", True), ("head", False)])])
    fig = plot_drift(t)
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    pre = [ln for ln in lines if ln.get_marker() == "o"][0]
    fresh = [ln for ln in lines if ln.get_marker() == "x"][0]
    assert list(pre.get_xdata()) == [0, 1] and list(pre.get_ydata()) == pytest.approx([1.0, 2.0])   # in %
    assert list(fresh.get_xdata()) == [2]
    assert "%" in ax.get_ylabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("no pre-trained value" in x for x in labels)


def test_modulewise_rows_in_table1_order(tmp_path):
    scopes = ["modules:Q+K+V+O+FFN", "modules:K+V", "modules:FFN", "modules:Q+K", "modules:O", "modules:Q",
              "modules:Q+V", "modules:K", "modules:V", "modules:Q+K+V"]
    assert sorted(scopes, key=module_order_key) == [
        "modules:Q", "modules:K", "modules:V", "modules:O", "modules:FFN", "modules:Q+K", "modules:Q+V",
        "modules:K+V", "modules:Q+K+V", "modules:Q+K+V+O+FFN"]
    extra = [{"dataset": "cs_easy", "method": "omp_after", "scope": s, "extra": "modulewise", "level": 0,
              "target": 0.05} for s in ("modules:Q+K", "modules:FFN", "modules:Q")]
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,), seeds=(0,), extra_rows=extra)
    inp = Inputs.load(suite / "results.csv", root=tmp_path)
    run_modulewise(inp, suite)
    t = pd.read_csv(suite / "tables" / "modulewise.csv")
    assert list(t["scope"]) == ["modules:Q", "modules:FFN", "modules:Q+K"]
    md = (suite / "tables" / "modulewise.md").read_text()
    assert "| target (%) | realized (%) |" in md and "| Q, K |" in md


def _matching_suite(tmp_path):
    """cs_easy (commonsense) and ar_hard (arithmetic): dense 80 / 80.2 (tolerance 1 point), the
    default slopes (omp_after −0.5 per level, random_after −2), and random_after collapsing on ar_hard."""
    from test_analysis_fixtures import default_value

    def value(ds, method, k, seed, fold, split):
        if ds == "ar_hard" and method == "random_after":
            return 80.0 - 40.0 * k
        return default_value(ds, method, k, seed, fold, split)

    datasets = {"cs_easy": {"family": "commonsense", "model": "tiny_roberta", "splits": ["test"], "folds": ["all"]},
                "ar_hard": {"family": "arithmetic", "model": "gts", "splits": ["test"], "folds": ["all"]}}
    return make_suite(tmp_path, datasets=datasets, methods=("dense", "omp_after", "random_after"), levels=(1, 2),
                      value=value)


def test_matching_figure_plots_method_minus_dense_and_marks_the_matching_level(tmp_path):
    from smcbench.analysis.figures import MATCHING_FOOTNOTE, matching_figure_points, plot_matching
    from smcbench.analysis.matching import matching_table

    inp = Inputs.load(_matching_suite(tmp_path) / "results.csv")
    pts = inp.main_points()
    frame = matching_figure_points(pts, matching_table(pts, inp.missing, inp.config), inp.config)
    assert len(frame) == 2 * 2 * 2 and set(frame["method"]) == {"omp_after", "random_after"}
    assert (frame["y"] == frame["mean"] - frame["dense_mean"]).all()
    assert frame["dense_mean"].tolist() == pytest.approx([80.1] * 8) and set(frame["tolerance"]) == {1.0}
    omp = frame[(frame["dataset"] == "cs_easy") & (frame["method"] == "omp_after")].sort_values("level")
    # −0.55 matches (≥ −1), −1.05 fails: matching sparsity 20 % at k = 1, flagged there only
    assert omp["y"].tolist() == pytest.approx([-0.55, -1.05])
    assert omp["spread"].tolist() == pytest.approx([0.0707107] * 2)
    assert omp["matching"].tolist() == [True, False]
    assert set(omp["label"]) == {"cs_easy [easy] omp_after: 20.0% k=1"}
    rnd = frame[frame["method"] == "random_after"]
    assert not rnd["matching"].any()                          # level 1 already fails: no marker
    assert set(rnd.loc[rnd["dataset"] == "ar_hard", "label"]) == {"ar_hard [hard] random_after: none"}
    assert frame.loc[frame["dataset"] == "ar_hard", "difficulty"].eq("hard").all()
    assert rnd.loc[rnd["dataset"] == "ar_hard", "y"].min() == pytest.approx(-80.1)

    fig = plot_matching(frame, list(FAMILIES))
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["commonsense", "arithmetic"]   # FAMILIES order
    ar = panels[1]
    assert ar.get_yscale() == "symlog" and ar.get_ylim()[0] < -80.1 - 2.0 and ar.get_ylim()[1] > 0
    curves = [ln for ln in ar.get_lines() if ln.get_color() not in ("0.6", "#222222") and ln.get_linestyle() != "None"]
    styles = {ln.get_linestyle() for ln in curves}
    assert len(curves) == 2 and styles == {"--"}                # hard: dashed curves
    hlines = {round(float(ln.get_ydata()[0]), 6) for ln in ar.get_lines() if ln.get_color() == "0.6"}
    assert hlines == {-1.0}                                     # −tolerance of ar_hard
    hollow = [ln for ax in panels for ln in ax.get_lines() if ln.get_markerfacecolor() == "none"]
    assert len(hollow) == 2                                     # omp_after on both datasets, at k = 1
    assert MATCHING_FOOTNOTE in [t.get_text() for t in fig.texts]
    legend = [t.get_text() for ax in fig.axes for lg in [ax.get_legend()] if lg for t in lg.get_texts()]
    assert "cs_easy [easy] omp_after: 20.0% k=1" in legend and "−tolerance ar_hard: −1.00" in legend
    import matplotlib.pyplot as plt
    plt.close(fig)
