"""End to end: `analyze all` on a synthetic suite writes every target the Snakemake rules declare,
with placeholders that say when ablation data do not exist."""

import ast
import re
from pathlib import Path

import pandas as pd
import pytest

from smcbench.analysis.cli import main as analyze
from smcbench.analysis.reports import OUTPUTS
from test_analysis_fixtures import make_suite

REPO = Path(__file__).resolve().parents[1]
SMK = REPO / "workflow" / "rules" / "analysis.smk"
DATASETS = {
    "race": {"family": "commonsense", "model": "roberta", "splits": ["test_high", "test_middle"], "folds": ["all"]},
    "mawps": {"family": "arithmetic", "model": "gts", "splits": ["test"], "folds": ["0", "1"], "counts": True},
}


def _smk_outputs() -> dict:
    """ANALYSIS_OUTPUTS of the workflow: a literal dict in one of workflow/rules/*.smk, or an import
    of smcbench.analysis.reports.OUTPUTS (then it cannot diverge)."""
    for smk in sorted(SMK.parent.glob("*.smk")):
        text = smk.read_text()
        if "import OUTPUTS as ANALYSIS_OUTPUTS" in text:
            return OUTPUTS
        if "ANALYSIS_OUTPUTS = {" in text:
            start = text.index("ANALYSIS_OUTPUTS = {")
            end = text.index("\n}\n", start) + 2
            return ast.literal_eval(text[start + len("ANALYSIS_OUTPUTS = "):end])
    raise AssertionError("no ANALYSIS_OUTPUTS in workflow/rules/*.smk")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    extra = [{"dataset": "race", "method": "omp_after", "scope": "no_embeddings", "extra": "embeddings_ablation",
              "level": k, "target": round(1 - 0.8 ** k, 6)} for k in (1, 2)]
    extra += [{"dataset": "race", "method": "omp_after", "scope": s, "extra": "modulewise", "level": 0,
               "target": 0.05} for s in ("modules:Q+K", "modules:FFN")]
    s = make_suite(tmp, datasets=DATASETS, methods=("dense", "omp_after", "lth"), levels=(1, 2), seeds=(0, 1),
                   extra_rows=extra, drop=[("mawps", "lth", 2, 1)])
    return tmp, s


def test_smk_declares_what_the_cli_writes():
    assert _smk_outputs() == OUTPUTS
    captions = set(re.findall(r'_rep\("[^"]+", "([^"]+)"', SMK.read_text()))
    assert captions and all((REPO / "workflow" / "report" / f"{c}.rst").is_file() for c in captions)


def test_all_writes_every_target(suite, capsys):
    tmp, s = suite
    assert analyze(["all", "--results", str(s / "results.csv"), "--root", str(tmp)]) == 0
    err = capsys.readouterr().err
    for rel in (r for outs in OUTPUTS.values() for r in outs):
        assert (s / rel).is_file() and (s / rel).stat().st_size > 0, rel
    # the gap is named, and the absent oBERT results are said, not an error
    assert "mawps/gts/lth/k=2/seed1/fold0" in err
    assert "No oBERT results exist" in err
    roadmap = pd.read_csv(s / "tables" / "obert_roadmap.csv")
    assert "LTH" in set(roadmap["step"]) and "obert" in set(roadmap.loc[roadmap["note"] == "no results", "method"])
    for fam in ("commonsense", "arithmetic"):
        assert (s / "figures" / f"layerwise_sparsity_{fam}.png").stat().st_size > 20000
    assert (s / "figures" / "mask_iou_protein.png").stat().st_size < 20000   # placeholder: no protein here

    curves = pd.read_csv(s / "tables" / "curves.csv")
    assert set(curves["split"]) == {"test_high", "test_middle", "test"}
    assert set(curves.loc[curves["dataset"] == "mawps", "fold_agg"]) == {"micro"}

    emb = pd.read_csv(s / "tables" / "embeddings_ablation.csv")
    assert len(emb) == 4  # 2 levels x 2 test splits
    assert set(emb["scope_main"]) == {"paper"} and set(emb["scope_ablation"]) == {"no_embeddings"}
    assert emb["diff_ablation_minus_main"].abs().max() < 1e-9  # same value formula in the fixture

    mw = pd.read_csv(s / "tables" / "modulewise.csv")
    assert set(mw["scope"]) == {"modules:Q+K", "modules:FFN"} and set(mw["target_sparsity"]) == {0.05}
    assert "| Q, K |" in (s / "tables" / "modulewise.md").read_text()   # Table 1 style module names

    matching = pd.read_csv(s / "tables" / "matching_sparsity.csv")
    assert len(matching) == 2 * 3  # (race x 2 splits + mawps) x (omp_after, lth)
    lth = matching[(matching["dataset"] == "mawps") & (matching["method"] == "lth")].iloc[0]
    assert "k=2/seed1/fold0" in lth["missing"]

    cost = pd.read_csv(s / "tables" / "cost.csv")
    assert set(cost["sources"]) == {"metrics.json"}   # the jobs' own records, not benchmark.tsv
    assert len(pd.read_csv(s / "tables" / "layerwise_sparsity.csv")) > 0
    assert len(pd.read_csv(s / "tables" / "mask_iou.csv")) > 0
    assert len(pd.read_csv(s / "tables" / "weight_drift.csv")) == 2 * 4


