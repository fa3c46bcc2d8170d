"""Matching-sparsity table: tolerance edges, dense spread, non-monotone curves, missing runs."""

import json

import pytest

from smcbench.analysis.cli import main as analyze
from smcbench.analysis.matching import matching_markdown, matching_table
from smcbench.analysis.reports import Inputs
from test_analysis_fixtures import make_suite


def _table(suite, tolerance=None):
    inp = Inputs.load(suite / "results.csv")
    return matching_table(inp.main_points(), inp.missing, inp.config, tolerance), inp


def _row(table, method):
    rows = table[table["method"] == method]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_tolerance_edges_equal_matches_just_below_fails(tmp_path):
    # dense = 80 exactly for both seeds (spread 0); omp_after loses exactly 1.0 at k=1 and 2
    # (matches: equality counts), 1.001 at k=3 (fails).
    drops = {1: 1.0, 2: 1.0, 3: 1.001}

    def value(ds, method, k, seed, fold, split):
        return 80.0 if method == "dense" else 80.0 - drops[k]

    suite = make_suite(tmp_path, methods=("dense", "omp_after"), value=value)
    table, _ = _table(suite)
    r = _row(table, "omp_after")
    assert r["matching_level"] == 2 and r["failing_level"] == 3
    assert r["tolerance"] == pytest.approx(1.0)
    assert r["failing_value"] == pytest.approx(78.999)
    assert r["status"] == "ok"


def test_dense_seed_spread_replaces_a_smaller_tolerance(tmp_path):
    # dense seeds 78 and 82: sample std = 2.828 > 1 point, so a 2.5-point drop still matches.
    def value(ds, method, k, seed, fold, split):
        if method == "dense":
            return 78.0 if seed == 0 else 82.0
        return 80.0 - 2.5 * k

    suite = make_suite(tmp_path, methods=("dense", "omp_after"), value=value)
    table, _ = _table(suite)
    r = _row(table, "omp_after")
    assert r["dense_spread"] == pytest.approx(2 * 2 ** 0.5)
    assert r["tolerance"] == pytest.approx(2 * 2 ** 0.5)
    assert (r["matching_level"], r["failing_level"]) == (1, 2)
    # An explicit larger tolerance wins over the spread.
    table, _ = _table(suite, tolerance=5.0)
    r = _row(table, "omp_after")
    assert r["tolerance"] == 5.0 and (r["matching_level"], r["failing_level"]) == (2, 3)


def test_non_monotone_curve_gets_no_credit_for_recovery(tmp_path):
    # k=1 matches, k=2 dips below, k=3 recovers: matching = k1, failing = k2, flagged.
    vals = {1: 79.5, 2: 77.0, 3: 79.8}

    def value(ds, method, k, seed, fold, split):
        return 80.0 if method == "dense" else vals[k]

    suite = make_suite(tmp_path, methods=("dense", "omp_after"), value=value)
    table, inp = _table(suite)
    r = _row(table, "omp_after")
    assert (r["matching_level"], r["failing_level"]) == (1, 2)
    assert bool(r["non_monotone"]) and r["highest_matching_any"] == 3
    md = matching_markdown(table, inp.config)
    assert "non-monotone: matches again at k=3" in md


def test_no_level_matches_and_all_levels_match(tmp_path):
    def value(ds, method, k, seed, fold, split):
        return {"dense": 80.0, "omp_after": 79.9, "random_after": 70.0}[method]

    suite = make_suite(tmp_path, methods=("dense", "omp_after", "random_after"), value=value)
    table, inp = _table(suite)
    r = _row(table, "random_after")
    assert r["matching_level"] == 0 and r["failing_level"] == 1
    r = _row(table, "omp_after")
    assert r["matching_level"] == 3 and r["status"] == "all levels match"
    md = matching_markdown(table, inp.config)
    assert "none (0%)" in md and "none (all levels match)" in md


