"""Translation family, model side: the tiny demo mBART (real MBartForConditionalGeneration class,
locally built tokenizer), language-token format, tied embeddings, temperature-sampled batches and
a tiny end-to-end run with generation and BLEU on all 20 directions."""

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import translation as T  # noqa: E402

MODEL_SETTINGS = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "attention_heads": 2,
                  "ffn_dim": 64, "world_seed": 5, "n_nouns": 6, "n_verbs": 3, "n_adjs": 3,
                  "pretrain_steps": 3, "pretrain_batch_size": 8, "dropout": 0.0}
DATA_SETTINGS = {"world_seed": 5, "n_nouns": 6, "n_verbs": 3, "n_adjs": 3, "n_train_per_pair": 12,
                 "n_validation_per_pair": 2, "n_test_per_pair": 2, "num_beams": 1,
                 "max_source_length": 24, "max_target_length": 24, "eval_batch_size": 64}
ENTRY = {"arch": "mbart", "source": "synthetic", "settings": MODEL_SETTINGS}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("mt")
    torch.set_num_threads(1)
    info = T.make_pretrained("demo_mbart", ENTRY, "synthetic", root / "pre")
    (root / "pre" / "pretrained.json").write_text(json.dumps(info))
    T.prepare("demo_mt_2to2", "synthetic", root / "data", {**DATA_SETTINGS, "languages": ["fr", "cs"]})
    return root, info


def make_task(root: Path, seed: int = 0, **extra):
    settings = {**DATA_SETTINGS, "languages": ["fr", "cs"], **extra,
                "model": {"name": "demo_mbart", **ENTRY},
                "training": {"lr": 3e-3, "batch_size": 8, "epochs": 1, "label_smoothing": 0.2}}
    return T.TASK("demo_mt_2to2", settings, root / "data", root / "pre", seed=seed)


def test_make_pretrained_writes_safetensors_and_tokenizer(built):
    root, info = built
    assert info["path"] == str(root / "pre")
    assert (root / "pre" / "model.safetensors").is_file()
    assert not list((root / "pre").glob("*.bin"))
    assert (root / "pre" / "tokenizer.json").is_file()
    assert info["pretrain_steps"] == 3 and info["vocab_size"] > 30


def test_language_tokens_and_sequence_format(built):
    task = make_task(built[0])
    tok = task.tokenizer
    # every language token is one special token that the tokenizer never splits
    for lang, code in (("fr", "fr_XX"), ("cs", "cs_CZ"), ("zh", "zh_CN"), ("en", "en_XX")):
        assert task.lang_ids[lang] == tok.convert_tokens_to_ids(code) != tok.unk_token_id
        assert tok(code, add_special_tokens=False).input_ids == [task.lang_ids[lang]]
    assert len(set(task.lang_ids.values())) == 11
    items = task._encode("train")
    s, t, src, tgt = items[0]
    batch = task.collate([items[0]])
    # Tang et al. 2020: [src] X </s> -> decoder [tgt] Y, labels Y </s>
    assert batch["input_ids"][0].tolist() == [task.lang_ids[src]] + s + [tok.eos_token_id]
    assert batch["decoder_input_ids"][0].tolist() == [task.lang_ids[tgt]] + t
    assert batch["labels"][0].tolist() == t + [tok.eos_token_id]
    # padding: pad id in inputs, -100 in labels
    batch = task.collate(items[:4])
    assert ((batch["input_ids"] == tok.pad_token_id) == (batch["attention_mask"] == 0)).all()
    assert (batch["labels"] == -100).sum() == (batch["decoder_input_ids"] == tok.pad_token_id).sum()


def test_tied_embedding_is_one_parameter(built):
    task = make_task(built[0])
    model = task.build_model()
    names = [n for n, _ in model.named_parameters()]
    assert "model.shared.weight" in names
    assert not any(n.endswith("embed_tokens.weight") or n == "lm_head.weight" for n in names)
    assert model.lm_head.weight is model.model.shared.weight
    assert model.model.encoder.embed_tokens.weight is model.model.shared.weight
    # zeroing the shared tensor (what pruning does) reaches the output projection too
    with torch.no_grad():
        model.model.shared.weight[5].zero_()
    assert model.lm_head.weight[5].abs().sum() == 0
    # parameter count counts the tied tensor once
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for n, p in model.named_parameters())


