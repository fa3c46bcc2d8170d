"""Multilingual translation family (issue #6): OPUS-100 en<->X with mBART-cc25, many-to-many.

The paper's translation code was never released; this module is the reference implementation
of our reading of it (see the README (translation)):

* **Data** — fine-tuning pairs are X<->en for X in the dataset's ``languages`` (both directions,
  pivoting through English); the test split always covers all X<->en directions of the ten
  OPUS-100 languages (``test_languages``), whatever the fine-tuning set. Training batches draw
  directions by temperature sampling (p ∝ n^(1/T), T = 1.5). Rows:
  ``{"id", "src_lang", "tgt_lang", "source", "target"}`` with ISO-639-1 codes.
* **Model** — ``MBartForConditionalGeneration``; language tokens as in Tang et al. 2020: source
  ``[src] X </s>``, decoder input ``[tgt] Y``, labels ``Y </s>``; generation starts from ``[tgt]``.
  cc25 language tokens (``fr_XX`` …) by default (``lang_tokens`` in the model settings overrides).
  The embedding, encoder/decoder ``embed_tokens`` and ``lm_head`` are one tied tensor
  (``model.shared.weight``), pruned and counted once.
* **Metric** — sacreBLEU per direction on the test split (``13a``; ``zh`` for Chinese,
  ``ja-mecab`` for Japanese), reported as ``bleu_<src>-<tgt>`` and their mean ``bleu``. Baseline:
  copy the source.

Layout: ``directions.py`` (pairs, pivoting, temperature sampling), ``opus.py`` (OPUS-100 readers),
``data.py`` (``prepare``), ``synthetic.py`` (the demo world and its denoising pre-training),
``model.py`` (``make_pretrained``), ``task.py`` (the Task and BLEU).
"""

from __future__ import annotations

from .._lazy import lazy_getattr


#: the ten OPUS-100 languages of the paper's 10-to-10 setting, and the pivot
LANGUAGES = ["cs", "de", "fr", "gu", "ja", "my", "ro", "ru", "vi", "zh"]
PIVOT = "en"
#: mbart-large-cc25 language tokens (models.md §2.2)
CC25_CODES = {"ar": "ar_AR", "cs": "cs_CZ", "de": "de_DE", "en": "en_XX", "es": "es_XX",
              "et": "et_EE", "fi": "fi_FI", "fr": "fr_XX", "gu": "gu_IN", "hi": "hi_IN",
              "it": "it_IT", "ja": "ja_XX", "kk": "kk_KZ", "ko": "ko_KR", "lt": "lt_LT",
              "lv": "lv_LV", "my": "my_MM", "ne": "ne_NP", "nl": "nl_XX", "ro": "ro_RO",
              "ru": "ru_RU", "si": "si_LK", "tr": "tr_TR", "vi": "vi_VN", "zh": "zh_CN"}
#: sacreBLEU tokenizer per target language; every other language uses 13a
BLEU_TOKENIZERS = {"zh": "zh", "ja": "ja-mecab"}
#: what this family declares (tasks/__init__.py derives its registries from these)
DATASETS = ("opus100_2to2", "opus100_5to5", "opus100_10to10",
            "demo_mt_2to2", "demo_mt_5to5", "demo_mt_10to10", "demo_mt_easy", "demo_mt_hard")
ARCHS = ("mbart",)
SPLITS = ("train", "validation", "test")


# The contract (prepare, make_pretrained, TASK) and helpers load on first use: importing the
# declarations above costs nothing (planning reads them without torch).
_SUBMODULES = ("task", "model", "data", "directions", "opus", "synthetic")

__getattr__ = lazy_getattr(__name__, _SUBMODULES)
