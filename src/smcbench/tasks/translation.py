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

Real data loading lives in ``translation_opus.py``, the synthetic demo world in
``translation_synthetic.py``.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from .base import Task, iter_jsonl, package_versions, pretrained_path, read_jsonl, write_jsonl

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
DATASETS = {"opus100_2to2", "opus100_5to5", "opus100_10to10",
            "demo_mt_2to2", "demo_mt_5to5", "demo_mt_10to10"}
SPLITS = ("train", "validation", "test")


# --- directions, pairs, sampling ----------------------------------------------------------------
def opus_pair(lang: str) -> str:
    """OPUS-100 / HF config name of the lang<->en pair: the two codes in alphabetical order
    (``cs-en`` but ``en-fr``)."""
    return "-".join(sorted([lang, PIVOT]))


def pivot_directions(languages: list[str]) -> list[tuple[str, str]]:
    """All directions through English for ``languages``: (X, en) and (en, X) for each X."""
    out = []
    for lang in languages:
        out += [(lang, PIVOT), (PIVOT, lang)]
    return out


def check_languages(languages: Any, key: str = "languages", allowed: list[str] | None = None) -> list[str]:
    """Validate a language list from the dataset settings; errors name the bad value."""
    allowed = LANGUAGES if allowed is None else allowed
    if not isinstance(languages, (list, tuple)) or not languages:
        raise ValueError(f"translation settings.{key} must be a non-empty list of codes from "
                         f"{allowed}, got {languages!r}")
    bad = [x for x in languages if x not in allowed]
    if bad:
        raise ValueError(f"unknown language(s) {bad} in settings.{key} (known: {', '.join(allowed)}; "
                         f"English is the pivot and is added automatically)")
    if len(set(languages)) != len(languages):
        raise ValueError(f"duplicate language in settings.{key}: {list(languages)}")
    return list(languages)


def temperature_probs(sizes: dict[Any, int], temperature: float) -> dict[Any, float]:
    """Sampling probability per key: p_k ∝ (n_k / N)^(1/T) (fairseq's temperature sampling;
    T = 1 is proportional, T → ∞ uniform). Keys with n = 0 get p = 0."""
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0 (settings.temperature)")
    total = sum(sizes.values())
    if total <= 0:
        raise ValueError(f"no training examples to sample from (sizes: {sizes})")
    weights = {k: (n / total) ** (1.0 / temperature) if n > 0 else 0.0 for k, n in sizes.items()}
    z = sum(weights.values())
    return {k: w / z for k, w in weights.items()}


# --- BLEU ---------------------------------------------------------------------------------------
def bleu_tokenizer(lang: str) -> str:
    """The sacreBLEU tokenizer for target language ``lang`` (zh → zh, ja → ja-mecab, else 13a)."""
    return BLEU_TOKENIZERS.get(lang, "13a")


@lru_cache(maxsize=None)
def _bleu_metric(tokenize: str):
    # one object per tokenizer: ja-mecab loads its dictionary once (~0.1 s)
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize)
    # sacreBLEU only fills the signature's nrefs after a first score; we always use one reference
    metric.corpus_score(["x"], [["x"]])
    return metric


def corpus_bleu(hypotheses: list[str], references: list[str], lang: str) -> tuple[float, str]:
    """(corpus BLEU, sacreBLEU signature) of one direction whose target language is ``lang``."""
    metric = _bleu_metric(bleu_tokenizer(lang))
    score = metric.corpus_score(hypotheses, [references]).score
    return float(score), str(metric.get_signature())