def test_build_model_is_deterministic(built):
    task = make_task(built[0])
    a, b = task.build_model().state_dict(), task.build_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_temperature_sampled_epochs(built):
    task = make_task(built[0], epoch_size=40, temperature=1.5)
    probs = task.direction_probs()
    assert set(probs) == {("fr", "en"), ("en", "fr"), ("cs", "en"), ("en", "cs")}
    assert sum(probs.values()) == pytest.approx(1.0)
    e0, e0b, e1 = task.sample_epoch(0), task.sample_epoch(0), task.sample_epoch(1)
    assert e0 == e0b and e0 != e1 and len(e0) == 40
    assert task.steps_per_epoch() == 5
    batches = list(task.train_batches(0))
    assert len(batches) == 5 and batches[0]["input_ids"].shape[0] == 8
    # a different seed gives a different order
    assert make_task(built[0], seed=1, epoch_size=40).sample_epoch(0) != e0


def test_unequal_pair_sizes_follow_temperature(tmp_path, built):
    root = built[0]
    rows = [{"id": f"fr-en-train-{i}", "src_lang": "fr", "tgt_lang": "en", "source": "Ada", "target": "Ada"}
            for i in range(90)] + [{"id": f"cs-en-train-{i}", "src_lang": "cs", "tgt_lang": "en",
                                    "source": "Ada", "target": "Ada"} for i in range(10)]
    from smcbench.tasks.base import write_jsonl

    for split in ("train", "validation", "test"):
        write_jsonl(tmp_path / f"{split}.jsonl", rows)
    settings = {**DATA_SETTINGS, "languages": ["fr", "cs"], "epoch_size": 4000, "temperature": 5.0,
                "model": {"name": "demo_mbart", **ENTRY}, "training": {"batch_size": 8}}
    task = T.TASK("d", settings, tmp_path, root / "pre", seed=0)
    picks = task.sample_epoch(0)
    share_cs = sum(1 for i in picks if i >= 90) / len(picks)
    expected = T.temperature_probs({"fr": 90, "cs": 10}, 5.0)["cs"]
    assert expected > 0.3  # T = 5 lifts the 10% pair well above its share
    assert share_cs == pytest.approx(expected, abs=0.03)


def test_world_mismatch_is_a_clear_error(tmp_path, built):
    root = built[0]
    T.prepare("d", "synthetic", tmp_path, {**DATA_SETTINGS, "world_seed": 99, "languages": ["fr"]})
    settings = {**DATA_SETTINGS, "languages": ["fr"], "model": {"name": "demo_mbart", **ENTRY},
                "training": {"batch_size": 8}}
    with pytest.raises(ValueError, match="world_seed"):
        T.TASK("d", settings, tmp_path, root / "pre", seed=0)


def test_end_to_end_train_generate_bleu(built):
    root, _ = built
    task = make_task(root)
    model = task.build_model()
    opt = torch.optim.AdamW(task.param_groups(model, 3e-3, 0.0))
    first = None
    for epoch in range(3):
        model.train()
        for batch in task.train_batches(epoch):
            loss = task.loss(model, batch)
            loss.backward()
            opt.step()
            opt.zero_grad()
            first = loss.item() if first is None else first
    assert loss.item() < first
    res = task.evaluate(model, "test")
    assert res["n"] == 40
    dirs = {k for k in res if k.startswith("bleu_") and k.count("-") == 1}
    assert dirs == {f"bleu_{s}-{t}" for s, t in T.pivot_directions(T.LANGUAGES)}
    assert res["bleu"] == pytest.approx(sum(res[k] for k in dirs) / 20)
    assert "bleu_finetuned_directions" in res and "bleu_other_directions" in res
    assert set(task.last_signatures) == {k[5:] for k in dirs}
    assert "tok:ja-mecab" in task.last_signatures["en-ja"]
    assert "tok:zh" in task.last_signatures["en-zh"]
    assert "tok:13a" in task.last_signatures["en-fr"]
    hyps = task.translate(model, "test")
    assert len(hyps) == 40 and all(isinstance(h, str) for h in hyps)
    assert not any(code in h for h in hyps for code in ("fr_XX", "</s>", "<pad>"))
    base = task.baseline("test")
    assert 0.0 <= base["bleu"] < 50.0 and len([k for k in base if k.count("-") == 1]) == 20
    val = task.evaluate(model, "validation")
    assert set(val) >= {"bleu", "n"} and task.selection_metric == "bleu"
    sig = task.signature()
    assert "tok:ja-mecab" in sig and "tok:zh" in sig and "tok:13a" in sig and "decode:greedy" in sig


def test_neg_loss_selection_metric(built):
    task = make_task(built[0], selection_metric="neg_loss")
    model = task.build_model()
    val = task.evaluate(model, "validation")
    assert task.selection_metric == "neg_loss"
    assert val["neg_loss"] == pytest.approx(-val["nll"]) and val["nll"] > 0
    assert "bleu" in task.evaluate(model, "test")  # test still reports BLEU
    with pytest.raises(ValueError, match="selection_metric"):
        make_task(built[0], selection_metric="chrf")


