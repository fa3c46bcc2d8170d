"""Accuracy from counts in Python floats, ``n`` with every evaluation, versions in signatures."""

import torch

from smcbench.tasks import commonsense as cs
from smcbench.tasks import translation as T


def _task_with(pred: torch.Tensor, labels: torch.Tensor):
    task = cs.CommonsenseTask.__new__(cs.CommonsenseTask)
    task.mlm, task.input_format, task.arch = False, "csqa", "roberta_mc"
    task.predict = lambda model, split: pred
    task.encoded = lambda split: {"labels": labels}
    return task


def test_accuracy_is_exact_from_counts():
    labels = torch.zeros(100, dtype=torch.long)
    pred = labels.clone()
    pred[:8] = 1
    got = _task_with(pred, labels).evaluate(None, "test")
    assert got == {"accuracy": 92.0, "n": 100}  # not 92.00000166893005
    assert type(got["accuracy"]) is float
    labels = torch.zeros(3, dtype=torch.long)
    got = _task_with(torch.tensor([0, 0, 1]), labels).evaluate(None, "test")
    assert got["accuracy"] == 100.0 * 2 / 3


def test_signatures_carry_package_versions():
    from importlib.metadata import version

    sig = _task_with(torch.zeros(1), torch.zeros(1)).signature()
    assert f"transformers:{version('transformers')}" in sig and f"tokenizers:{version('tokenizers')}" in sig
    assert "accuracy=100*correct/n" in sig
    task = T.TranslationTask.__new__(T.TranslationTask)
    task.num_beams, task.selection_metric = 5, "bleu"
    sig = task.signature()
    assert f"sacrebleu:{version('sacrebleu')}" in sig and "beam5" in sig and "tok:zh" in sig


def test_demo_baseline_is_the_strongest_surface_reader(tmp_path):
    from smcbench.tasks.commonsense import synthetic as S

    for variant in ("easy", "hard"):
        out = tmp_path / variant
        meta = cs.prepare(f"demo_cs_{variant}", "synthetic", out,
                          {"variant": variant, "world_seed": 7, "n_train": 200, "n_test": 400})
        (out / "meta.json").write_text(__import__("json").dumps(meta))
        task = cs.CommonsenseTask.__new__(cs.CommonsenseTask)
        task.data_dir, task._rows = out, {}
        base = task.baseline("test")
        h = meta["heuristics"]["test"]
        assert base["n"] == 400 and base["accuracy"] == 50.0  # not chance (25 %)
        assert h["typed_in_passage"] == (100.0 if variant == "easy" else 50.0)
        assert meta["generator"].endswith(f"v{S.GENERATOR_VERSION}")


def test_logits_are_the_choice_scores():
    task = cs.CommonsenseTask.__new__(cs.CommonsenseTask)
    scores = torch.randn(3, 4)
    task._scores = lambda model, batch: scores
    assert task.logits(None, {}) is scores
