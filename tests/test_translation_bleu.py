"""Translation family, metric side: sacreBLEU tokenizer per target language (13a, zh, ja-mecab,
all offline) and per-direction scores with their signatures."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import translation as T  # noqa: E402


def test_tokenizer_choice_per_target_language():
    assert T.bleu_tokenizer("zh") == "zh"
    assert T.bleu_tokenizer("ja") == "ja-mecab"
    for lang in ("en", "fr", "cs", "de", "gu", "my", "ro", "ru", "vi"):
        assert T.bleu_tokenizer(lang) == "13a"


def test_signatures_record_the_tokenizer():
    _, sig_zh = T.corpus_bleu(["我喜欢猫"], ["我喜欢猫"], "zh")
    _, sig_ja = T.corpus_bleu(["猫が好きです"], ["猫が好きです"], "ja")
    _, sig_fr = T.corpus_bleu(["le chat"], ["le chat"], "fr")
    assert "tok:zh" in sig_zh
    assert "tok:ja-mecab" in sig_ja  # runs offline: mecab-python3 + ipadic are local packages
    assert "tok:13a" in sig_fr
    for sig in (sig_zh, sig_ja, sig_fr):
        assert "version:2." in sig and "nrefs:1" in sig


def test_zh_and_ja_tokenizers_segment_unspaced_text():
    # without a segmenting tokenizer an unspaced sentence is one "word": a one-character error
    # would give BLEU 0; zh / ja-mecab split it, so most n-grams still match
    zh, _ = T.corpus_bleu(["我今天很喜欢这只小猫"], ["我今天很喜欢那只小猫"], "zh")
    ja, _ = T.corpus_bleu(["私は今日その猫がとても好きです"], ["私は今日この猫がとても好きです"], "ja")
    assert 20 < zh < 100 and 20 < ja < 100
    flat, _ = T.corpus_bleu(["我今天很喜欢这只小猫"], ["我今天很喜欢那只小猫"], "fr")
    assert flat == 0.0


def test_bleu_by_direction_keys_mean_and_signatures():
    rows = [
        {"src_lang": "fr", "tgt_lang": "en", "target": "the cat sat on the mat"},
        {"src_lang": "fr", "tgt_lang": "en", "target": "a dog ran in the park"},
        {"src_lang": "en", "tgt_lang": "zh", "target": "我喜欢猫和狗"},
    ]
    hyps = ["the cat sat on the mat", "a dog ran in the park", "我喜欢猫和狗"]
    scores, sigs = T.bleu_by_direction(rows, hyps)
    assert scores["bleu_fr-en"] == pytest.approx(100.0)
    assert scores["bleu_en-zh"] == pytest.approx(100.0)
    assert scores["bleu"] == pytest.approx(100.0)
    assert set(sigs) == {"fr-en", "en-zh"}
    assert "tok:zh" in sigs["en-zh"] and "tok:13a" in sigs["fr-en"]
    wrong, _ = T.bleu_by_direction(rows, ["x y z", "a dog ran in the park", "我喜欢猫和狗"])
    assert wrong["bleu_fr-en"] < 100.0
    # the mean is over directions, not sentences
    assert wrong["bleu"] == pytest.approx((wrong["bleu_fr-en"] + wrong["bleu_en-zh"]) / 2)
