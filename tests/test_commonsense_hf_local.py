"""The non-demo path: a local RoBERTa folder (byte-level BPE tokenizer + checkpoint), as a Hub
snapshot of FacebookAI/roberta-large would be, at toy size."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import commonsense as cs  # noqa: E402
from smcbench.tasks.base import write_jsonl  # noqa: E402


@pytest.fixture(scope="module")
def roberta_folder(tmp_path_factory):
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in ["Q", ":", "A", "?", "Ġ", "w", "h", "a", "t", "c", "s", "Ġw", "Ġwh", "at", "Ġwhat",
                  "Ġc", "Ġcat", "Ġt", "Ġs", "Ġsat", "Ġa"]:
        vocab.setdefault(piece, len(vocab))
    vocab["<mask>"] = len(vocab)
    merges = [("Ġ", "w"), ("Ġw", "h"), ("a", "t"), ("Ġwh", "at"), ("Ġ", "c"), ("Ġc", "at"),
              ("Ġ", "t"), ("Ġ", "s"), ("Ġs", "at"), ("Ġ", "a")]
    tok = RobertaTokenizer(vocab=vocab, merges=merges)
    path = tmp_path_factory.mktemp("roberta")
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=66,
                        type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    RobertaForMaskedLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path, tok


def test_local_model_folder_is_used_in_place_and_inputs_are_fairseq(tmp_path, roberta_folder):
    path, tok = roberta_folder
    info = cs.make_pretrained("roberta_large", {"arch": "roberta_mc"}, str(path), tmp_path / "pre")
    assert info["path"] == str(path)
    (tmp_path / "pre").mkdir()
    (tmp_path / "pre/pretrained.json").write_text(json.dumps(info))
    rows = [{"id": f"q{i}", "question": "what?", "choices": ["cat", "sat", "a", "t", "cat sat"],
             "label": i % 5, "concept": "x"} for i in range(4)]
    for split in ("train", "validation", "test"):
        write_jsonl(tmp_path / f"{split}.jsonl", rows)
    settings = {"max_length": 64, "model": {"arch": "roberta_mc"}, "training": {"batch_size": 2}}
    task = cs.TASK("csqa", settings, tmp_path, tmp_path / "pre", seed=3)
    ids = task.encoded("test")["input_ids"][0, 0].tolist()
    v = tok.get_vocab()
    # <s> Q: what? </s> A: cat </s> with ONE separator (the tokenizer's pair template has two)
    assert ids[:10] == [0, v["Q"], v[":"], v["Ġwhat"], v["?"], 2, v["A"], v[":"], v["Ġcat"], 2]
    assert tok("Q: what?", "A: cat")["input_ids"].count(2) == 3
    model = task.build_model()
    assert type(model).__name__ == "RobertaForMultipleChoice"
    assert sorted(task._head_names) == ["classifier.bias", "classifier.weight",
                                        "roberta.pooler.dense.bias", "roberta.pooler.dense.weight"]
    batch = next(task.train_batches(0))
    assert batch["input_ids"].shape[:2] == (2, 5)
    assert torch.isfinite(task.loss(model, batch))
    assert set(task.evaluate(model, "validation")) == {"accuracy", "n"}
    assert task.baseline("test")["accuracy"] == 25.0  # train's majority label (0) is right 1 in 4


def test_race_layout_with_bpe(tmp_path, roberta_folder):
    path, tok = roberta_folder
    rows = [{"id": "r", "question": "what _?", "choices": ["cat", "sat", "a", "t"], "label": 0,
             "article": "cat\nsat", "level": "high"}]
    seq = cs.encode_race(tok, rows, max_length=64, option_max_tokens=16)[0][0]
    v = tok.get_vocab()
    qa = tok("what cat?", add_special_tokens=False)["input_ids"]
    assert qa == [v["w"], v["h"], v["at"], v["Ġcat"], v["?"]]  # no leading space: first word unprefixed
    assert seq == [0] + qa + [2, 2] + tok("cat sat", add_special_tokens=False)["input_ids"] + [2]
