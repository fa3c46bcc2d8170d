"""Commonsense family: the Task (multiple choice or masked-LM scoring with RoBERTa)."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from typing import Iterator

import torch
import torch.nn.functional as F

from ...io import read_jsonl
from ..base import Task, package_versions, pretrained_path
from . import _DEFAULT_INPUT, ARCHS, INPUT_FORMATS
from .model import (_pad, _quiet_transformers, encode_csqa, encode_race, encode_winogrande_mc,
                    encode_winogrande_mlm)

#: demo heuristics that read the passage's surface only (``synthetic.heuristics``)
SURFACE_HEURISTICS = ("in_passage", "first", "last", "asked_type")

# ================================================================================================
# the Task
# ================================================================================================

class CommonsenseTask(Task):
    """Multiple-choice commonsense reasoning with RoBERTa (see the module docstring)."""

    family = "commonsense"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, dataset, settings, data_dir, pretrained_dir, seed, device="cpu"):
        super().__init__(dataset, settings, data_dir, pretrained_dir, seed, device)
        self._rows: dict[str, list[dict]] = {}  # first: guessing the input format reads rows
        self._encoded: dict[str, dict[str, torch.Tensor]] = {}
        model_entry = settings.get("model") or {}
        self.arch = model_entry.get("arch", "roberta_mc")
        if self.arch not in ARCHS:
            raise ValueError(f"model arch {self.arch!r} is unknown for the commonsense family "
                             f"(known: {', '.join(ARCHS)})")
        fmt = settings.get("input_format") or _DEFAULT_INPUT.get(dataset)
        if fmt is None:
            fmt = self._guess_format()
        if fmt not in INPUT_FORMATS:
            raise ValueError(f"dataset {dataset!r}: input_format {fmt!r} is unknown "
                             f"(known: {', '.join(INPUT_FORMATS)})")
        if self.arch == "roberta_mlm" and fmt != "winogrande":
            raise ValueError(f"dataset {dataset!r}: arch 'roberta_mlm' (masked-LM scoring) needs "
                             "WinoGrande-style rows; use arch 'roberta_mc' for this dataset")
        self.input_format = fmt
        self.mlm = self.arch == "roberta_mlm"
        self.max_length = int(settings.get("max_length", 128))
        self.option_max_tokens = int(settings.get("option_max_tokens", 128))
        self.margin_alpha = float(settings.get("margin_alpha", 5.0))
        self.margin_beta = float(settings.get("margin_beta", 0.4))
        training = settings.get("training") or {}
        self.batch_size = int(training.get("batch_size", 16))
        self.eval_batch_size = int(settings.get("eval_batch_size", 64))
        self._check_world()
        self._tokenizer = None
        self._template = None        # the loaded pre-trained model, copied by build_model
        self._head_names: list[str] = []

    # --- setup helpers -------------------------------------------------------------------------
    def _guess_format(self) -> str:
        rows = self.rows("train")
        if rows and "sentence" in rows[0] and "option1" in rows[0]:
            return "winogrande"
        if rows and "article" in rows[0]:
            return "race"
        return "csqa"

    def _check_world(self) -> None:
        """The demo's datasets and model must come from the same synthetic world."""
        info_file = self.pretrained_dir / "pretrained.json"
        meta_file = self.data_dir / "meta.json"
        if not (info_file.is_file() and meta_file.is_file()):
            return
        world_model = json.loads(info_file.read_text()).get("world")
        world_data = json.loads(meta_file.read_text()).get("world")
        if world_model and world_data and world_model != world_data:
            raise ValueError(f"dataset {self.dataset!r} was generated from world {world_data} but "
                             f"the model was pre-trained on world {world_model}: set the same "
                             "world_seed / n_people in the dataset's and the model's settings")

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            _quiet_transformers()
            self._tokenizer = AutoTokenizer.from_pretrained(str(pretrained_path(self.pretrained_dir)))
        return self._tokenizer

    def rows(self, split: str) -> list[dict]:
        """The prepared rows of ``split`` (read once)."""
        if split not in self._rows:
            path = self.data_dir / f"{split}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found (splits here: "
                                        f"{sorted(p.stem for p in self.data_dir.glob('*.jsonl'))})")
            self._rows[split] = read_jsonl(path)
        return self._rows[split]

    def encoded(self, split: str) -> dict[str, torch.Tensor]:
        """Token ids of ``split`` as padded tensors (N, C, L), built once per Task."""
        if split in self._encoded:
            return self._encoded[split]
        rows = self.rows(split)
        if not rows:
            raise ValueError(f"{self.data_dir / (split + '.jsonl')} has no rows")
        n_choices = {len(r["choices"]) for r in rows}
        if len(n_choices) != 1:
            raise ValueError(f"{self.data_dir / (split + '.jsonl')}: rows have different numbers "
                             f"of choices {sorted(n_choices)}; one dataset needs one number")
        if self.mlm:
            pairs = encode_winogrande_mlm(self.tokenizer, rows, self.max_length)
            seqs = [[ids for ids, _ in r] for r in pairs]
            spans = [[sp for _, sp in r] for r in pairs]
        elif self.input_format == "csqa":
            seqs = encode_csqa(self.tokenizer, rows, self.max_length)
        elif self.input_format == "race":
            seqs = encode_race(self.tokenizer, rows, self.max_length, self.option_max_tokens)
        else:
            seqs = encode_winogrande_mc(self.tokenizer, rows, self.max_length)
        flat = [s for r in seqs for s in r]
        ids, attn = _pad(flat, self.tokenizer.pad_token_id)
        n, c = len(rows), n_choices.pop()
        out = {"input_ids": ids.view(n, c, -1), "attention_mask": attn.view(n, c, -1),
               "labels": torch.tensor([r["label"] for r in rows], dtype=torch.long)}
        if self.mlm:
            sp, _ = _pad([s for r in spans for s in r], 0)
            out["span"] = sp.view(n, c, -1).bool()
        self._encoded[split] = out
        return out

    # --- model -----------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The pre-trained RoBERTa with its head; heads missing from the checkpoint (pooler and
        classifier for ``roberta_mc``) are drawn from ``self.seed``, so repeated calls return
        bitwise-identical models. The checkpoint is read once and copied afterwards."""
        from transformers import RobertaForMaskedLM, RobertaForMultipleChoice

        if self._template is None:
            _quiet_transformers()
            cls = RobertaForMaskedLM if self.mlm else RobertaForMultipleChoice
            path = pretrained_path(self.pretrained_dir)
            model, info = cls.from_pretrained(str(path), output_loading_info=True)
            self._head_names = sorted(info.get("missing_keys") or [])
            self._template = model
        model = copy.deepcopy(self._template)
        g = torch.Generator().manual_seed(int(self.seed))
        params = dict(model.named_parameters())
        std = getattr(model.config, "initializer_range", 0.02)
        with torch.no_grad():
            for name in self._head_names:  # sorted: a fixed draw order
                p = params.get(name)
                if p is None:
                    continue
                if p.ndim >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
                elif name.endswith("bias"):
                    p.zero_()
                else:  # norm weights
                    p.fill_(1.0)
        return model.to(self.device)

    def param_groups(self, model: torch.nn.Module, lr: float, weight_decay: float) -> list[dict]:
        """As the base class, but the freshly initialized head (the parameters missing from the
        checkpoint) may train at ``settings.head_lr_multiplier`` times ``lr`` (default 1: the
        paper's single learning rate)."""
        mult = float(self.settings.get("head_lr_multiplier", 1.0))
        if mult == 1.0 or not self._head_names:
            return super().param_groups(model, lr, weight_decay)
        heads = set(self._head_names)
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                no_decay = p.ndim < 2 or "norm" in name.lower()
                groups.setdefault((name in heads, no_decay), []).append(p)
        return [{"params": ps, "lr": lr * (mult if head else 1.0),
                 "weight_decay": 0.0 if no_decay else weight_decay}
                for (head, no_decay), ps in sorted(groups.items())]

    # --- data ------------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.rows("train")) / self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffled batches of ``batch_size`` questions (the last may be smaller), seeded by
        (seed, epoch), padding trimmed per batch."""
        data = self.encoded("train")
        n = data["labels"].shape[0]
        g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(epoch))
        order = torch.randperm(n, generator=g)
        for start in range(0, n, self.batch_size):
            yield self._batch(data, order[start:start + self.batch_size])

    def _batch(self, data: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        attn = data["attention_mask"][idx]
        width = int(attn.sum(-1).max())
        out = {k: (v[idx][..., :width] if v.ndim == 3 else v[idx]) for k, v in data.items()}
        return {k: v.to(self.device) for k, v in out.items()}

    def _scores(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, C) scores of the choices: multiple-choice logits or mean masked-LM log-probs."""
        ids, attn = batch["input_ids"], batch["attention_mask"]
        b, c, length = ids.shape
        if not self.mlm:
            return model(input_ids=ids, attention_mask=attn).logits
        ids, attn, span = ids.view(-1, length), attn.view(-1, length), batch["span"].view(-1, length)
        masked = ids.masked_fill(span, self.tokenizer.mask_token_id)
        hidden = model.roberta(input_ids=masked, attention_mask=attn).last_hidden_state
        # project only the masked positions through the LM head (the vocabulary is large)
        lprobs = F.log_softmax(model.lm_head(hidden[span]).float(), dim=-1)
        token_lp = lprobs.gather(1, ids[span].unsqueeze(1)).squeeze(1)
        seq = span.nonzero()[:, 0]
        total = torch.zeros(b * c, dtype=token_lp.dtype, device=ids.device).index_add_(0, seq, token_lp)
        return (total / span.sum(1).clamp(min=1)).view(b, c)

    def logits(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, C) choice scores of ``batch`` (what distillation from a dense teacher matches)."""
        return self._scores(model, batch)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over choices; WinoGrande-MLM: fairseq's margin ranking loss."""
        scores = self._scores(model, batch)
        labels = batch["labels"]
        if not self.mlm:
            return F.cross_entropy(scores, labels)
        return winogrande_margin_loss(scores, labels, self.margin_alpha, self.margin_beta)

    # --- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: torch.nn.Module, split: str) -> torch.Tensor:
        """Predicted choice per row of ``split`` (ties go to the first choice, as in fairseq)."""
        data = self.encoded(split)
        was_training = model.training
        model.eval()
        preds = []
        try:
            n = data["labels"].shape[0]
            # sort by length so big evaluation batches carry little padding
            lengths = data["attention_mask"].sum(-1).max(-1).values
            order = torch.argsort(lengths, stable=True)
            for start in range(0, n, self.eval_batch_size):
                idx = order[start:start + self.eval_batch_size]
                preds.append((idx, self._scores(model, self._batch(data, idx)).argmax(-1).cpu()))
        finally:
            model.train(was_training)
        out = torch.empty(data["labels"].shape[0], dtype=torch.long)
        for idx, p in preds:
            out[idx] = p
        return out

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str) -> dict[str, float]:
        """``{"accuracy": %, "n": number of questions}`` on ``split``; the accuracy is computed
        from the counts in Python floats (92 of 100 is exactly 92.0)."""
        pred = self.predict(model, split)
        labels = self.encoded(split)["labels"]
        correct, n = int((pred == labels).sum()), int(labels.numel())
        return {"accuracy": 100.0 * correct / n, "n": n}

    def baseline(self, split: str) -> dict[str, float]:
        """The strongest trivial predictor on ``split``, in %: max(chance, train's most frequent
        label) and, on the demo's rows, the surface readers of ``SURFACE_HEURISTICS`` (a random
        choice among those the passage mentions, the first / last one mentioned)."""
        rows = self.rows(split)
        chance = 100.0 * sum(1.0 / len(r["choices"]) for r in rows) / len(rows)
        majority_label = Counter(r["label"] for r in self.rows("train")).most_common(1)[0][0]
        majority = 100.0 * sum(r["label"] == majority_label for r in rows) / len(rows)
        best = max(chance, majority)
        if rows and all("passage" in r and "subject" in r for r in rows):
            # the demo: the strongest reader that does not compute the answer (see
            # synthetic.heuristics; "subject_sentence" is the one-hop computation itself)
            from .synthetic import heuristics

            names = SURFACE_HEURISTICS + (("typed_in_passage",) if self._variant() == "hard" else ())
            for name in names:
                best = max(best, 100.0 * sum(heuristics(r).get(name, 0.0) for r in rows) / len(rows))
        return {"accuracy": best, "n": len(rows)}

    def _variant(self) -> str | None:
        """The demo variant recorded in meta.json (None for real datasets)."""
        meta = self.data_dir / "meta.json"
        return json.loads(meta.read_text()).get("variant") if meta.is_file() else None

    def signature(self) -> str:
        layout = {"csqa": "fairseq-mc", "race": "fairseq-race", "winogrande": "mc-blank"}
        inp = "fairseq-wsc-mlm" if self.mlm else layout[self.input_format]
        return (f"accuracy=100*correct/n|selection:validation|input:{inp}|arch:{self.arch}|"
                + package_versions("transformers", "tokenizers", "torch"))


def winogrande_margin_loss(scores: torch.Tensor, labels: torch.Tensor, alpha: float,
                           beta: float) -> torch.Tensor:
    """fairseq's WinoGrande loss on (B, 2) option scores, averaged over the batch:
    ``-lp_q + alpha * max(0, lp_c - lp_q + beta)`` with q the correct option, c the other."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    lp_q, lp_c = scores[rows, labels], scores[rows, 1 - labels]
    return (-lp_q + alpha * (lp_c - lp_q + beta).clamp(min=0)).mean()


TASK = CommonsenseTask

