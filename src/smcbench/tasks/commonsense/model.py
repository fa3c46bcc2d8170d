"""Commonsense family, model side: the pre-trained RoBERTa (a Hub snapshot or the demo's tiny
model, pre-trained here on the synthetic world) and the token ids of every input format, built
by hand as fairseq built them."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..pretrain import PretrainSettings, mlm_mask, pad_with_mask, pretrain
from . import ARCHS
from . import synthetic as synth

# ================================================================================================
# pretrained models
# ================================================================================================

def make_pretrained(model_name: str, entry: dict, source: str, out_dir: str | Path) -> dict:
    """Materialize the pre-trained model: a Hub snapshot / local folder is used as is; for
    ``"synthetic"`` a word-level tokenizer and a tiny RoBERTa are built and pre-trained with MLM on
    the demo world's facts, then saved (safetensors) in ``out_dir``."""
    arch = entry.get("arch", "roberta_mc")
    if arch not in ARCHS:
        raise ValueError(f"model {model_name!r}: arch {arch!r} is unknown (known: {', '.join(ARCHS)})")
    if source != "synthetic":
        from transformers import RobertaForMaskedLM

        from ..hf_checkpoint import resolve_weights

        path = Path(source)
        if not (path / "config.json").is_file():
            raise ValueError(f"model {model_name!r}: {path} has no config.json; expected a Hugging "
                             "Face model folder (e.g. a snapshot of FacebookAI/roberta-large)")
        # safetensors in place; pytorch_model.bin only: converted once, tensors only
        use, conversion = resolve_weights(model_name, path, Path(out_dir), RobertaForMaskedLM)
        return {"path": str(use), "arch": arch, "source": source, **conversion}
    return _pretrain_synthetic(model_name, entry, Path(out_dir))