def bleu_by_direction(rows: list[dict], hypotheses: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Per-direction BLEU (``bleu_<src>-<tgt>``) and their mean ``bleu``, plus the signature of
    every direction. ``rows`` carry ``src_lang``, ``tgt_lang`` and the reference ``target``."""
    groups: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for row, hyp in zip(rows, hypotheses):
        h, r = groups.setdefault((row["src_lang"], row["tgt_lang"]), ([], []))
        h.append(hyp)
        r.append(row["target"])
    scores, signatures = {}, {}
    for (src, tgt), (h, r) in sorted(groups.items()):
        scores[f"bleu_{src}-{tgt}"], signatures[f"{src}-{tgt}"] = corpus_bleu(h, r, tgt)
    scores = {"bleu": sum(scores.values()) / max(1, len(scores)), **scores}
    return scores, signatures


# --- prepare ------------------------------------------------------------------------------------
def prepare(dataset: str, source: str | Path, out_dir: str | Path, settings: dict[str, Any],
            fold: int | None = None) -> dict[str, Any]:
    """Write ``out_dir/{train,validation,test}.jsonl`` for a translation dataset.

    ``source`` is ``"synthetic"`` (demo world, see ``translation_synthetic``) or a local folder in
    the HF ``Helsinki-NLP/opus-100`` snapshot layout (parquet) or the original
    ``opus-100-corpus/v1.0/supervised/<pair>/`` layout (or that release's archive). Settings: ``languages`` (fine-tuning
    set), ``test_languages`` (default: all ten), caps per pair (see ``translation_opus``).
    Returns the meta dict (source, sha256 of raw files, counts, drops)."""
    if fold is not None:
        raise ValueError(f"translation datasets have no CV folds (got fold={fold}); "
                         "remove `folds` from the dataset's config entry")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    languages = check_languages(settings.get("languages"))
    test_languages = check_languages(settings.get("test_languages", LANGUAGES), "test_languages")
    if str(source) == "synthetic":
        splits, meta = _synthetic_splits(settings, languages, test_languages)
    else:
        from ..io import extract_archive, is_archive
        from .translation_opus import read_opus100

        root = Path(source)
        if is_archive(root):  # e.g. opus-100-corpus-v1.0.tar.gz as the publisher ships it
            root = extract_archive(root, out_dir / "raw")
        splits, meta = read_opus100(root, languages, test_languages, settings)
    counts, per_direction = {}, {}
    for split in SPLITS:
        tally: dict[str, int] = {}
        # rows are streamed to disk (the real 10-to-10 train split is ~17M rows) and counted
        # per direction on the way
        counts[split] = write_jsonl(out_dir / f"{split}.jsonl", _tallied(splits[split], tally))
        per_direction[split] = dict(sorted(tally.items()))
    return {"dataset": dataset, "family": "translation", "languages": languages,
            "test_languages": test_languages, **meta, "counts": counts,
            "counts_per_direction": per_direction}


def _tallied(rows, tally: dict[str, int]):
    for r in rows:
        key = f"{r['src_lang']}-{r['tgt_lang']}"
        tally[key] = tally.get(key, 0) + 1
        yield r


def iter_directional_rows(pair_rows: list[tuple[int, str, str]], lang: str, split: str) -> Iterator[dict]:
    """Both directions of aligned (index, english, other) sentence pairs as schema rows (all
    X→en rows, then all en→X); ids are ``<src>-<tgt>-<split>-<index>`` (index = the line/row in
    the raw split)."""
    for src, tgt in ((lang, PIVOT), (PIVOT, lang)):
        for i, en, other in pair_rows:
            text = {PIVOT: en, lang: other}
            yield {"id": f"{src}-{tgt}-{split}-{i}", "src_lang": src, "tgt_lang": tgt,
                   "source": text[src], "target": text[tgt]}


def directional_rows(pair_rows: list[tuple[int, str, str]], lang: str, split: str) -> list[dict]:
    """:func:`iter_directional_rows` as a list."""
    return list(iter_directional_rows(pair_rows, lang, split))


def _synthetic_splits(settings: dict[str, Any], languages: list[str], test_languages: list[str]):
    import random

    from .translation_synthetic import build_world, sample_parallel

    world = build_world(settings)
    n_train = int(settings.get("n_train_per_pair", 200))
    n_valid = int(settings.get("n_validation_per_pair", 4))
    n_test = int(settings.get("n_test_per_pair", 8))
    seed = int(settings.get("world_seed", 0))
    # Held-out sentences first, for every language, with the same draws whatever the
    # fine-tuning set, so demo_mt_2to2 and demo_mt_10to10 share one test set; training sentences
    # then avoid every held-out meaning in every language (no cross-direction leakage).
    held: dict[str, dict[str, list]] = {}
    held_keys: set = set()
    for lang in sorted(set(LANGUAGES)):
        rng = random.Random(f"smcbench-mt-heldout-{seed}-{lang}")
        test = sample_parallel(world, n_test, rng, exclude=held_keys)
        valid = sample_parallel(world, n_valid, rng, exclude=held_keys | {m.key() for m in test})
        held[lang] = {"test": test, "validation": valid}
        held_keys |= {m.key() for m in test + valid}
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for lang in LANGUAGES:
        if lang in languages:
            rng = random.Random(f"smcbench-mt-train-{seed}-{lang}")
            train = sample_parallel(world, n_train, rng, exclude=held_keys)
            splits["train"] += directional_rows(
                [(i, world.render(m, PIVOT), world.render(m, lang)) for i, m in enumerate(train)],
                lang, "train")
            splits["validation"] += directional_rows(
                [(i, world.render(m, PIVOT), world.render(m, lang))
                 for i, m in enumerate(held[lang]["validation"])], lang, "validation")
        if lang in test_languages:
            splits["test"] += directional_rows(
                [(i, world.render(m, PIVOT), world.render(m, lang))
                 for i, m in enumerate(held[lang]["test"])], lang, "test")
    world_keys = ("world_seed", "n_nouns", "n_verbs", "n_adjs", "cognate_fraction")
    meta = {"source": "synthetic", "world": {k: settings[k] for k in world_keys if k in settings},
            "sha256": {}, "dropped": {s: {} for s in SPLITS}}
    return splits, meta


# --- pre-trained model --------------------------------------------------------------------------
def _lang_tokens(model_settings: dict[str, Any]) -> dict[str, str]:
    """ISO code → the model's language token (cc25 codes unless ``lang_tokens`` overrides)."""
    tokens = dict(CC25_CODES)
    tokens.update(model_settings.get("lang_tokens") or {})
    return tokens


def make_pretrained(model_name: str, entry: dict[str, Any], source: str | Path,
                    out_dir: str | Path) -> dict[str, Any]:
    """Materialize the pre-trained mBART.

    A local folder (Hub snapshot of ``facebook/mbart-large-cc25`` or the user's checkpoint) is
    checked and used in place: ``{"path": source}``. ``"synthetic"`` builds the demo's
    word-piece tokenizer and a tiny ``MBartForConditionalGeneration`` from ``entry["settings"]``
    (``d_model``, ``encoder_layers``, ``decoder_layers``, ``attention_heads``, ``ffn_dim``,
    ``world_seed`` …), pre-trains it with span-masking denoising on every language, and saves
    it (safetensors + tokenizer) in ``out_dir``."""
    arch = entry.get("arch", "mbart")
    if arch != "mbart":
        raise ValueError(f"model {model_name!r}: arch {arch!r} is not supported by the translation "
                         "family (use arch: mbart)")
    settings = dict(entry.get("settings") or {})
    out_dir = Path(out_dir)
    if str(source) != "synthetic":
        return _check_local_mbart(model_name, Path(source), out_dir)
    from transformers import MBartConfig, MBartForConditionalGeneration

    from .translation_synthetic import WORLD_LANGUAGES, build_tokenizer, build_world, pretrain_denoising

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    world = build_world(settings)
    codes = _lang_tokens(settings)
    tokenizer = build_tokenizer(world, [codes[c] for c in WORLD_LANGUAGES])
    heads = int(settings.get("attention_heads", 4))
    ffn = int(settings.get("ffn_dim", 128))
    config = MBartConfig(
        vocab_size=len(tokenizer), d_model=int(settings.get("d_model", 64)),
        encoder_layers=int(settings.get("encoder_layers", 2)),
        decoder_layers=int(settings.get("decoder_layers", 2)),
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=int(settings.get("max_position_embeddings", 64)),
        dropout=float(settings.get("dropout", 0.1)), attention_dropout=0.0, activation_dropout=0.0,
        scale_embedding=True, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(int(settings.get("world_seed", 0)))
    model = MBartForConditionalGeneration(config)
    ids = {c: tokenizer.convert_tokens_to_ids(codes[c]) for c in WORLD_LANGUAGES}
    summary = pretrain_denoising(model, world, tokenizer, ids, settings)
    model.save_pretrained(out_dir)  # safetensors (the only format transformers 5 writes)
    tokenizer.save_pretrained(out_dir)
    return {"path": str(out_dir), "arch": "mbart", "source": "synthetic", "model": model_name,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer), **summary,
            "seconds": round(time.perf_counter() - t0, 2)}


def _check_local_mbart(model_name: str, path: Path, out_dir: Path) -> dict[str, Any]:
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model {model_name!r}: {path}/config.json not found; pass a local "
                                "snapshot of facebook/mbart-large-cc25 (or another mBART checkpoint)")
    config = json.loads((path / "config.json").read_text())
    if config.get("model_type") != "mbart":
        raise ValueError(f"model {model_name!r}: {path}/config.json has model_type "
                         f"{config.get('model_type')!r}, expected 'mbart'")
    from transformers import MBartForConditionalGeneration

    from .hf_checkpoint import resolve_weights

    # safetensors are used in place; a snapshot with only pytorch_model.bin (the Hub's main
    # revision of mbart-large-cc25) is converted once, tensors only (never unpickling objects)
    use, conversion = resolve_weights(model_name, path, out_dir, MBartForConditionalGeneration)
    return {"path": str(use), "arch": "mbart", "source": str(path), "model": model_name,
            "vocab_size": config.get("vocab_size"), **conversion}


