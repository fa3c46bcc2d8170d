"""Protein models: HF parameter names, scope, tokenizer ids, seeded heads, param groups, TAPE,
and the ESM-IF1 missing-dependency path. Tiny random-init models of the real classes; offline."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import protein  # noqa: E402
from smcbench.tasks.protein import model as pm  # noqa: E402

TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


@pytest.fixture(scope="module")
def esm_dir(tmp_path_factory) -> Path:
    """A tiny EsmForMaskedLM saved like the demo's (no pre-training steps: speed)."""
    from transformers import EsmForMaskedLM, EsmTokenizer

    d = tmp_path_factory.mktemp("esm")
    torch.manual_seed(0)
    EsmForMaskedLM(pm.tiny_esm_config(TINY, 40)).save_pretrained(str(d))
    pm.write_esm_vocab(d)
    EsmTokenizer(vocab_file=str(d / "vocab.txt")).save_pretrained(str(d))
    (d / "pretrained.json").write_text(json.dumps({"path": "."}))
    return d


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    protein.prepare("demo_protein2", "synthetic", d, {"num_classes": 2, "n_train": 40, "n_test": 20,
                                                      "min_length": 8, "max_length": 30, "world_seed": 1})
    return d


def _task(data_dir, esm_dir, seed=0, arch="esm", training=None, model_settings=None):
    settings = {"num_classes": 2, "model": {"name": "m", "arch": arch, "source": "synthetic",
                                            "settings": dict(model_settings or {})},
                "training": dict(training or {"lr": 1e-2, "backbone_lr": 1e-3, "batch_size": 8})}
    return protein.TASK("demo_protein2", settings, data_dir, esm_dir, seed, "cpu")


def test_parameter_names_are_hf_esm_names(data_dir, esm_dir):
    model = _task(data_dir, esm_dir).build_model()
    names = [n for n, _ in model.named_parameters()]
    for leaf in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense", "output.dense"):
        assert f"esm.encoder.layer.1.{leaf}.weight" in names
    assert "esm.embeddings.word_embeddings.weight" in names
    assert "esm.embeddings.position_embeddings.weight" in names
    assert "esm.embeddings.layer_norm.weight" in names  # ESM-1b's emb_layer_norm_before
    assert "esm.encoder.emb_layer_norm_after.weight" in names
    assert [n for n in names if n.startswith("classifier.")] == [
        "classifier.dense.weight", "classifier.dense.bias", "classifier.layer_norm.weight",
        "classifier.layer_norm.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"]
    assert not any(p.requires_grad for n, p in model.named_parameters() if "contact_head" in n)


def test_attn_ffn_scope_is_the_paper_pruned_set(data_dir, esm_dir):
    from smcbench.sparsity.scopes import resolve_scope

    model = _task(data_dir, esm_dir).build_model()
    scope = resolve_scope(model, "attn_ffn")
    assert len(scope) == 2 * 6 and all(n.startswith("esm.encoder.layer.") and n.endswith(".weight") for n in scope)
    qk = resolve_scope(model, "modules:Q+K")
    assert sorted(qk) == sorted(f"esm.encoder.layer.{i}.attention.self.{m}.weight" for i in (0, 1)
                                for m in ("query", "key"))


def test_task_ids_match_esm_tokenizer(data_dir, esm_dir):
    from transformers import EsmTokenizer

    tok = EsmTokenizer.from_pretrained(str(esm_dir))
    task = _task(data_dir, esm_dir)
    for seq in ("MKTAYIAKQR", "XBZUOLAGV", "M"):
        assert task.encode(seq) == tok(seq)["input_ids"]
    assert task.encode("A")[0] == 0 and task.encode("A")[-1] == 2  # <cls>=0, <eos>=2 as fair-esm


def test_build_model_is_deterministic_per_seed(data_dir, esm_dir):
    t0, t1 = _task(data_dir, esm_dir, seed=0), _task(data_dir, esm_dir, seed=1)
    a, b, c = t0.build_model(), t0.build_model(), t1.build_model()
    for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(p, q), n
        if n.startswith("esm."):
            assert torch.equal(p, r), n  # same pre-trained backbone
    assert not torch.equal(a.classifier.dense.weight, c.classifier.dense.weight)  # seeded head init
    # the cached backbone is copied: two built models never share tensors
    a.esm.encoder.layer[0].attention.self.query.weight.data.zero_()
    assert b.esm.encoder.layer[0].attention.self.query.weight.abs().sum() > 0