def test_placeholders_when_ablations_absent(tmp_path, capsys):
    s = make_suite(tmp_path, methods=("dense", "omp_after"), levels=(1,), seeds=(0,))
    for sub in ("modulewise", "embeddings"):
        assert analyze([sub, "--results", str(s / "results.csv"), "--root", str(tmp_path)]) == 0
    assert "No module-wise results" in (s / "tables" / "modulewise.md").read_text()
    assert "No results with extra = 'embeddings_ablation'" in (s / "tables" / "embeddings_ablation.md").read_text()
    assert (s / "figures" / "embeddings_ablation.png").is_file()


def test_bad_input_exits_2_with_message(tmp_path, capsys):
    assert analyze(["curves", "--results", str(tmp_path / "nope.csv")]) == 2
    assert "results table not found" in capsys.readouterr().err


def test_obert_roadmap_draws_the_steps_that_ran(tmp_path):
    extra = [{"dataset": "cs_easy", "method": "obert", "scope": "no_embeddings", "extra": "obert_roadmap",
              "level": k, "target": round(1 - 0.8 ** k, 6)} for k in (1, 2)]
    s = make_suite(tmp_path, methods=("dense", "lth", "imp_lrr"), levels=(1, 2), seeds=(0,), extra_rows=extra)
    assert analyze(["obert", "--results", str(s / "results.csv"), "--root", str(tmp_path)]) == 0
    t = pd.read_csv(s / "tables" / "obert_roadmap.csv")
    ran = t[t["note"].isna()]
    assert list(dict.fromkeys(ran["step"])) == ["LTH", "+LRR", "oBERT"] and set(ran["level"]) == {1, 2}
    assert set(ran.loc[ran["method"] == "obert", "extra"]) == {"obert_roadmap"}
    assert list(t.loc[t["note"] == "no results", "method"]) == ["imp_lrr_kd"]
    # without oBERT rows the roadmap still draws LTH and +LRR and names what is missing
    s2 = make_suite(tmp_path / "b", methods=("dense", "lth", "imp_lrr"), levels=(1, 2), seeds=(0,))
    assert analyze(["obert", "--results", str(s2 / "results.csv"), "--root", str(tmp_path / "b")]) == 0
    t2 = pd.read_csv(s2 / "tables" / "obert_roadmap.csv")
    assert set(t2.loc[t2["note"] == "no results", "method"]) == {"imp_lrr_kd", "obert"}
    assert (s2 / "figures" / "obert_roadmap.png").stat().st_size > 20000   # a real figure, not the placeholder


def test_obert_roadmap_takes_every_step_from_the_roadmap_extra(tmp_path):
    # the roadmap extra (scope no_embeddings_heads) holds lth and obert; lth also runs in the main grid
    extra = [{"dataset": "cs_easy", "method": m, "scope": "no_embeddings_heads", "extra": "obert", "level": k,
              "target": round(1 - 0.8 ** k, 6)} for k in (1, 2) for m in ("lth", "obert")]
    s = make_suite(tmp_path, methods=("dense", "lth", "imp_lrr"), levels=(1, 2), seeds=(0,), extra_rows=extra)
    assert analyze(["obert", "--results", str(s / "results.csv"), "--root", str(tmp_path)]) == 0
    t = pd.read_csv(s / "tables" / "obert_roadmap.csv")
    ran = t[t["note"].isna()]
    assert set(ran.loc[ran["method"] == "lth", "scope"]) == {"no_embeddings_heads"}
    assert set(ran.loc[ran["method"] == "imp_lrr", "extra"]) == {"main"}     # not in the extra: main grid


def test_matching_writes_its_figure_or_a_placeholder(tmp_path):
    from smcbench.analysis.figures import png_size

    s = make_suite(tmp_path / "a", methods=("dense", "omp_after", "random_after"), levels=(1, 2), seeds=(0, 1))
    assert analyze(["matching", "--results", str(s / "results.csv")]) == 0
    png, pdf = s / "figures" / "matching_sparsity.png", s / "figures" / "matching_sparsity.pdf"
    assert png.stat().st_size > 20000 and pdf.read_bytes().startswith(b"%PDF")
    assert png_size(png)[1] <= 3000
    # only dense runs: no main-grid method to plot, a placeholder that says so
    s2 = make_suite(tmp_path / "b", methods=("dense",), levels=(1,), seeds=(0, 1))
    assert analyze(["matching", "--results", str(s2 / "results.csv")]) == 0
    small = s2 / "figures" / "matching_sparsity.png"
    assert 0 < small.stat().st_size < 20000 and (s2 / "figures" / "matching_sparsity.pdf").stat().st_size > 0