# --- the task -----------------------------------------------------------------------------------
class TranslationTask(Task):
    """Many-to-many fine-tuning of mBART through English, evaluated by sacreBLEU.

    Dataset settings used here: ``languages``, ``temperature`` (1.5), ``max_source_length`` /
    ``max_target_length`` (tokens), ``num_beams`` (5 paper, 1 demo), ``eval_batch_size``,
    ``epoch_size`` (sampled examples per epoch; default the number of training rows),
    ``selection_metric`` (``bleu`` or the cheaper ``neg_loss``, returned by
    ``evaluate("validation")``). Training settings: ``batch_size``, ``label_smoothing`` (0.2).
    Model settings: ``lang_tokens``, ``dropout``, ``attention_dropout`` overrides.
    """

    family = "translation"
    primary_metric = "bleu"
    higher_is_better = True

    def __init__(self, dataset, settings, data_dir, pretrained_dir, seed, device="cpu"):
        super().__init__(dataset, settings, data_dir, pretrained_dir, seed, device)
        from transformers import AutoTokenizer

        s = settings
        self.model_entry = dict(s.get("model") or {})
        self.model_settings = dict(self.model_entry.get("settings") or {})
        self.training = dict(s.get("training") or {})
        self.languages = check_languages(s.get("languages"))
        self.temperature = float(s.get("temperature", 1.5))
        self.max_source_length = int(s.get("max_source_length", 256))
        self.max_target_length = int(s.get("max_target_length", 256))
        self.num_beams = int(s.get("num_beams", 5))
        self.eval_batch_size = int(s.get("eval_batch_size", 32))
        self.batch_size = int(self.training.get("batch_size", 16))
        self.label_smoothing = float(self.training.get("label_smoothing", s.get("label_smoothing", 0.2)))
        self.selection_metric = str(s.get("selection_metric", "bleu"))
        if self.selection_metric not in ("bleu", "neg_loss"):
            raise ValueError(f"selection_metric={self.selection_metric!r} in the dataset settings "
                             "(known: bleu, neg_loss)")
        self.model_path = pretrained_path(self.pretrained_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        self.pad_id = self.tokenizer.pad_token_id
        self.eos_id = self.tokenizer.eos_token_id
        codes = _lang_tokens(self.model_settings)
        self.lang_ids: dict[str, int] = {}
        for lang in [PIVOT] + LANGUAGES:
            tok = codes.get(lang)
            tid = self.tokenizer.convert_tokens_to_ids(tok) if tok else None
            if tid is None or tid == self.tokenizer.unk_token_id:
                raise ValueError(f"language token {tok!r} for {lang!r} is not in the tokenizer of "
                                 f"{self.model_path}; set model settings.lang_tokens.{lang}")
            self.lang_ids[lang] = tid
        self._rows: dict[str, list[dict]] = {}
        self._encoded: dict[str, list[tuple[list[int], list[int], str, str]]] = {}
        self.last_signatures: dict[str, str] = {}
        # Training text is kept as compact tuples and tokenized batch by batch: the real
        # 10-to-10 set has ~17M directional rows, too many to hold as token lists.
        train = self._read_train_text()
        if self.model_entry.get("source") == "synthetic":
            self._check_synthetic_vocabulary(train)
        self._train_text = train
        self._by_direction: dict[tuple[str, str], list[int]] = {}
        for i, (_, _, src, tgt) in enumerate(train):
            self._by_direction.setdefault((src, tgt), []).append(i)
        if not train:
            raise ValueError(f"{self.data_dir}/train.jsonl is empty; rerun prepare for {dataset!r}")
        self.epoch_size = int(s.get("epoch_size") or len(train))

    # --- data ---------------------------------------------------------------------------------
    def rows(self, split: str) -> list[dict]:
        """The rows of ``split`` (read once)."""
        if split not in self._rows:
            path = self.data_dir / f"{split}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found; run `python -m smcbench prepare "
                                        f"{self.dataset}` first")
            rows = read_jsonl(path)
            for n, row in enumerate(rows, 1):
                missing = {"id", "src_lang", "tgt_lang", "source", "target"} - set(row)
                if missing:
                    raise ValueError(f"{path}:{n}: row lacks {sorted(missing)} (translation row schema)")
                for key in ("src_lang", "tgt_lang"):
                    if row[key] not in self.lang_ids:
                        raise ValueError(f"{path}:{n}: {key}={row[key]!r} has no language token "
                                         f"(known: {sorted(self.lang_ids)})")
            self._rows[split] = rows
        return self._rows[split]

    def _check_synthetic_vocabulary(self, train: list[tuple[str, str, str, str]]) -> None:
        # the demo tokenizer knows every word of its world: an <unk> means the dataset and the
        # model were built from different worlds (checked on the distinct words: cheap)
        words = sorted({w for s, t, _, _ in train for w in s.split() + t.split()})
        unk = self.tokenizer.unk_token_id
        ids = self.tokenizer(words, add_special_tokens=False).input_ids if words else []
        bad = [w for w, i in zip(words, ids) if unk in i]
        if bad:
            raise ValueError(f"{self.data_dir}/train.jsonl has words the synthetic tokenizer does not know "
                             f"({bad[:5]}): the dataset's and the model's settings.world_seed (and lexicon "
                             "sizes, word_orders, cognate_fraction) must be equal")

    def _read_train_text(self) -> list[tuple[str, str, str, str]]:
        """(source, target, src_lang, tgt_lang) of every training row, streamed from the file
        (no list of row dicts: the real 10-to-10 file has ~17M rows)."""
        path = self.data_dir / "train.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run `python -m smcbench prepare {self.dataset}` first")
        out = []
        for n, r in iter_jsonl(path):
            try:
                item = (r["source"], r["target"], r["src_lang"], r["tgt_lang"])
            except KeyError:
                raise ValueError(f"{path}:{n}: row lacks source/target/src_lang/tgt_lang "
                                 "(translation row schema)") from None
            if item[2] not in self.lang_ids or item[3] not in self.lang_ids:
                raise ValueError(f"{path}:{n}: language pair {item[2]!r}->{item[3]!r} has no language "
                                 f"token (known: {sorted(self.lang_ids)})")
            out.append(item)
        return out

    def _encode(self, split: str):
        if split not in self._encoded:
            rows = self.rows(split)
            tok = self.tokenizer
            src = tok([r["source"] for r in rows], add_special_tokens=False).input_ids if rows else []
            tgt = tok([r["target"] for r in rows], add_special_tokens=False).input_ids if rows else []
            if self.model_entry.get("source") == "synthetic" and rows:
                # the demo tokenizer has every word of its world: an <unk> means the dataset
                # and the model were built from different worlds
                unk = tok.unk_token_id
                bad = next((r for r, s, t in zip(rows, src, tgt) if unk in s or unk in t), None)
                if bad is not None:
                    raise ValueError(f"{self.data_dir}/{split}.jsonl row {bad['id']!r} has words the "
                                     "synthetic tokenizer does not know: the dataset's and the model's "
                                     "settings.world_seed (and lexicon sizes) must be equal")
            self._encoded[split] = [(s, t, r["src_lang"], r["tgt_lang"])
                                    for s, t, r in zip(src, tgt, rows)]
        return self._encoded[split]

    def collate(self, items) -> dict[str, torch.Tensor]:
        """Tang et al. format: source ``[src] X </s>``, decoder input ``[tgt] Y``, labels
        ``Y </s>`` (truncated to the maximum lengths), padded, on the device."""
        src, dec, lab = [], [], []
        for s, t, sl, tl in items:
            src.append([self.lang_ids[sl]] + s[: self.max_source_length - 2] + [self.eos_id])
            t = t[: self.max_target_length - 1]
            dec.append([self.lang_ids[tl]] + t)
            lab.append(t + [self.eos_id])
        x = _pad(src, self.pad_id)
        return {"input_ids": x.to(self.device), "attention_mask": (x != self.pad_id).long().to(self.device),
                "decoder_input_ids": _pad(dec, self.pad_id).to(self.device),
                "labels": _pad(lab, -100).to(self.device)}

    def direction_probs(self) -> dict[tuple[str, str], float]:
        """Temperature-sampling probability of every training direction."""
        sizes = {d: len(ix) for d, ix in sorted(self._by_direction.items())}
        return temperature_probs(sizes, self.temperature)

    def sample_epoch(self, epoch: int) -> list[int]:
        """Indices of the training rows of ``epoch``: a direction per slot by temperature
        sampling, then that direction's rows in a seeded random order (cycled if needed)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        probs = self.direction_probs()
        dirs = list(probs)
        picks = torch.multinomial(torch.tensor([probs[d] for d in dirs], dtype=torch.float64),
                                  self.epoch_size, replacement=True, generator=g).tolist()
        orders = {d: [self._by_direction[d][j] for j in
                      torch.randperm(len(self._by_direction[d]), generator=g).tolist()] for d in dirs}
        cursor = {d: 0 for d in dirs}
        out = []
        for k in picks:
            d = dirs[k]
            out.append(orders[d][cursor[d] % len(orders[d])])
            cursor[d] += 1
        return out

    def steps_per_epoch(self) -> int:
        return math.ceil(self.epoch_size / self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        order = self.sample_epoch(epoch)
        cached = self._encoded.get("train")
        for i in range(0, len(order), self.batch_size):
            idx = order[i: i + self.batch_size]
            if cached is not None:
                items = [cached[j] for j in idx]
            else:
                rows = [self._train_text[j] for j in idx]
                src = self.tokenizer([r[0] for r in rows], add_special_tokens=False).input_ids
                tgt = self.tokenizer([r[1] for r in rows], add_special_tokens=False).input_ids
                items = [(a, b, r[2], r[3]) for a, b, r in zip(src, tgt, rows)]
            yield self.collate(items)

    # --- model --------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The pre-trained mBART (no new heads: the output layer is the tied embedding), with
        the model settings' dropout overrides; deterministic (no random init)."""
        from transformers import MBartForConditionalGeneration

        overrides = {k: float(self.model_settings[k]) for k in ("dropout", "attention_dropout")
                     if k in self.model_settings}
        torch.manual_seed(self.seed)
        model = MBartForConditionalGeneration.from_pretrained(str(self.model_path), use_safetensors=True,
                                                              **overrides)
        if len(self.tokenizer) > model.config.vocab_size:
            raise ValueError(f"tokenizer of {self.model_path} has {len(self.tokenizer)} tokens but the "
                             f"model only {model.config.vocab_size} embeddings")
        return model.to(self.device)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Label-smoothed token cross-entropy (mean over target tokens)."""
        return self._token_loss(model, batch, self.label_smoothing)

    @staticmethod
    def _token_loss(model, batch, smoothing: float) -> torch.Tensor:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=batch["decoder_input_ids"]).logits
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(),
                               ignore_index=-100, label_smoothing=smoothing)

    # --- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, model: torch.nn.Module, split: str) -> list[str]:
        """Hypotheses for every row of ``split`` (beam ``num_beams``; 1 = greedy), in row order.
        Batches are sorted by source length so padding stays small."""
        from transformers import GenerationConfig

        items = self._encode(split)
        order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
        hyps: list[str] = [""] * len(items)
        # a fresh generation config: a checkpoint's own (forced_bos_token_id, max_length …) must
        # not override the language-token protocol used in training
        base = dict(num_beams=self.num_beams, do_sample=False, eos_token_id=self.eos_id,
                    pad_token_id=self.pad_id, decoder_start_token_id=self.eos_id)
        if self.num_beams > 1:
            base["early_stopping"] = True
        was_training = model.training
        model.eval()
        for start in range(0, len(order), self.eval_batch_size):
            chunk = order[start: start + self.eval_batch_size]
            batch = self.collate([items[i] for i in chunk])
            src_len = int(batch["attention_mask"].sum(1).max())
            gen = GenerationConfig(max_new_tokens=min(self.max_target_length, int(1.5 * src_len) + 5), **base)
            start_tokens = batch["decoder_input_ids"][:, :1]
            out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 decoder_input_ids=start_tokens, generation_config=gen)
            texts = self.tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True,
                                                clean_up_tokenization_spaces=False)
            for i, text in zip(chunk, texts):
                hyps[i] = text.strip()
        model.train(was_training)
        return hyps

    @torch.no_grad()
    def validation_nll(self, model: torch.nn.Module, split: str = "validation") -> float:
        """Mean token negative log-likelihood (no label smoothing) on ``split``."""
        items = self._encode(split)
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        for start in range(0, len(items), self.eval_batch_size):
            batch = self.collate(items[start: start + self.eval_batch_size])
            n = int((batch["labels"] != -100).sum())
            total += float(self._token_loss(model, batch, 0.0)) * n
            count += n
        model.train(was_training)
        return total / max(1, count)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str) -> dict[str, float]:
        """BLEU per direction and their mean (``bleu``); on ``validation`` with
        ``selection_metric: neg_loss``, only ``neg_loss`` (= −mean token NLL) and ``nll``. The key
        that model selection maximizes is ``self.selection_metric``; ``n`` = number of sentences."""
        if split == "validation" and self.selection_metric == "neg_loss":
            nll = self.validation_nll(model, split)
            return {"neg_loss": -nll, "nll": nll, "n": len(self.rows(split))}
        rows = self.rows(split)
        scores, signatures = bleu_by_direction(rows, self.translate(model, split))
        self.last_signatures = signatures
        return {**self._with_group_means(scores), "n": len(rows)}

    def _with_group_means(self, scores: dict[str, float]) -> dict[str, float]:
        # mean over the fine-tuned directions and over the rest (zero-shot for the model)
        sup = [v for k, v in scores.items() if k.startswith("bleu_")
               and any(lang in self.languages for lang in k[5:].split("-") if lang != PIVOT)]
        rest = [v for k, v in scores.items() if k.startswith("bleu_")
                and not any(lang in self.languages for lang in k[5:].split("-") if lang != PIVOT)]
        if sup and rest:
            scores["bleu_finetuned_directions"] = sum(sup) / len(sup)
            scores["bleu_other_directions"] = sum(rest) / len(rest)
        return scores

    def baseline(self, split: str) -> dict[str, float]:
        """Copy-the-source BLEU per direction and its mean."""
        rows = self.rows(split)
        scores, _ = bleu_by_direction(rows, [r["source"] for r in rows])
        return {**self._with_group_means(scores), "n": len(rows)}

    def signature(self) -> str:
        """How BLEU was computed: sacreBLEU signature per tokenizer, decoding, selection rule."""
        sigs = {}
        for lang in [PIVOT] + LANGUAGES:
            sigs.setdefault(str(_bleu_metric(bleu_tokenizer(lang)).get_signature()), []).append(lang)
        parts = [f"{'+'.join(langs)}:{sig}" for sig, langs in sigs.items()]
        decode = "greedy" if self.num_beams == 1 else f"beam{self.num_beams}"
        return (f"bleu=mean over directions|sacrebleu per target: {' ; '.join(parts)}"
                f"|decode:{decode}|langtok:tang2020|selection:{self.selection_metric}@validation|"
                + package_versions("sacrebleu", "transformers", "tokenizers", "torch"))


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


TASK = TranslationTask
