"""Translation family: the Task (many-to-many mBART through English) and sacreBLEU scoring."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterator

import torch
import torch.nn.functional as F

from ...io import iter_jsonl, read_jsonl
from ..base import Task, package_versions, pretrained_path
from . import BLEU_TOKENIZERS, LANGUAGES, PIVOT
from .directions import check_languages, temperature_probs
from .model import _lang_tokens

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

    # training sets up to this many rows are tokenized once per task (the demo's 800-2,000 rows:
    # ~0.1 CPU s a run saved); larger ones (real OPUS-100) batch by batch
    PRE_ENCODE_MAX_ROWS = 200_000

    def _encoded_train(self):
        """Every training row as (source ids, target ids, src, tgt), tokenized once; None when the
        training set is over ``PRE_ENCODE_MAX_ROWS`` rows. Same ids as tokenizing batch by batch
        (the tokenizer encodes each sentence independently)."""
        if "train" not in self._encoded and len(self._train_text) <= self.PRE_ENCODE_MAX_ROWS:
            rows = self._train_text
            src = self.tokenizer([r[0] for r in rows], add_special_tokens=False).input_ids
            tgt = self.tokenizer([r[1] for r in rows], add_special_tokens=False).input_ids
            self._encoded["train"] = [(a, b, r[2], r[3]) for a, b, r in zip(src, tgt, rows)]
        return self._encoded.get("train")

    def train_batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        order = self.sample_epoch(epoch)
        cached = self._encoded_train()
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