def test_missing_level_is_named_not_a_silent_gap(tmp_path, capsys):
    # lth k=2 has no run for either seed; k=3 of seed 1 is missing too.
    suite = make_suite(tmp_path, methods=("dense", "omp_after", "lth"),
                       drop=[("cs_easy", "lth", 2, 0), ("cs_easy", "lth", 2, 1), ("cs_easy", "lth", 3, 1)])
    table, inp = _table(suite)
    r = _row(table, "lth")
    assert r["matching_level"] == 1
    assert r["failing_level"] == 2 and r["status"].startswith("missing: k=2")
    assert "k=2/seed0" in r["missing"] and "k=3/seed1" in r["missing"]
    assert "missing: k=2" in matching_markdown(table, inp.config)
    # The CLI warns with the names, and lists them in tables/missing_runs.csv.
    assert analyze(["matching", "--results", str(suite / "results.csv"), "--root", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "3 expected run(s) are missing" in err and "cs_easy/tiny_roberta/lth/k=2/seed0" in err
    missing = (suite / "tables" / "missing_runs.csv").read_text()
    assert missing.count("lth") == 3 and "no row in results.csv" in missing


def test_missing_dense_reference(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"),
                       drop=[("cs_easy", "dense", 0, 0), ("cs_easy", "dense", 0, 1)])
    table, inp = _table(suite)
    r = _row(table, "omp_after")
    assert r["status"].startswith("missing: dense reference")
    assert "missing: dense reference" in matching_markdown(table, inp.config)


def test_tolerance_read_from_config(tmp_path):
    def value(ds, method, k, seed, fold, split):
        return 80.0 if method == "dense" else 80.0 - 1.5 * k

    suite = make_suite(tmp_path, methods=("dense", "omp_after"), value=value, tolerance=2.0)
    assert json.loads((suite / "config.json").read_text())["matching_tolerance"] == 2.0
    table, _ = _table(suite)
    assert _row(table, "omp_after")["matching_level"] == 1


def test_missing_extra_runs_are_named(tmp_path, capsys):
    extra = [{"dataset": "cs_easy", "method": "omp_after", "scope": "no_embeddings", "extra": "embeddings_ablation",
              "level": 1, "target": 0.2}]
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1, 2), seeds=(0,), extra_rows=extra)
    cfg = json.loads((suite / "config.json").read_text())
    assert cfg["extra_runs"] == [{"name": "embeddings_ablation", "datasets": ["cs_easy"], "methods": ["omp_after"],
                                  "scope": "no_embeddings", "levels": [1]}]
    cfg["extra_runs"][0]["levels"] = [1, 2]   # the config asks for k=2 too, which never ran
    (suite / "config.json").write_text(json.dumps(cfg))
    table, inp = _table(suite)
    assert list(inp.missing["extra"]) == ["embeddings_ablation"] and list(inp.missing["level"]) == [2]
    assert _row(table, "omp_after")["status"] == "all levels match"   # the main grid is complete
    assert analyze(["matching", "--results", str(suite / "results.csv"), "--root", str(tmp_path)]) == 0
    assert "cs_easy/tiny_roberta/omp_after[embeddings_ablation:no_embeddings]/k=2/seed0" in capsys.readouterr().err


def _f32_percent(fraction: float) -> float:
    """A legacy value: a float32 fraction times 100 (92/100 -> 92.00000166893005)."""
    import numpy as np

    return float(np.float32(fraction)) * 100


def test_exact_tie_with_float32_values_matches(tmp_path):
    # dense seeds 92 and 91 (mean 91.5), snip seeds 91 and 90 (mean 90.5 = 91.5 - 1.0): a tie,
    # which matches by the rule, although float32 puts the dense mean 8e-7 above 91.5.
    dense = {0: 0.92, 1: 0.91}
    snip = {1: {0: 0.91, 1: 0.90}, 2: {0: 0.905, 1: 0.895}}   # k=2: mean 90.0, a clear fail

    def value(ds, method, k, seed, fold, split):
        return _f32_percent(dense[seed] if method == "dense" else snip[k][seed])

    assert _f32_percent(0.92) == pytest.approx(92.00000166893005, abs=1e-12)
    suite = make_suite(tmp_path, methods=("dense", "snip"), levels=(1, 2), value=value)
    r = _row(_table(suite)[0], "snip")
    assert r["dense_mean"] - r["tolerance"] > 90.5       # the float32 noise is really there
    assert (r["matching_level"], r["failing_level"]) == (1, 2)
    assert r["tolerance_source"] == "fixed" and r["tolerance"] == 1.0


def test_tie_slack_is_relative_and_tiny():
    from smcbench.analysis.matching import matches, tie_slack

    assert matches(90.5, 91.5, 1.0) and matches(90.49999, 91.5000008, 1.0)
    assert not matches(90.49, 91.5, 1.0)
    assert not matches(90.5 - 1e-3, 91.5, 1.0)          # a real difference still fails
    assert tie_slack(91.5) == pytest.approx(91.5e-6 + 1e-12)
    assert tie_slack(0.0) == pytest.approx(1e-6 + 1e-12)
    assert matches(0.5 - 1e-7, 0.9, 0.4) and not matches(0.5 - 1e-5, 0.9, 0.4)   # fraction-scale metrics


