"""Protein models' ``make_pretrained`` and the task: sequence (or structure) → thermostability class.
Models are told apart by ``arch`` (``esm``, ``tape``, ``esm_if1``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from ..base import Task, package_versions, pretrained_path, read_jsonl
from . import synthetic as psyn

FAMILY = "protein"

# === pretrained =============================================================================
def make_pretrained(model_name: str, entry: dict, source: str, out_dir: str | Path) -> dict:
    """Materialize a protein model. Hub snapshot / local folder: checked and used in place.
    ``synthetic``: the demo's tiny ESM, masked-LM pre-trained on synthetic proteins.
    ESM-IF1 ``.pt``: converted once to safetensors (``encoder.safetensors`` + args JSON)."""
    from . import model as pm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = entry.get("arch", "esm")
    settings = dict(entry.get("settings") or {})
    if arch not in ("esm", "tape", "esm_if1"):
        raise ValueError(f"model {model_name!r}: unknown protein arch {arch!r} (known: esm, tape, esm_if1)")
    if str(source) == "synthetic":
        if arch != "esm":
            raise ValueError(f"model {model_name!r}: source 'synthetic' is only available for arch esm "
                             "(the demo's tiny ESM); give a local path for tape / esm_if1")
        seed = int(settings.get("world_seed", 0)) + 1000  # a different stream from the datasets'
        seqs = [r["sequence"] for r in psyn.synthetic_rows(
            int(settings.get("pretrain_sequences", 2000)), 5, seed,
            int(settings.get("min_length", 20)), int(settings.get("max_length", 32)))]
        info = pm.pretrain_tiny_esm(seqs, settings, out_dir, seed=int(settings.get("world_seed", 0)))
        # absolute: the CLI records weights inside out_dir as "." in pretrained.json
        return {"path": str(out_dir.resolve()), "arch": arch, "source": "synthetic", **info}
    src = Path(source)
    if arch == "esm_if1":
        if (src / "encoder.safetensors").is_file() and (src / "esm_if1_args.json").is_file():
            return {"path": str(src.resolve()), "arch": arch, "source": str(source)}
        pts = [src] if src.is_file() else sorted(src.glob("*.pt"))
        pts = [p for p in pts if "contact-regression" not in p.name]
        if len(pts) != 1:
            raise FileNotFoundError(f"model {model_name!r}: expected one ESM-IF1 .pt file at {source} "
                                    f"(esm_if1_gvp4_t16_142M_UR50.pt), found {[p.name for p in pts]}")
        info = pm.convert_esm_if1_checkpoint(pts[0], out_dir)
        return {"path": str(out_dir.resolve()), "arch": arch, "source": str(source), **info}
    if not src.exists():
        raise FileNotFoundError(f"model {model_name!r}: {source} does not exist")
    has_weights = src.is_dir() and any((src / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json"))
    if src.is_dir() and (src / "config.json").is_file() and (has_weights or arch == "esm"):
        return {"path": str(src.resolve()), "arch": arch, "source": str(source)}  # an HF folder, used in place
    if arch == "esm":
        # fair-esm's own checkpoint (esm1b_t33_650M_UR50S.pt, as downloaded from its URL)
        pts = [src] if src.is_file() else sorted(p for p in src.glob("*.pt") if "contact-regression" not in p.name)
        if len(pts) != 1:
            raise FileNotFoundError(f"model {model_name!r}: {source} is neither a Hugging Face ESM folder (config.json) "
                                    f"nor holds one fair-esm checkpoint (esm1b_t33_650M_UR50S.pt); found "
                                    f"{[p.name for p in pts]}")
        info = pm.convert_fair_esm_checkpoint(pts[0], out_dir)
    else:
        # TAPE's published bert-base-pytorch_model.bin (+ bert-base-config.json), or a TAPE / HF folder with .bin
        info = pm.convert_tape_checkpoint(src, out_dir, int(settings.get("num_attention_heads", 12)))
    return {"path": str(out_dir.resolve()), "arch": arch, "source": str(source), **info}


# === the task ===============================================================================
class ProteinTask(Task):
    """Sequence (or structure) → thermostability class. Metric: accuracy (%); Meltome adds
    ``spearman`` (plain ρ in [-1, 1] between the predicted expected class index and Tm)."""

    family = FAMILY
    primary_metric = "accuracy"

    def __init__(self, dataset, settings, data_dir, pretrained_dir, seed, device="cpu"):
        super().__init__(dataset, settings, data_dir, pretrained_dir, seed, device)
        self.model_entry = dict(settings.get("model") or {})
        self.arch = self.model_entry.get("arch", "esm")
        self.model_settings = dict(self.model_entry.get("settings") or {})
        self.training = dict(settings.get("training") or {})
        meta_path = self.data_dir / "meta.json"
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.rows = {p.stem: read_jsonl(p) for p in sorted(self.data_dir.glob("*.jsonl"))}
        if "train" not in self.rows:
            raise FileNotFoundError(f"{self.data_dir}: no train.jsonl; run `python -m smcbench prepare {dataset}` first")
        self.num_classes = int(settings.get("num_classes") or self.meta.get("num_classes")
                               or 1 + max(r["label"] for r in self.rows["train"]))
        # A model's settings may override the dataset's recipe (TAPE and ESM-1b share HP-S).
        for key in ("lr", "backbone_lr", "batch_size"):
            if key in self.model_settings:
                self.training[key] = self.model_settings[key]
        self.batch_size = int(self.training.get("batch_size", 32))
        self.eval_batch_size = int(self.training.get("eval_batch_size", max(self.batch_size, 64)))
        self.weights_dir = pretrained_path(self.pretrained_dir)
        self._encoded: dict[str, list] = {}
        self._coords = None
        self._state_cache: torch.nn.Module | None = None
        self._backbone_config = None
        self.max_model_residues = 10**9
        if self.arch in ("esm", "tape"):
            self.vocab, self.specials = self._load_vocab()
            cfg_path = self.weights_dir / "config.json"
            if cfg_path.is_file():
                positions = int(json.loads(cfg_path.read_text()).get("max_position_embeddings", 10**9))
                # ESM numbers positions from padding_idx + 1; BERT from 0; both add <cls>, <eos>.
                used = self.specials["pad"] + 3 if self.arch == "esm" else 2
                self.max_model_residues = positions - used

    # --- tokens ----------------------------------------------------------------------------
    def _load_vocab(self) -> tuple[dict[str, int], dict[str, int]]:
        from . import model as pm

        if self.arch == "tape":
            vocab = pm.tape_vocab(self.weights_dir)
            return vocab, {"cls": vocab["<cls>"], "eos": vocab["<sep>"], "pad": vocab["<pad>"], "unk": vocab["<unk>"]}
        vocab_file = self.weights_dir / "vocab.txt"
        tokens = vocab_file.read_text(encoding="utf-8").split() if vocab_file.is_file() else pm.ESM_VOCAB
        vocab = {t: i for i, t in enumerate(tokens)}
        return vocab, {"cls": vocab["<cls>"], "eos": vocab["<eos>"], "pad": vocab["<pad>"], "unk": vocab["<unk>"]}

    def encode(self, sequence: str) -> list[int]:
        """Token ids of one sequence: ``<cls>`` residues ``<eos>`` (TAPE: ``<sep>``); ESM's
        ``EsmTokenizer`` gives the same ids (checked in tests)."""
        sp = self.specials
        sequence = sequence[:self.max_model_residues]  # prepare truncates already; a smaller model may not fit
        return [sp["cls"]] + [self.vocab.get(c, sp["unk"]) for c in sequence] + [sp["eos"]]

    def _split(self, split: str) -> list:
        if split not in self.rows:
            raise KeyError(f"{self.data_dir}: no {split}.jsonl (have {sorted(self.rows)})")
        if split not in self._encoded:
            if self.arch == "esm_if1":
                coords = self._structures()
                self._encoded[split] = [(coords[r["id"]], r["label"]) for r in self.rows[split]]
            else:
                self._encoded[split] = [(torch.tensor(self.encode(r["sequence"]), dtype=torch.long), r["label"])
                                        for r in self.rows[split]]
        return self._encoded[split]

    def _structures(self) -> dict[str, torch.Tensor]:
        if self._coords is None:
            from safetensors.torch import load_file

            path = self.data_dir / "structures.safetensors"
            if not path.is_file():
                raise FileNotFoundError(f"{path} missing: arch esm_if1 needs a dataset prepared with structures "
                                        "(variant hp_s2c5)")
            self._coords = load_file(str(path))
        return self._coords

    def _collate(self, items: list) -> dict[str, torch.Tensor]:
        labels = torch.tensor([y for _, y in items], dtype=torch.long)
        if self.arch == "esm_if1":
            from esm.inverse_folding.util import CoordBatchConverter

            conv = CoordBatchConverter(self._alphabet)
            coords, confidence, _, _, padding_mask = conv([(x.numpy(), None, None) for x, _ in items])
            lengths = torch.tensor([len(x) for x, _ in items])
            return {k: v.to(self.device) for k, v in dict(coords=coords, padding_mask=padding_mask, confidence=confidence,
                                                              lengths=lengths, labels=labels).items()}
        ids = torch.nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True, padding_value=self.specials["pad"])
        return {"input_ids": ids.to(self.device), "attention_mask": (ids != self.specials["pad"]).long().to(self.device),
                "labels": labels.to(self.device)}

    # --- model -----------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        from . import model as pm

        ms = self.model_settings
        head_hidden = int(ms.get("head_hidden", 128 if self.arch == "esm_if1" else 512))
        if self.arch == "esm":
            backbone = self._cached_backbone(lambda: pm.load_esm_backbone(self.weights_dir, ms.get("attn_implementation")))
            model = pm.EsmThermoClassifier(backbone, self.num_classes, head_hidden, self.seed, cls_id=self.specials["cls"])
        elif self.arch == "tape":
            backbone = self._cached_backbone(lambda: pm.load_tape_backbone(self.weights_dir))
            model = pm.TapeThermoClassifier(backbone, self.num_classes, head_hidden, self.seed,
                                            dropout=float(ms.get("head_dropout", 0.1)))
        elif self.arch == "esm_if1":
            from safetensors.torch import load_file

            args = json.loads((self.weights_dir / "esm_if1_args.json").read_text())
            encoder = pm.build_esm_if1_encoder(args, load_file(str(self.weights_dir / "encoder.safetensors")))
            self._alphabet = encoder.alphabet
            model = pm.EsmIF1Classifier(encoder, self.num_classes, head_hidden, self.seed)
        else:
            raise ValueError(f"unknown protein arch {self.arch!r} (known: esm, tape, esm_if1)")
        return model.to(self.device)

    def _cached_backbone(self, load):
        # from_pretrained is the slow part of a demo run; a second build_model (e.g. LTH's rewind
        # target) reuses the loaded weights, copied, so the two models never share tensors.
        import copy

        if self._state_cache is None:
            backbone = load()
            # Keep a spare copy only of small (demo-size) models: a 650M-parameter copy would
            # cost 2.6 GB of RAM to save one load in the rare job that builds twice.
            if sum(p.numel() for p in backbone.parameters()) <= 20_000_000:
                self._state_cache = copy.deepcopy(backbone)
            return backbone
        return copy.deepcopy(self._state_cache)

    def param_groups(self, model: torch.nn.Module, lr: float, weight_decay: float) -> list[dict]:
        """Head (``classifier.*``) at ``lr``; backbone at ``training.backbone_lr`` (default
        ``lr``), as the paper's separate backbone/head optimizers; no decay on biases/norms.
        Model settings ``lr`` / ``backbone_lr`` override the dataset's values."""
        lr = float(self.model_settings.get("lr", lr))
        backbone_lr = float(self.training.get("backbone_lr", lr))
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            key = (name.startswith("classifier."), p.ndim < 2 or "norm" in name.lower())
            groups.setdefault(key, []).append(p)
        out = []
        for (is_head, no_decay), params in sorted(groups.items()):
            out.append({"params": params, "lr": lr if is_head else backbone_lr,
                        "weight_decay": 0.0 if no_decay else weight_decay,
                        "name": f"{'head' if is_head else 'backbone'}{'_no_decay' if no_decay else ''}"})
        return out

    # --- data ------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.rows["train"]) / self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        items = self._split("train")
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(items), generator=gen).tolist()
        for i in range(0, len(order), self.batch_size):
            yield self._collate([items[j] for j in order[i:i + self.batch_size]])

    def _forward(self, model, batch):
        if self.arch == "esm_if1":
            return model(batch["coords"], batch["padding_mask"], batch["confidence"], batch["lengths"])
        return model(batch["input_ids"], batch["attention_mask"])

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(self._forward(model, batch), batch["labels"])

    # --- evaluation ------------------------------------------------------------------------
    def eval_splits(self) -> list[str]:
        return sorted(s for s in self.rows if s.startswith("test")) or ["test"]

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str) -> dict[str, float]:
        """Accuracy (%) on ``split``; with Meltome targets also ``spearman`` (ρ between the
        expected class index Σ c·p(c) and Tm)."""
        items = self._split(split)
        was_training = model.training
        model.eval()
        # Length-sorted batches waste little padding; results are order-independent.
        order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
        pred = torch.empty(len(items), dtype=torch.long)
        expected = torch.empty(len(items))
        classes = torch.arange(self.num_classes, dtype=torch.float32)
        for i in range(0, len(order), self.eval_batch_size):
            idx = order[i:i + self.eval_batch_size]
            batch = self._collate([items[j] for j in idx])
            logits = self._forward(model, batch).float().cpu()
            pred[idx] = logits.argmax(-1)
            expected[idx] = logits.softmax(-1) @ classes
        if was_training:
            model.train()
        labels = torch.tensor([y for _, y in items])
        n = len(items)
        correct = int((pred == labels).sum())
        out = {"accuracy": 100.0 * correct / n if n else 0.0, "n": n}  # from counts, in Python floats
        rows = self.rows[split]
        if rows and "target" in rows[0]:
            out["spearman"] = _spearman(expected.tolist(), [r["target"] for r in rows])
        return out

    def baseline(self, split: str) -> dict[str, float]:
        """Majority class of train, predicted for every row of ``split`` (spearman of a constant: 0).
        On the synthetic demo, the stronger of that and the best single-residue position rule
        (:func:`~.synthetic.position_heuristic`): the strongest heuristic that does not relate residues."""
        counts: dict[int, int] = {}
        for r in self.rows["train"]:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        majority = max(sorted(counts), key=lambda c: counts[c])
        rows = self.rows[split]
        acc = 100.0 * sum(r["label"] == majority for r in rows) / max(1, len(rows))
        if self.meta.get("variant") == "synthetic":
            acc = max(acc, psyn.position_heuristic(self.rows["train"], rows))
        out = {"accuracy": acc, "n": len(rows)}
        if rows and "target" in rows[0]:
            out["spearman"] = 0.0
        return out

    def signature(self) -> str:
        extra = f"|tm_bins:{self.meta.get('tm_bins')}" if "tm_bins" in self.meta else ""
        return (f"accuracy=100*correct/n|family:protein|arch:{self.arch}|pool:{'pooler' if self.arch == 'tape' else 'mean'}"
                f"|classes:{self.num_classes}|max_residues:{self.meta.get('max_residues', 1022)}{extra}|"
                + package_versions("transformers", "torch", *(("fair-esm",) if self.arch == "esm_if1" else ())))


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return 0.0  # undefined for a constant predictor; 0 = no rank information
    return float(spearmanr(x, y).statistic)


TASK = ProteinTask
