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