def test_tolerance_source_and_noisy_flags(tmp_path):
    # cs_quiet: dense seeds 80.0 / 80.2 -> fixed tolerance, callable.
    # cs_noisy: dense seeds 70 / 86 (std 11.3) -> the tolerance comes from the spread and is > 2x the
    # threshold: "all levels match" there says nothing, and the row says so.
    datasets = {d: {"family": "commonsense", "model": "m", "splits": ["test"], "folds": ["all"]}
                for d in ("cs_quiet", "cs_noisy")}

    def value(ds, method, k, seed, fold, split):
        if method == "dense":
            return (80.0 + 0.2 * seed) if ds == "cs_quiet" else (70.0 if seed == 0 else 86.0)
        return 79.8 - 0.5 * k if ds == "cs_quiet" else 75.0

    suite = make_suite(tmp_path, datasets=datasets, methods=("dense", "omp_after"), value=value)
    table, inp = _table(suite)
    quiet = table[table["dataset"] == "cs_quiet"].iloc[0]
    noisy = table[table["dataset"] == "cs_noisy"].iloc[0]
    assert quiet["tolerance_source"] == "fixed" and not quiet["noisy"]
    assert noisy["tolerance_source"] == "dense spread" and noisy["tolerance"] == pytest.approx(16 / 2 ** 0.5)
    assert noisy["noisy"] and "dense spread 11.31 > 2× threshold 1" in noisy["noise"]
    assert noisy["status"] == "all levels match"
    md = matching_markdown(table, inp.config)
    assert "11.31 (dense spread)" in md and "**too noisy to call**" in md and "1.00 (fixed)" in md


def test_single_seed_is_too_noisy_to_call(tmp_path):
    suite = make_suite(tmp_path, methods=("dense", "omp_after"), seeds=(0,))
    r = _row(_table(suite)[0], "omp_after")
    assert r["noisy"] and "dense has 1 seed(s)" in r["noise"]


def test_terminal_table_method_by_task(tmp_path):
    from smcbench.analysis.matching import format_terminal_table

    datasets = {d: {"family": "commonsense", "model": "m", "splits": ["test"], "folds": ["all"]}
                for d in ("demo_cs_hard", "demo_cs_easy")}

    def value(ds, method, k, seed, fold, split):
        if method == "dense":
            return 90.0 + 0.2 * seed
        return 90.0 - (0.3 if ds.endswith("easy") else 0.9) * k

    suite = make_suite(tmp_path, datasets=datasets, methods=("dense", "omp_after", "lth"), value=value,
                       drop=[("demo_cs_hard", "lth", 2, 0), ("demo_cs_hard", "lth", 2, 1)])
    text = format_terminal_table(suite / "results.csv")
    lines = text.splitlines()
    head = next(line for line in lines if line.startswith("method"))
    assert head.index("demo_cs_easy") < head.index("demo_cs_hard")          # easy before hard
    assert "[easy]" in text and "[hard]" in text
    omp = next(line for line in lines if line.startswith("omp_after")).split()
    assert omp[1:] == ["≥48.8%", "k=3", "20.0%", "k=1"]
    lth = next(line for line in lines if line.startswith("lth"))
    assert "(gap)" in lth                                                      # k=2 never ran on hard
    assert "1.00 fixed" in text and "90.1±0.1 n=2" in text
    assert "2 expected run(s) have no result" in text
    assert format_terminal_table(tmp_path / "nope.csv").startswith("matching sparsity: not available")


def test_provenance_notes_name_dirty_trees_and_missing_n(tmp_path):
    import pandas as pd

    from smcbench.analysis.reports import run_matching

    suite = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,))
    df = pd.read_csv(suite / "results.csv")
    df.loc[df["method"] == "omp_after", "git_revision"] = "abc-dirty"
    df.loc[df["method"] == "dense", "n"] = None
    df.to_csv(suite / "results.csv", index=False)
    run_matching(Inputs.load(suite / "results.csv"), suite)
    md = (suite / "tables" / "matching_sparsity.md").read_text()
    assert "git revision(s): abc (2 runs), abc-dirty (2 runs)" in md
    assert "2 run(s) ran from a tree with uncommitted changes" in md
    assert "rows without n (number of examples scored): cs_easy" in md
