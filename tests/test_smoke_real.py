"""`make smoke-real` helpers (src/smcbench/smoke_real.py), fast: real dimensions checked on the meta
device, the Hub layouts built at tiny size, the smoke config's plan and the smoke.csv writer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from smcbench import smoke_real as S

ROOT = Path(__file__).resolve().parents[1]


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_real_dimensions_give_the_documented_parameter_counts():
    """The checkpoints are the real architectures: counts equal the published models' (meta device,
    nothing allocated)."""
    import transformers as tf

    with torch.device("meta"):
        large = S._model(S.ARCHS["roberta_large"], S.ARCHS["roberta_large"].dims)
        assert _count(tf.RobertaForMultipleChoice(large.config)) == 355_360_769
        base = S._model(S.ARCHS["roberta_base"], S.ARCHS["roberta_base"].dims)
        assert _count(tf.RobertaModel(base.config)) == 124_645_632
        assert _count(S._model(S.ARCHS["tape"], S.ARCHS["tape"].dims)) == 91_961_856
        esm = S._model(S.ARCHS["esm1b"], S.ARCHS["esm1b"].dims)
        assert _count(tf.EsmForSequenceClassification(esm.config)) == 652_359_063
        assert _count(S._model(S.ARCHS["mbart_cc25"], S.ARCHS["mbart_cc25"].dims)) == 610_851_840


@pytest.mark.parametrize("name", ["esm1b", "tape"])
def test_tiny_checkpoint_has_the_hub_layout_and_loads_tensors_only(tmp_path, name):
    from transformers import AutoConfig

    out = tmp_path / name
    rec = S.build_checkpoint(name, out, samples=None, tiny=True)
    assert set(S.ARCHS[name].weights) <= set(rec["files"])
    assert {"config.json", "vocab.txt", "tokenizer_config.json"} <= set(rec["files"])
    assert (tmp_path / f"{name}.build.json").is_file() and not (out / f"{name}.build.json").exists()
    cfg = AutoConfig.from_pretrained(str(out))
    assert cfg.vocab_size == len((out / "vocab.txt").read_text().split())
    state = torch.load(out / "pytorch_model.bin", weights_only=True, map_location="cpu")  # no pickled code
    assert sum(t.numel() for t in state.values()) >= rec["params"]
    assert S.checkpoint_ok(out, name, tiny=True) and not S.checkpoint_ok(out, name, tiny=False)


def test_esm_and_tape_vocabularies_have_the_published_ids():
    assert len(S.ESM_TOKENS) == 33 and S.ESM_TOKENS.index("<cls>") == 0 and S.ESM_TOKENS.index("<mask>") == 32
    assert S.ESM_TOKENS[4:8] == ["L", "A", "G", "V"]
    assert len(S.TAPE_TOKENS) == 30 and S.TAPE_TOKENS.index("A") == 5 and S.TAPE_TOKENS[-1] == "Z"


def test_roberta_tokenizer_keeps_roberta_special_ids(tmp_path):
    from transformers import AutoTokenizer

    texts = ["Where would you put a cup of coffee?", "The man went to the store to buy milk."] * 20
    n = S.write_roberta_tokenizer(tmp_path, texts, vocab_size=50265, max_len=512)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    ids = tok("Where would you put milk?").input_ids
    assert ids[0] == 0 and ids[-1] == 2 and max(ids) < n <= 50265


def test_mbart_tokenizer_puts_language_codes_at_cc25_ids(tmp_path):
    from transformers import AutoTokenizer

    vocab = 200  # cc25: 250027 (ids below scale with it: codes at vocab-26 .. vocab-2, <mask> last)
    texts = ["Bonjour le monde", "Hello world", "Dobrý den, světe"] * 10
    assert S.write_mbart_tokenizer(tmp_path, texts, vocab_size=vocab, trained=60) == vocab
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mbart"}))
    tok = AutoTokenizer.from_pretrained(str(tmp_path), src_lang="fr_XX", tgt_lang="en_XX")
    first = vocab - len(S.MBART_LANG_CODES) - 1
    assert tok.convert_tokens_to_ids("ar_AR") == first
    assert tok.convert_tokens_to_ids("en_XX") == first + 3 and tok.convert_tokens_to_ids("<mask>") == vocab - 1
    enc = tok("Bonjour le monde", text_target="Hello world")
    assert enc.input_ids[-2:] == [2, tok.convert_tokens_to_ids("fr_XX")]
    assert enc["labels"][-2:] == [2, tok.convert_tokens_to_ids("en_XX")]
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == "Bonjour le monde"


def test_smoke_config_plans_one_dense_and_one_pruned_run_per_paper_model():
    cfg = yaml.safe_load((ROOT / S.CONFIG).read_text())
    assert cfg["suite"] == "smoke-real"
    plans = S.plan(cfg)
    assert {p.model for p in plans} == {"roberta_large", "gts", "graph2tree", "esm1b", "tape", "mbart_cc25"}
    for p in plans:
        assert p.checkpoint in S.ARCHS and p.method != "dense"
        assert p.dense.startswith("results/smoke-real/runs/") and p.pruned.endswith("metrics.json")
    for entry in list(cfg["models"].values()) + list(cfg["datasets"].values()):
        assert entry["source"].startswith("results/smoke-real/"), entry["source"]  # built or linked, never in the repo
    for ds in cfg["datasets"].values():
        assert ds["training"]["max_steps"] <= 5 and ds["training"]["report_best_on_test"] is False


def test_smoke_row_and_csv_from_the_training_jobs_metrics(tmp_path):
    dense, pruned = tmp_path / "d" / "metrics.json", tmp_path / "p" / "metrics.json"
    for path, m in ((dense, {"peak_mem_mb": 900.0, "wall_time_s": 30.0, "selection": {"total_steps": 3},
                             "scope_size": 10, "target_sparsity": 0.0, "realized_sparsity": 0.0}),
                    (pruned, {"peak_mem_mb": 1200.4, "step_seconds": 2.5, "n_parameters": 123, "scope_size": 100,
                              "target_sparsity": 0.67232, "realized_sparsity": 0.672319, "wall_time_s": 40.0,
                              "selection": {"total_steps": 3}})):
        path.parent.mkdir()
        path.write_text(json.dumps(m))
    plan = S.ModelPlan("m", "roberta_large", "csqa", str(dense), str(pruned), "omp_after")
    row = S.smoke_row(plan, params=999, status="ok")
    assert row["params"] == 123 and row["scope_params"] == 100 and row["step_seconds"] == 2.5
    assert row["peak_rss_mb"] == 1200 and row["dense_step_seconds"] == 10.0  # 30 s / 3 steps (upper bound)
    assert row["target_sparsity"] == 0.6723 and row["realized_sparsity"] == 0.6723
    missing = S.smoke_row(S.ModelPlan("x", "tape", "meltome", str(tmp_path / "no"), str(tmp_path / "no2"), "gmp"),
                          params=5, status="failed")
    assert missing["params"] == 5 and missing["step_seconds"] is None and missing["step_seconds_source"] == "missing"
    S.write_smoke_csv(tmp_path / "smoke.csv", [row, missing])
    with open(tmp_path / "smoke.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0])[:7] == S.CSV_COLUMNS
    assert got[0]["model"] == "m" and got[1]["step_seconds"] == "" and got[1]["status"] == "failed"


def test_missing_samples_skip_cleanly(tmp_path, capsys):
    assert S.main(["--samples", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().err


def test_a_subset_run_keeps_the_other_models_rows(tmp_path):
    old = [{"model": "tape", "params": "1"}, {"model": "esm1b", "params": "2"}]
    new = [{"model": "esm1b", "params": "3"}, {"model": "gts", "params": "4"}]
    merged = S.merge_rows(old, new, ["gts", "esm1b", "tape"])
    assert [(r["model"], r["params"]) for r in merged] == [("gts", "4"), ("esm1b", "3"), ("tape", "1")]
    S.write_smoke_csv(tmp_path / "s.csv", merged)
    assert [r["model"] for r in S.read_smoke_csv(tmp_path / "s.csv")] == ["gts", "esm1b", "tape"]


def test_markdown_rows_mark_missing_values_and_failures():
    rows = [{"model": "gts", "params": "144008708", "scope_params": "143864832", "step_seconds": "73.0",
             "peak_rss_mb": "3747.0", "target_sparsity": "0.6723", "realized_sparsity": "0.6723", "dataset": "svamp",
             "method": "gmp", "dense_step_seconds": "45.4", "dense_peak_rss_mb": "3470.0", "status": "ok"},
            {"model": "tape", "params": "5", "dataset": "meltome", "method": "gmp", "status": "failed (x)"}]
    ok, bad = S.markdown_rows(rows)
    assert ok == ("| gts | 144,008,708 | 143,864,832 | 73.0 | 3,747 | 0.6723 | 0.6723 | svamp / gmp | "
                  "45.4 / 3,470 |")
    assert "| — |" in bad and "(failed (x))" in bad