def test_param_groups_split_head_and_backbone(data_dir, esm_dir):
    task = _task(data_dir, esm_dir)
    model = task.build_model()
    groups = task.param_groups(model, lr=1e-2, weight_decay=0.01)
    by_name = {g["name"]: g for g in groups}
    assert by_name["head"]["lr"] == 1e-2 and by_name["backbone"]["lr"] == 1e-3
    assert by_name["head_no_decay"]["weight_decay"] == 0.0 and by_name["backbone"]["weight_decay"] == 0.01
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups) == n_params
    # both optimizers really step (the public code never stepped the ESM-1b head's)
    opt = torch.optim.AdamW(groups)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = next(task.train_batches(0))
    task.loss(model, batch).backward()
    opt.step()
    assert not torch.equal(before["classifier.out_proj.weight"], model.classifier.out_proj.weight)
    assert not torch.equal(before["esm.encoder.layer.0.attention.self.query.weight"],
                           model.esm.encoder.layer[0].attention.self.query.weight)


def test_model_settings_override_training(data_dir, esm_dir):
    task = _task(data_dir, esm_dir, model_settings={"lr": 5e-4, "backbone_lr": 5e-5, "batch_size": 4})
    assert task.batch_size == 4 and task.steps_per_epoch() == 9  # 34 training rows / 4
    groups = {g["name"]: g["lr"] for g in task.param_groups(task.build_model(), lr=1e-2, weight_decay=0.0)}
    assert groups["head"] == 5e-4 and groups["backbone"] == 5e-5


def test_evaluate_and_baseline(data_dir, esm_dir):
    task = _task(data_dir, esm_dir)
    model = task.build_model()
    res = task.evaluate(model, "test")
    assert set(res) == {"accuracy", "n"} and res["n"] == len(task.rows["test"])
    # from counts in Python floats: exactly 100 * correct / n, no float32 residue
    assert any(res["accuracy"] == 100 * c / res["n"] for c in range(res["n"] + 1))
    sig = task.signature()
    assert "accuracy=100*correct/n" in sig and "|transformers:" in sig and "|torch:" in sig
    labels = [r["label"] for r in task.rows["test"]]
    train = [r["label"] for r in task.rows["train"]]
    majority = max(set(train), key=train.count)
    assert task.baseline("test")["accuracy"] == pytest.approx(100.0 * labels.count(majority) / len(labels))
    assert task.eval_splits() == ["test"]


def test_sequences_longer_than_the_model_are_cut(data_dir, esm_dir):
    task = _task(data_dir, esm_dir)
    assert task.max_model_residues == 40  # tiny_esm_config(…, 40): 44 positions - padding_idx 1 - 3
    assert len(task.encode("A" * 100)) == 42


def test_tape_tiny_model(tmp_path, data_dir):
    bert = pm.tiny_tape_backbone(TINY, seed=0)
    bert.save_pretrained(str(tmp_path))
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]"] +
                                                  list("ABCDEFGHIKLMNOPQRSTUVWXYZ")) + "\n")
    (tmp_path / "pretrained.json").write_text(json.dumps({"path": "."}))
    task = _task(data_dir, tmp_path, arch="tape")
    assert task.encode("ACY") == [2, 5, 7, 28, 3]  # TAPE IUPAC ids: <cls> A C Y <sep>
    model = task.build_model()
    names = [n for n, _ in model.named_parameters()]
    assert "bert.encoder.layer.0.attention.self.query.weight" in names and "bert.pooler.dense.weight" in names
    loss = task.loss(model, next(task.train_batches(0)))
    assert torch.isfinite(loss)


def test_make_pretrained_local_folders(tmp_path, esm_dir):
    out = tmp_path / "out"
    info = protein.make_pretrained("esm1b", {"arch": "esm"}, str(esm_dir), out)
    assert info["path"] == str(esm_dir.resolve())
    with pytest.raises(FileNotFoundError, match="neither a Hugging Face ESM folder"):
        protein.make_pretrained("esm1b", {"arch": "esm"}, str(tmp_path), out)
    with pytest.raises(ValueError, match="only available for arch esm"):
        protein.make_pretrained("tape", {"arch": "tape"}, "synthetic", out)


@pytest.mark.skipif(importlib.util.find_spec("esm") is not None, reason="fair-esm installed here")
def test_esm_if1_missing_dependencies_message(tmp_path):
    (tmp_path / "esm_if1_gvp4_t16_142M_UR50.pt").write_bytes(b"not used")
    with pytest.raises(ImportError, match=r"fair-esm, biotite, torch-geometric.*envs/esmif\.yaml"):
        protein.make_pretrained("esm_if1", {"arch": "esm_if1"}, str(tmp_path), tmp_path / "out")


def test_small_checkpoint_fast_load_equals_from_pretrained(esm_dir, monkeypatch):
    fast = pm.load_esm_backbone(esm_dir)
    monkeypatch.setattr(pm, "_load_small_esm", lambda path, attn: None)  # force from_pretrained
    slow = pm.load_esm_backbone(esm_dir)
    fs, ss = fast.state_dict(), slow.state_dict()
    assert fs.keys() == ss.keys()
    assert all(torch.equal(fs[k], ss[k]) for k in fs)
    assert not fast.training and not slow.training