def test_local_checkpoint_checks(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mbart", "vocab_size": 250027}))
    with pytest.raises(FileNotFoundError, match="no weights"):
        T.make_pretrained("mbart_cc25", {"arch": "mbart"}, str(tmp_path), tmp_path / "out")
    (tmp_path / "model.safetensors").write_bytes(b"")
    info = T.make_pretrained("mbart_cc25", {"arch": "mbart"}, str(tmp_path), tmp_path / "out")
    assert info["path"] == str(tmp_path) and info["vocab_size"] == 250027
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bart"}))
    with pytest.raises(ValueError, match="model_type 'bart'"):
        T.make_pretrained("m", {"arch": "mbart"}, str(tmp_path), tmp_path / "out")
    with pytest.raises(ValueError, match="arch 'marian'"):
        T.make_pretrained("m", {"arch": "marian"}, str(tmp_path), tmp_path / "out")


def test_real_mbart_tokenizer_class_path(tmp_path):
    """The cc25 code path: HF's MBartTokenizer (here its file-less minimal vocabulary, ids differ
    from cc25's) resolves the language tokens by name; a random-init MBart of the real class
    loads from safetensors, trains a step and generates."""
    from transformers import MBartConfig, MBartForConditionalGeneration, MBartTokenizer

    from smcbench.tasks.base import write_jsonl

    tok = MBartTokenizer(src_lang="en_XX", tgt_lang="fr_XX")
    model_dir = tmp_path / "cc25_like"
    cfg = MBartConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                      decoder_ffn_dim=32, max_position_embeddings=32, scale_embedding=True,
                      forced_bos_token_id=tok.convert_tokens_to_ids("ro_RO"))
    torch.manual_seed(0)
    MBartForConditionalGeneration(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "pretrained.json").write_text(json.dumps({"path": str(model_dir)}))
    rows = [{"id": f"{s}-{t}-test-0", "src_lang": s, "tgt_lang": t, "source": "x", "target": "y"}
            for s, t in T.pivot_directions(T.LANGUAGES)]
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):
        write_jsonl(data / f"{split}.jsonl", rows)
    settings = {"languages": T.LANGUAGES, "num_beams": 2, "max_target_length": 6,
                "model": {"name": "mbart_cc25", "arch": "mbart", "source": "facebook/mbart-large-cc25",
                          "settings": {"dropout": 0.3}},
                "training": {"batch_size": 4}}
    task = T.TASK("opus100_10to10", settings, data, pre, seed=0)
    assert task.lang_ids["fr"] == tok.convert_tokens_to_ids("fr_XX")
    assert task.lang_ids["zh"] == tok.convert_tokens_to_ids("zh_CN")
    model = task.build_model()
    assert model.config.dropout == 0.3  # model settings override the checkpoint's config
    loss = task.loss(model, next(task.train_batches(0)))
    loss.backward()
    assert torch.isfinite(loss)
    # the checkpoint's forced_bos_token_id must not leak into generation: each hypothesis starts
    # right after the target-language token we feed
    hyps = task.translate(model, "test")
    assert len(hyps) == 20
    assert "beam2" in task.signature()


def test_malformed_training_row_names_file_and_line(tmp_path, built):
    root = built[0]
    from smcbench.tasks.base import write_jsonl

    good = {"id": "fr-en-train-0", "src_lang": "fr", "tgt_lang": "en", "source": "Ada", "target": "Ada"}
    for split in ("validation", "test"):
        write_jsonl(tmp_path / f"{split}.jsonl", [good])
    settings = {**DATA_SETTINGS, "languages": ["fr"], "model": {"name": "m", **ENTRY, "source": "local"},
                "training": {"batch_size": 8}}
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n" + '{"id": "x", "source": "Ada"}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl:2: row lacks"):
        T.TASK("d", settings, tmp_path, root / "pre", seed=0)
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"train\.jsonl:2: malformed JSON"):
        T.TASK("d", settings, tmp_path, root / "pre", seed=0)
    (tmp_path / "train.jsonl").write_text(json.dumps({**good, "src_lang": "xx"}) + "\n")
    with pytest.raises(ValueError, match=r"train\.jsonl:1: language pair 'xx'"):
        T.TASK("d", settings, tmp_path, root / "pre", seed=0)


def test_pre_encoded_training_batches_equal_batch_by_batch(built):
    # small training sets are tokenized once per task; the batches are exactly those of
    # tokenizing batch by batch (the path large OPUS-100 sets take)
    fast = make_task(built[0], epoch_size=40)
    slow = make_task(built[0], epoch_size=40)
    slow.PRE_ENCODE_MAX_ROWS = 0
    for epoch in (0, 1):
        a, b = list(fast.train_batches(epoch)), list(slow.train_batches(epoch))
        assert len(a) == len(b) == 5
        for x, y in zip(a, b):
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert "train" in fast._encoded and "train" not in slow._encoded