def build_word_tokenizer(words: list[str]):
    """A word-level fast tokenizer with RoBERTa's special ids (<s>=0, <pad>=1, </s>=2, <unk>=3,
    <mask>=4), lower-casing, whitespace/punctuation pre-tokenization."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {w: i for i, w in enumerate(specials)}
    for w in words:
        vocab.setdefault(w.lower(), len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   cls_token="<s>", sep_token="</s>")


def _quiet_transformers():
    """Silence transformers' load reports and progress bars (they flood every job's log)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _pretrain_synthetic(model_name: str, entry: dict, out_dir: Path) -> dict:
    from transformers import RobertaConfig, RobertaForMaskedLM

    _quiet_transformers()
    s = dict(entry.get("settings") or {})
    t0 = time.perf_counter()
    world = synth.make_world(int(s.get("world_seed", 0)), int(s.get("n_people", 60)))
    tokenizer = build_word_tokenizer(world.vocabulary())
    seed = int(s.get("pretrain_seed", 0))
    lines = synth.pretraining_corpus(world, int(s.get("corpus_lines", 1000)), seed,
                                     float(s.get("qa_fraction", 0.0)))
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=int(s.get("hidden_size", 64)),
        num_hidden_layers=int(s.get("num_hidden_layers", 2)),
        num_attention_heads=int(s.get("num_attention_heads", 4)),
        intermediate_size=int(s.get("intermediate_size", 128)),
        max_position_embeddings=int(s.get("max_position_embeddings", 130)), type_vocab_size=1,
        hidden_dropout_prob=float(s.get("hidden_dropout_prob", 0.0)),
        attention_probs_dropout_prob=float(s.get("attention_probs_dropout_prob", 0.0)),
        pad_token_id=1, bos_token_id=0, eos_token_id=2)
    bs, mc_bs = int(s.get("pretrain_batch_size", 8)), int(s.get("reading_batch_size", 12))
    mask_prob = float(s.get("mask_prob", 0.15))
    max_len = config.max_position_embeddings - 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RobertaForMaskedLM(config)
        # The auxiliary one-hop reading head (see docs/commonsense.md): scores <s> of each
        # "<s> Q: passage question </s> A: choice </s>"; it is discarded after pre-training, so
        # fine-tuning starts from a fresh seeded head like the real recipe.
        reading_head = torch.nn.Sequential(torch.nn.Linear(config.hidden_size, config.hidden_size),
                                           torch.nn.Tanh(), torch.nn.Linear(config.hidden_size, 1))
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    data, attn = _pad([[0] + x[: max_len - 2] + [2] for x in ids])
    reading = synth.make_split(world, "easy", int(s.get("reading_questions", 1000)), world.people,
                               seed + 99, "pre")
    mc = encode_csqa(tokenizer, reading, max_len)
    mc_ids, mc_attn = _pad([x for r in mc for x in r])
    n_choices = len(reading[0]["choices"])
    mc_ids, mc_attn = mc_ids.view(len(reading), n_choices, -1), mc_attn.view(len(reading), n_choices, -1)
    mc_labels = torch.tensor([r["label"] for r in reading])
    reading_acc: list[float] = []

    def step_loss(step: int, g: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(data), (bs,), generator=g)
        x, a = _trim(data[idx], attn[idx])
        inputs, labels = mlm_mask(x, a, len(tokenizer), g, mask_prob)
        loss = model(input_ids=inputs, attention_mask=a, labels=labels).loss
        if mc_bs > 0:
            j = torch.randint(0, len(reading), (mc_bs,), generator=g)
            x, a = _trim(mc_ids[j].view(mc_bs * n_choices, -1), mc_attn[j].view(mc_bs * n_choices, -1))
            cls = model.roberta(input_ids=x, attention_mask=a).last_hidden_state[:, 0]
            logits = reading_head(cls).view(mc_bs, n_choices)
            loss = loss + F.cross_entropy(logits, mc_labels[j])
            reading_acc.append((logits.argmax(-1) == mc_labels[j]).float().mean().item())
        return loss

    model.train()
    summary = pretrain(list(model.parameters()) + list(reading_head.parameters()), step_loss,
                       PretrainSettings(steps=int(s.get("pretrain_steps", 500)),
                                        lr=float(s.get("pretrain_lr", 4e-3)), seed=seed,
                                        threads=int(s.get("pretrain_threads", 1))))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"path": str(out_dir), "arch": entry.get("arch", "roberta_mc"), "source": "synthetic",
            "world": {"seed": world.seed, "n_people": len(world.people)},
            "vocab_size": len(tokenizer), "corpus_lines": len(lines),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "pretrain_steps": summary["pretrain_steps"], "mlm_loss_first": summary["loss_first"],
            "mlm_loss_last": summary["loss_last"],
            "reading_accuracy_last": (round(100 * sum(reading_acc[-20:]) / len(reading_acc[-20:]), 1)
                                      if reading_acc else None),
            "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": summary["cpu_seconds"]}


