"""Input construction (exact token layouts), the WinoGrande margin loss, Task plumbing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import commonsense as cs  # noqa: E402
from smcbench.tasks.base import write_jsonl  # noqa: E402

WORDS = ("q a : what is red blue green cat dog the _ likes tom ann because it was big small "
         "article text here . ?").split()


@pytest.fixture(scope="module")
def tok():
    return cs.build_word_tokenizer(WORDS)


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_word_tokenizer_has_roberta_specials(tok):
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id,
            tok.mask_token_id) == (0, 1, 2, 3, 4)
    assert ids(tok, "Tom likes ZEBRA") == [tok.convert_tokens_to_ids("tom"),
                                          tok.convert_tokens_to_ids("likes"), 3]


def test_csqa_layout_is_fairseq(tok):
    rows = [{"id": "x", "question": "what is red ?", "choices": ["cat", "the dog"], "label": 0}]
    seqs = cs.encode_csqa(tok, rows, max_length=64)
    q = ids(tok, "Q: what is red ?")
    assert q[:2] == ids(tok, "q :")
    assert seqs[0][0] == [0] + q + [2] + ids(tok, "A: cat") + [2]
    assert seqs[0][1] == [0] + q + [2] + ids(tok, "A: the dog") + [2]
    # too long: the question is cut, the answer survives
    short = cs.encode_csqa(tok, rows, max_length=8)[0][1]
    assert len(short) == 8 and short[-6:] == [2] + ids(tok, "A: the dog") + [2]
    assert short[0] == 0


def test_tok_tokenizes_each_distinct_text_once_with_the_same_ids(tok):
    from smcbench.tasks.commonsense.model import _tok

    calls = []

    class Counting:
        def __call__(self, texts, **kw):
            calls.append(list(texts))
            return tok(texts, **kw)

    texts = ["A: cat", "A: the dog", "A: cat", "Q: what is red ?", "A: cat", ""]
    got = _tok(Counting(), texts)
    assert got == tok(texts, add_special_tokens=False)["input_ids"]
    assert calls == [["A: cat", "A: the dog", "Q: what is red ?", ""]]
    got[0].append(99)  # every row owns its list: editing one leaves its duplicates alone
    assert got[2] == ids(tok, "A: cat")
    assert _tok(Counting(), []) == []


def test_race_layout_is_fairseq(tok):
    rows = [{"id": "r", "question": "the _ was big .", "choices": ["cat", "dog", "tom", "ann"],
             "label": 1, "article": "article\ntext here ."},
            {"id": "s", "question": "what is red ?", "choices": ["cat", "dog", "tom", "ann"],
             "label": 0, "article": "text"}]
    seqs = cs.encode_race(tok, rows, max_length=64, option_max_tokens=32)
    art = ids(tok, "article text here .")
    assert seqs[0][1] == [0] + ids(tok, "the dog was big .") + [2, 2] + art + [2]  # blank filled
    assert seqs[1][0] == [0] + ids(tok, "what is red ? cat") + [2, 2] + ids(tok, "text") + [2]  # appended
    assert cs.race_qa("a _ b", "x") == "a x b" and cs.race_qa("a b", "x") == "a b x"
    # option cut to option_max_tokens (with its <s>), whole cut to max_length, both at the end
    cut = cs.encode_race(tok, rows, max_length=9, option_max_tokens=4)[0][1]
    assert cut == ([0] + ids(tok, "the dog was big .")[:3] + [2] + art + [2])[:9]


def test_winogrande_mlm_span(tok):
    rows = [{"id": "w", "sentence": "tom likes ann because _ was big .", "option1": "tom",
             "option2": "the dog", "choices": ["tom", "the dog"], "label": 0}]
    (s1, sp1), (s2, sp2) = cs.encode_winogrande_mlm(tok, rows, max_length=32)[0]
    assert s2 == [0] + ids(tok, "tom likes ann because the dog was big .") + [2]
    assert [t for t, m in zip(s2, sp2) if m] == ids(tok, "the dog")
    assert [t for t, m in zip(s1, sp1) if m] == ids(tok, "tom")
    assert len(sp1) == len(s1)
    mc = cs.encode_winogrande_mc(tok, rows, max_length=32)[0]
    assert mc[1] == [0] + ids(tok, "tom likes ann because the dog") + [2, 2] + ids(tok, "was big .") + [2]


def test_margin_loss_formula():
    scores = torch.tensor([[-1.0, -2.0], [-3.0, -0.5]])
    labels = torch.tensor([0, 0])
    # row 0: -(-1) + 5*max(0, -2+1+0.4) = 1; row 1: 3 + 5*(-0.5+3+0.4) = 17.5
    assert cs.winogrande_margin_loss(scores, labels, 5.0, 0.4).item() == pytest.approx((1 + 17.5) / 2)
    assert cs.winogrande_margin_loss(scores, torch.tensor([1, 1]), 5.0, 0.4).item() == pytest.approx(
        (2 + 5 * 1.4 + 0.5 + 0) / 2)


def tiny_model_dir(tmp_path: Path, tok, arch: str = "roberta_mlm") -> Path:
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=66,
                        type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    path = tmp_path / "model"
    RobertaForMaskedLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "pretrained.json").write_text(json.dumps({"path": str(path), "arch": arch}))
    return pre


def winogrande_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i, (o1, o2, adj, label) in enumerate([("tom", "ann", "big", 0), ("cat", "dog", "small", 1),
                                              ("ann", "tom", "big", 1), ("dog", "cat", "small", 0)]):
        s = f"{o1} likes {o2} because _ was {adj} ."
        rows.append({"id": f"w{i}", "question": s, "sentence": s, "option1": o1, "option2": o2,
                     "choices": [o1, o2], "label": label})
    for split in ("train", "validation", "test"):
        write_jsonl(data / f"{split}.jsonl", rows)
    return data


def test_winogrande_mlm_task_scores_and_learns(tmp_path, tok):
    torch.set_num_threads(1)
    pre = tiny_model_dir(tmp_path, tok)
    data = winogrande_data(tmp_path)
    settings = {"max_length": 32, "margin_alpha": 5.0, "margin_beta": 0.4,
                "model": {"name": "tiny", "arch": "roberta_mlm"}, "training": {"batch_size": 4}}
    task = cs.TASK("winogrande", settings, data, pre, seed=0)
    model = task.build_model()
    batch = next(task.train_batches(0))
    scores = task._scores(model, batch)
    # the score is the mean log-prob of the span tokens with the span masked: recompute by hand
    ids, span = batch["input_ids"][0, 0], batch["span"][0, 0]
    masked = ids.masked_fill(span, tok.mask_token_id)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=masked[None]).logits[0], -1)
    manual = lp[span.nonzero()[:, 0], ids[span]].mean()
    assert scores[0, 0].item() == pytest.approx(manual.item(), abs=1e-5)
    loss = task.loss(model, batch)
    assert loss.item() == pytest.approx(
        cs.winogrande_margin_loss(scores, batch["labels"], 5.0, 0.4).item(), rel=1e-5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = loss.item()
    for _ in range(30):
        loss = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert task.evaluate(model, "test")["accuracy"] == 100.0
    assert task.signature().startswith(
        "accuracy=100*correct/n|selection:validation|input:fairseq-wsc-mlm|arch:roberta_mlm|")
    assert task.baseline("test")["accuracy"] == 50.0


def test_build_model_is_deterministic_and_seeded(tmp_path, tok):
    pre = tiny_model_dir(tmp_path, tok, "roberta_mc")
    data = winogrande_data(tmp_path)
    settings = {"max_length": 32, "model": {"name": "tiny", "arch": "roberta_mc"},
                "training": {"batch_size": 2}}
    a = cs.TASK("winogrande", settings, data, pre, seed=1).build_model().state_dict()
    b_task = cs.TASK("winogrande", settings, data, pre, seed=1)
    b = b_task.build_model()
    b_task.build_model()  # a second copy from the cached template
    c = cs.TASK("winogrande", settings, data, pre, seed=2).build_model().state_dict()
    assert all(torch.equal(a[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])
    # backbone = checkpoint, identical across seeds; HF parameter names kept
    assert torch.equal(a["roberta.encoder.layer.0.attention.self.query.weight"],
                       c["roberta.encoder.layer.0.attention.self.query.weight"])
    names = [n for n, _ in b.named_parameters()]
    assert "roberta.embeddings.word_embeddings.weight" in names and names[-1] == "classifier.bias"
    assert b_task.signature().startswith("accuracy=100*correct/n|selection:validation|input:mc-blank|arch:roberta_mc|")
    # batches are (B, C, L) and seeded per epoch
    e0 = [x["labels"].tolist() for x in b_task.train_batches(0)]
    assert e0 == [x["labels"].tolist() for x in b_task.train_batches(0)]
    assert b_task.steps_per_epoch() == 2 == len(e0)
    assert next(b_task.train_batches(0))["input_ids"].shape[:2] == (2, 2)


def test_bad_arch_and_format_are_rejected(tmp_path, tok):
    pre = tiny_model_dir(tmp_path, tok)
    data = winogrande_data(tmp_path)
    with pytest.raises(ValueError, match="arch 'bert_mc'"):
        cs.TASK("winogrande", {"model": {"arch": "bert_mc"}}, data, pre, 0)
    with pytest.raises(ValueError, match="needs\\s+WinoGrande-style rows|WinoGrande-style"):
        cs.TASK("csqa", {"model": {"arch": "roberta_mlm"}}, data, pre, 0)


def test_a_dataset_of_its_own_name_gets_its_format_guessed_from_its_rows(tmp_path, tok):
    # a user's dataset (no built-in default format, none configured): the rows decide
    pre = tiny_model_dir(tmp_path, tok, "roberta_mc")
    data = winogrande_data(tmp_path)
    settings = {"max_length": 32, "model": {"name": "tiny", "arch": "roberta_mc"}, "training": {"batch_size": 2}}
    assert cs.TASK("my_wsc_copy", settings, data, pre, seed=0).input_format == "winogrande"
    csqa = tmp_path / "csqa"
    csqa.mkdir()
    row = {"id": "q0", "question": "where do cats sleep ?", "choices": ["bed", "sky"], "label": 0}
    for split in ("train", "validation", "test"):
        write_jsonl(csqa / f"{split}.jsonl", [row])
    assert cs.TASK("my_qa", settings, csqa, pre, seed=0).input_format == "csqa"
