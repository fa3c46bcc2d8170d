"""Arithmetic models' ``make_pretrained`` (the RoBERTa embedder) and the task: math word problem →
prefix equation → value, with GTS or Graph2Tree (:mod:`.model`)."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import torch

from ..base import Task, package_versions, pretrained_path, read_jsonl
from .equations import (MASK_IN_TEXT_RE, OPERATORS, EquationError, check_prefix, evaluate_prefix, is_constant,
                        most_frequent_fitting, template_counts, values_match)

# =============================================================================================
# pre-trained embedder
# =============================================================================================
def build_word_tokenizer(words: list[str]):
    """A word-level RoBERTa-style tokenizer (``<s> … </s>``, pad id 1) over ``words``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {w: i for i, w in enumerate(specials + [w for w in words if w not in specials])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")


def make_pretrained(model_name: str, entry: dict, source: str | Path, out_dir: str | Path) -> dict:
    """The RoBERTa embedder. A local folder (Hub snapshot of ``FacebookAI/roberta-base`` or the
    user's copy) is used in place; ``"synthetic"`` builds a word-level tokenizer over the demo
    generator's vocabulary and a tiny ``RobertaForMaskedLM``, MLM-pre-trains it briefly on
    generated problems and saves both (safetensors) in ``out_dir``."""
    arch = entry.get("arch")
    if arch not in ("gts", "graph2tree"):
        raise ValueError(f"model {model_name!r}: unknown arithmetic arch {arch!r} (known: gts, graph2tree)")
    out_dir = Path(out_dir)
    if str(source) != "synthetic":
        src = Path(source)
        if not (src / "config.json").is_file():
            raise FileNotFoundError(f"model {model_name!r}: {src} has no config.json (expected a RoBERTa snapshot, "
                                    "e.g. of FacebookAI/roberta-base)")
        return {"path": str(src), "arch": arch, "embedder": "roberta", "kind": "local"}
    from transformers import RobertaConfig, RobertaForMaskedLM

    from .synthetic import generate, vocabulary

    s = dict(entry.get("settings", {}))
    t0 = time.time()
    seed = int(s.get("world_seed", 0))
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(vocabulary(int(s.get("max_numbers", 10))))
    max_len = int(s.get("max_length", 64))
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=int(s.get("embedding_size", 32)),
                           num_hidden_layers=int(s.get("num_hidden_layers", 1)),
                           num_attention_heads=int(s.get("num_attention_heads", 2)),
                           intermediate_size=int(s.get("intermediate_size", 64)),
                           max_position_embeddings=max_len + 2, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = RobertaForMaskedLM(config)
    steps = int(s.get("pretrain_steps", 0))
    summary: dict = {}
    if steps:
        from ..pretrain import PretrainSettings, mlm_mask, pretrain

        texts = [r["question"] for v in ("mawps", "asdiv") for r in generate(300, v, seed + 1000, "pt")]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        ids, att = enc["input_ids"], enc["attention_mask"]
        bs = int(s.get("pretrain_batch_size", 32))

        def step_loss(step: int, g: torch.Generator) -> torch.Tensor:
            idx = torch.randint(0, len(texts), (bs,), generator=g)
            # specials are ids 0-4 (<s> <pad> </s> <unk> <mask>), as mlm_mask assumes
            inputs, labels = mlm_mask(ids[idx], att[idx], len(tokenizer), g, 0.15, mask_id=tokenizer.mask_token_id)
            return model(input_ids=inputs, attention_mask=att[idx], labels=labels).loss

        model.train()
        summary = pretrain(model.parameters(), step_loss,
                           PretrainSettings(steps=steps, lr=float(s.get("pretrain_lr", 2e-3)), seed=seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"path": str(out_dir), "arch": arch, "embedder": "roberta (tiny, word-level tokenizer)",
            "kind": "synthetic", "pretrain_steps": steps,
            "mlm_loss_first": summary.get("loss_first"), "mlm_loss_last": summary.get("loss_last"),
            "num_parameters": sum(p.numel() for p in model.parameters()), "seconds": round(time.time() - t0, 2)}


# =============================================================================================
# the task
# =============================================================================================
def _first_token_at(offsets: list[tuple[int, int]], char: int) -> int | None:
    """Index of the first non-special token whose character span covers ``char``."""
    for i, (s, e) in enumerate(offsets):
        if e > s and s <= char < e:
            return i
    return None


class ArithmeticTask(Task):
    """GTS / Graph2Tree on one arithmetic dataset (one fold for CV datasets)."""

    family = "arithmetic"
    primary_metric = "value_accuracy"
    higher_is_better = True

    def __init__(self, dataset, settings, data_dir, pretrained_dir, seed, device="cpu"):
        super().__init__(dataset, settings, data_dir, pretrained_dir, seed, device)
        from transformers import AutoTokenizer

        model = settings.get("model", {})
        self.arch = model.get("arch", "gts")
        self.ms: dict = dict(model.get("settings", {}))
        self.training: dict = dict(settings.get("training", {}))
        # model settings may override the dataset's recipe: the paper trains GTS and Graph2Tree with
        # different learning rates (1e-3 / 8e-4) and Graph2Tree's scripts always use batch 8
        self.batch_size = int(self.ms.get("batch_size", self.training.get("batch_size", 8)))
        self.eval_batch_size = int(self.ms.get("eval_batch_size", 64))
        self.max_length = int(self.ms.get("max_length", 256))
        self.max_output_length = int(self.ms.get("max_output_length", 45))
        self.beam_size = int(self.ms.get("beam_size", 1))
        self.model_path = pretrained_path(self.pretrained_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        self.rows = {name: read_jsonl(self.data_dir / f"{name}.jsonl")
                     for name in ["train", "validation"] + self.eval_splits()}
        self.vocab = self._output_vocab()
        self._encoded = {name: self._encode(name, rows) for name, rows in self.rows.items()}
        self._eval_cache: dict[str, list[dict]] = {}
        self.skipped_train = [r["id"] for r in self.rows["train"] if self._target_ids(r) is None]
        self.train_index = [i for i, r in enumerate(self.rows["train"]) if self._target_ids(r) is not None]
        if not self.train_index:
            raise ValueError(f"{self.data_dir}/train.jsonl: no training row fits the output vocabulary")
        self.templates = template_counts(r["equation"] for r in self.rows["train"])

    # --- data -----------------------------------------------------------------------------
    def _output_vocab(self):
        from .model import OutputVocab

        # constants that occur at least min_constant_count times in TRAIN become output words
        # (the SVAMP code counts train+dev, which peeks at the test folds)
        min_count = int(self.ms.get("min_constant_count", 5))
        counts = Counter(t for r in self.rows["train"] for t in r["equation"] if is_constant(t))
        constants = sorted((c for c, n in counts.items() if n >= min_count), key=float)
        # number slots from train + validation only (a test problem with more numbers simply
        # cannot point at the extra ones), so no shape depends on the test split
        max_numbers = int(self.ms.get("max_numbers", 0)) or max(
            (len(r["numbers"]) for split in ("train", "validation") for r in self.rows[split]), default=1)
        ops = [op for op in OPERATORS if any(op in r["equation"] for r in self.rows["train"])] or ["+"]
        return OutputVocab(operators=ops, constants=constants, max_numbers=max(1, max_numbers))

    def _target_ids(self, row: dict) -> list[int] | None:
        """Output ids of the gold equation; a constant outside the vocabulary maps to a problem
        number of the same value when there is one, else the row cannot be taught (None)."""
        ids = []
        for tok in row["equation"]:
            k = self.vocab.index(tok)
            if k is None and is_constant(tok):
                same = [i for i, v in enumerate(row["numbers"]) if abs(v - float(tok)) < 1e-9]
                k = self.vocab.index(f"number{same[0]}") if same else None
            if k is None:
                return None
            ids.append(k)
        return ids

    def _encode(self, split: str, rows: list[dict]) -> list[dict]:
        """Tokenize once; find the first sub-token of every number mask through the tokenizer's
        character offsets (not word indices: those misalign with sub-word positions)."""
        enc = self.tokenizer([r["question"] for r in rows], truncation=True, max_length=self.max_length,
                             return_offsets_mapping=True)
        out = []
        for r, ids, offs in zip(rows, enc["input_ids"], enc["offset_mapping"]):
            where = f"{self.data_dir}/{split}.jsonl: row id {r.get('id')!r}"
            q = r["question"]
            pos = {}
            for m in MASK_IN_TEXT_RE.finditer(q):
                k = int(m.group(1))
                if k >= len(r["numbers"]):
                    raise ValueError(f"{where}: field 'question' has mask number{k} without a value "
                                     f"(field 'numbers' holds {len(r['numbers'])})")
                if k in pos:
                    continue
                t = _first_token_at(offs, m.start())
                if t is None:
                    raise ValueError(f"{where}: mask number{k} falls beyond max_length={self.max_length} tokens "
                                     "(raise settings.max_length)")
                pos[k] = t
            try:
                check_prefix(r["equation"], len(r["numbers"]))
            except EquationError as e:
                raise ValueError(f"{where}: field 'equation': {e}") from None
            n = len(r["numbers"])
            # a number whose mask is not in the text (rare) points at <s>
            num_pos = [pos.get(k, 0) for k in range(n)]
            item = {"ids": ids, "num_pos": num_pos, "targets": self._target_ids(r)}
            # the same values as tensors, made once here instead of in every batch (_collate)
            item["ids_t"] = torch.tensor(ids, dtype=torch.long)
            item["num_pos_t"] = torch.tensor(num_pos, dtype=torch.long)
            item["targets_t"] = None if item["targets"] is None else torch.tensor(item["targets"], dtype=torch.long)
            if self.arch == "graph2tree":
                item["cells"] = self._quantity_cells(r, offs, pos)
                item["graph_t"] = self._item_graph(item, r)
            out.append(item)
        return out

    def _quantity_cells(self, row: dict, offs, mask_pos: dict[int, int]) -> list[list[int]]:
        """Quantity cells as token positions: the row's ``group_nums`` word indices (real data) or
        each mask with its neighbouring words (synthetic), grouped into runs of consecutive words
        (one run = one cell), each word mapped to its first sub-token."""
        q = row["question"]
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", q)]
        words = row.get("group_nums")
        if words is None:
            mask_words = [i for i, (s, e) in enumerate(spans) if MASK_IN_TEXT_RE.fullmatch(q[s:e])]
            words = [j for i in mask_words for j in (i - 1, i, i + 1)]
        words = sorted({w for w in words if 0 <= w < len(spans)})
        runs: list[list[int]] = []
        for w in words:
            t = _first_token_at(offs, spans[w][0])
            if t is None:
                continue
            if runs and w == runs[-1][-1][0] + 1:
                runs[-1].append((w, t))
            else:
                runs.append([(w, t)])
        return [[t for _, t in run] for run in runs]

    def _collate(self, split: str, index: list[int], with_targets: bool) -> dict:
        from torch.nn.utils.rnn import pad_sequence

        items = [self._encoded[split][i] for i in index]
        B = len(items)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 1
        ids = pad_sequence([it["ids_t"] for it in items], batch_first=True, padding_value=pad_id)
        S = ids.size(1)
        lengths = torch.tensor([len(it["ids"]) for it in items], dtype=torch.long)
        att = (torch.arange(S).unsqueeze(0) < lengths.unsqueeze(1)).long()
        N = self.vocab.max_numbers
        num_pos = torch.zeros((B, N), dtype=torch.long)
        pos = pad_sequence([it["num_pos_t"][:N] for it in items], batch_first=True)
        num_pos[:, :pos.size(1)] = pos
        counts = torch.tensor([min(N, len(it["num_pos"])) for it in items], dtype=torch.long)
        num_valid = torch.arange(N).unsqueeze(0) < counts.unsqueeze(1)
        batch = {"input_ids": ids, "attention_mask": att, "lengths": att.sum(1), "num_pos": num_pos,
                 "num_valid": num_valid, "index": index}
        if with_targets:
            batch["targets"] = pad_sequence([it["targets_t"] for it in items], batch_first=True, padding_value=-1)
        if self.arch == "graph2tree":
            batch["graphs"] = self._graphs(items, S)
        return {k: (v.to(self.device) if isinstance(v, torch.Tensor) and k != "lengths" else v)
                for k, v in batch.items()}

    @staticmethod
    def _item_graph(item: dict, row: dict) -> torch.Tensor:
        """One problem's row-normalized adjacency [2, n, n] over its n tokens: 0 = quantity
        comparison (an edge from the larger number's position to the smaller's), 1 = quantity
        cells (the tokens of one cell fully connected); self-loops on every token."""
        n = len(item["ids"])
        g = torch.zeros(2, n, n)
        eye = torch.arange(n)
        g[:, eye, eye] = 1.0
        pos = item["num_pos"]
        vals = row["numbers"]
        for i in range(len(pos)):
            for j in range(len(pos)):
                if i != j and vals[i] > vals[j]:
                    g[0, pos[i], pos[j]] = 1.0
        for cell in item["cells"]:
            c = torch.tensor(cell, dtype=torch.long)
            g[1, c.unsqueeze(1), c.unsqueeze(0)] = 1.0
        return g / g.sum(-1, keepdim=True).clamp_min(1.0)

    @staticmethod
    def _graphs(items: list[dict], S: int) -> torch.Tensor:
        """The batch's adjacency [B, 2, S, S]: each problem's normalized graph (:meth:`_item_graph`,
        made once per problem) in the top-left corner; padding rows and columns are zero, as a
        row-normalization over the padded S x S matrix would leave them."""
        g = torch.zeros(len(items), 2, S, S)
        for b, it in enumerate(items):
            n = it["graph_t"].size(-1)
            g[b, :, :n, :n] = it["graph_t"]
        return g

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_index) // self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[dict]:
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        order = [self.train_index[i] for i in torch.randperm(len(self.train_index), generator=g).tolist()]
        for s in range(0, len(order), self.batch_size):
            yield self._collate("train", order[s:s + self.batch_size], with_targets=True)

    # --- model ----------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        from transformers import RobertaModel

        from .model import MathSolver

        from transformers.utils import logging as hf_logging

        # the MLM head of the checkpoint is unused on purpose; keep the per-job logs quiet about it
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            roberta = RobertaModel.from_pretrained(str(self.model_path), add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        hidden = int(self.ms.get("hidden_size", 512 if self.arch == "gts" else 384))
        # the decoder is new: its init derives from the run seed only (LTH rewinds to it)
        state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        model = MathSolver(roberta, self.arch, self.vocab, hidden=hidden,
                           lstm_layers=int(self.ms.get("lstm_layers", 2)),
                           op_embed_size=int(self.ms.get("op_embed_size", roberta.config.hidden_size)),
                           dropout=float(self.ms.get("dropout", 0.5)))
        torch.random.set_rng_state(state)
        return model.to(self.device)

    def param_groups(self, model, lr: float, weight_decay: float) -> list[dict]:
        """Two learning rates, as in the paper: ``embedding_lr`` for RoBERTa, ``lr`` for the rest
        (the model settings' ``lr``, when given, overrides the dataset's)."""
        lr = float(self.ms.get("lr", lr))
        emb_lr = float(self.ms.get("embedding_lr", lr))
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.ndim < 2 or "norm" in name.lower()
            groups.setdefault((name.startswith("roberta."), no_decay), []).append(p)
        return [{"params": ps, "lr": emb_lr if is_emb else lr, "weight_decay": 0.0 if nd else weight_decay}
                for (is_emb, nd), ps in sorted(groups.items())]

    def loss(self, model, batch) -> torch.Tensor:
        return model(batch)

    # --- evaluation -----------------------------------------------------------------------
    def _eval_batches(self, split: str) -> list[dict]:
        if split not in self._eval_cache:
            if split not in self.rows:
                raise ValueError(f"unknown split {split!r} (have: {', '.join(self.rows)})")
            n = len(self.rows[split])
            self._eval_cache[split] = [self._collate(split, list(range(s, min(n, s + self.eval_batch_size))), False)
                                       for s in range(0, n, self.eval_batch_size)]
        return self._eval_cache[split]

    def predict(self, model, split: str) -> list[list[str]]:
        """Predicted prefix equations (tokens) for every row of ``split``."""
        was_training = model.training
        model.eval()
        preds: list[list[str]] = []
        with torch.no_grad():
            for batch in self._eval_batches(split):
                if self.beam_size > 1:
                    from .search import beam_search

                    seqs = beam_search(model, batch, self.beam_size, self.max_output_length)
                else:
                    seqs = model.decode(batch, None, max_len=self.max_output_length)
                preds.extend([self.vocab.token(k) for k in s] for s in seqs)
        model.train(was_training)
        return preds

    def _score(self, split: str, preds: list[list[str]]) -> dict[str, float]:
        rows = self.rows[split]
        correct = equal = 0
        for r, p in zip(rows, preds):
            try:
                value = evaluate_prefix(p, r["numbers"]) if p else None
            except EquationError:
                value = None
            gold = r["answer"]
            same = p == r["equation"]
            correct += bool(same or values_match(value, gold))
            equal += same
        n = len(rows)
        return {"value_accuracy": 100.0 * correct / max(1, n), "equation_accuracy": 100.0 * equal / max(1, n),
                "value_correct": float(correct), "value_total": float(n), "n": n}

    @torch.no_grad()
    def evaluate(self, model, split: str) -> dict[str, float]:
        return self._score(split, self.predict(model, split))

    def baseline(self, split: str) -> dict[str, float]:
        """The most frequent training equation template that fits the problem (its masks exist),
        instantiated with the problem's numbers."""
        preds = [most_frequent_fitting(self.templates, len(r["numbers"])) or [] for r in self.rows[split]]
        return self._score(split, preds)

    def signature(self) -> str:
        decoding = f"beam{self.beam_size}" if self.beam_size > 1 else "greedy"
        return (f"value_accuracy=100*correct/n|abs_tol:1e-4|gold:equation_value|decoding:{decoding}|max_out:{self.max_output_length}"
                f"|numbers:first_subtoken_by_offsets|family:arithmetic|"
                + package_versions("transformers", "tokenizers", "torch"))


TASK = ArithmeticTask