def _trim(ids: torch.Tensor, attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the all-padding columns at the right of a batch."""
    width = max(1, int(attn.sum(-1).max()))
    return ids[..., :width], attn[..., :width]


def _pad(seqs: list[list[int]], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), right-padded with ``pad_id`` (RoBERTa's <pad> = 1)."""
    return pad_with_mask(seqs, pad_id)


# ================================================================================================
# input construction (token ids built by hand, as fairseq did)
# ================================================================================================

def _tok(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text (no special tokens). Each distinct text is tokenized once: choices
    ("A: red") and RACE articles repeat across rows, and the tokenizer is deterministic, so the
    result is the same as tokenizing every text (each row gets its own list)."""
    if not texts:
        return []
    distinct = list(dict.fromkeys(texts))
    ids = dict(zip(distinct, tokenizer(distinct, add_special_tokens=False)["input_ids"]))
    return [list(ids[t]) for t in texts]


def encode_csqa(tokenizer, rows: list[dict], max_length: int) -> list[list[list[int]]]:
    """Per row, per choice: ``<s> Q: {question} </s> A: {choice} </s>``.

    When too long, the question is cut at its end so the answer always survives."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    qs = _tok(tokenizer, ["Q: " + r["question"] for r in rows])
    answers = _tok(tokenizer, ["A: " + c for r in rows for c in r["choices"]])
    out, k = [], 0
    for r, q in zip(rows, qs):
        seqs = []
        for _ in r["choices"]:
            a = answers[k]
            k += 1
            room = max(0, max_length - len(a) - 3)
            seqs.append(([bos] + q[:room] + [eos] + a + [eos])[:max_length])
        out.append(seqs)
    return out


def race_qa(question: str, option: str) -> str:
    """fairseq's preprocess_RACE: fill the ``_`` blank with the option, else append it."""
    return question.replace("_", option) if "_" in question else question + " " + option


def encode_race(tokenizer, rows: list[dict], max_length: int,
                option_max_tokens: int) -> list[list[list[int]]]:
    """Per row, per choice: ``<s> qa </s> </s> article </s>``; ``<s> qa </s>`` cut to
    ``option_max_tokens`` tokens, then the whole to ``max_length`` (cuts at the end)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    articles = _tok(tokenizer, [r["article"].replace("\n", " ") for r in rows])
    qas = _tok(tokenizer, [race_qa(r["question"], c) for r in rows for c in r["choices"]])
    out, k = [], 0
    for r, art in zip(rows, articles):
        seqs = []
        for _ in r["choices"]:
            option = ([bos] + qas[k] + [eos])[:option_max_tokens]
            k += 1
            seqs.append((option + [eos] + art + [eos])[:max_length])
        out.append(seqs)
    return out


def _blank_parts(sentence: str) -> tuple[str, str, str]:
    """(prefix, leading space, suffix) around the first ``_`` as fairseq's WinoGrande task cuts them."""
    i = sentence.index("_")
    before = sentence[:i]
    return before.rstrip(), (" " if before.endswith(" ") else ""), sentence[i + 1:]


def encode_winogrande_mlm(tokenizer, rows: list[dict], max_length: int):
    """Per row, per option: (ids, span) with ids = ``<s> prefix option suffix </s>`` and span the
    positions of the option's tokens (to be masked and scored)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    parts = [_blank_parts(r["sentence"]) for r in rows]
    pre = _tok(tokenizer, [p for p, _, _ in parts])
    suf = _tok(tokenizer, [s for _, _, s in parts])
    opts = _tok(tokenizer, [lead + c for (_, lead, _), r in zip(parts, rows) for c in r["choices"]])
    out, k = [], 0
    for r, p, s in zip(rows, pre, suf):
        seqs = []
        for _ in r["choices"]:
            o = opts[k]
            k += 1
            room = max_length - 2 - len(o)
            if room < 0:
                raise ValueError(f"record {r['id']!r}: option longer than max_length={max_length}")
            # keep the text around the blank: cut the prefix from the left, the suffix from the right
            n_pre = min(len(p), room // 2 if len(p) + len(s) > room else len(p))
            n_suf = min(len(s), room - n_pre)
            left = p[len(p) - n_pre:]
            ids = [bos] + left + o + s[:n_suf] + [eos]
            span = [0] * (1 + len(left)) + [1] * len(o) + [0] * (n_suf + 1)
            seqs.append((ids, span))
        out.append(seqs)
    return out


def encode_winogrande_mc(tokenizer, rows: list[dict], max_length: int):
    """Per row, per option: ``<s> left+option </s> </s> right </s>`` (blank filled, cut after it)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    lefts, rights = [], []
    for r in rows:
        i = r["sentence"].index("_")
        rights.append(r["sentence"][i + 1:].strip())
        for c in r["choices"]:
            lefts.append(r["sentence"][:i] + c)
    left_ids, right_ids = _tok(tokenizer, lefts), _tok(tokenizer, rights)
    out, k = [], 0
    for r, right in zip(rows, right_ids):
        seqs = []
        for _ in r["choices"]:
            seqs.append(([bos] + left_ids[k] + [eos, eos] + right + [eos])[:max_length])
            k += 1
        out.append(seqs)
    return out


