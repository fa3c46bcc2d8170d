"""The contract every task family implements. Tasks know nothing of pruning.

A family module (``tasks/commonsense.py``, ``tasks/arithmetic.py``, …) defines

* ``DATASETS``: the dataset names it prepares (e.g. ``{"csqa", "winogrande", "race", "demo_cs_easy"}``),
* ``prepare(dataset, source, out_dir, settings, fold=None) -> dict``: read the raw source and write
  ``out_dir/{train,validation,test}.jsonl`` (+ ``test_<name>.jsonl`` variants) in the family's
  documented row schema; return the ``meta.json`` dict (counts, records dropped and why).
  ``source`` is always local: a folder in the original release's layout, a Hub snapshot folder
  (what ``huggingface_hub.snapshot_download(repo_type="dataset")`` writes: parquet files), a single
  file, or the string ``"synthetic"`` (demo). The ``download`` step resolves Hub ids and URLs into
  such folders (checksummed, cached) before ``prepare`` runs, so families never touch the network.
  ``settings`` is the dataset's config ``settings`` dict; ``fold`` the CV fold (arithmetic) or None.
* ``make_pretrained(model_name, entry, source, out_dir) -> dict``: materialize the pre-trained
  model. ``entry`` is the model's config entry (``arch``, ``source``, ``settings``); ``source`` is
  a local folder (Hub snapshot or the user's path) or ``"synthetic"`` (demo: build a tokenizer and
  a tiny model of the real class, pre-train it briefly, save it in ``out_dir``). Return the
  ``pretrained.json`` dict; it must hold ``path`` (see :func:`pretrained_path`),
* a :class:`Task` subclass, registered in ``tasks/__init__.py``'s ``FAMILIES``.

Rows are plain dicts read from JSONL; every row has an ``id`` unique within its file and its gold
answer in ``label`` (int), ``answer`` (number) or ``target`` (text or float).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch

# Shared IO lives on the ground floor (``smcbench.io``); re-exported here for older imports.
from ..io import iter_jsonl, read_jsonl, write_json_atomic, write_jsonl  # noqa: F401


class Task:
    """One (dataset, model) pair ready to train: data, model, loss, metric.

    Args:
        dataset: the dataset name (config key).
        settings: the job's task settings: the dataset's and model's config entries merged
            (``settings["model"]`` holds the model entry), plus ``training`` hyperparameters.
        data_dir: the prepared data folder (``train.jsonl`` …).
        pretrained_dir: the folder written by ``make_pretrained``.
        seed: the run seed; head initialization and data order derive from it.
        device: torch device for batches.
    """

    family: ClassVar[str] = ""
    #: name of the metric that model selection and the figures use (e.g. "accuracy", "bleu")
    primary_metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True

    def __init__(self, dataset: str, settings: dict[str, Any], data_dir: str | Path,
                 pretrained_dir: str | Path, seed: int, device: str | torch.device = "cpu"):
        self.dataset = dataset
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.pretrained_dir = Path(pretrained_dir)
        self.seed = seed
        self.device = torch.device(device)

    # --- model -----------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The pre-trained model with its task head; heads are initialized from ``self.seed``,
        so two calls give bitwise-identical models (LTH rewinds to exactly this)."""
        raise NotImplementedError

    def param_groups(self, model: torch.nn.Module, lr: float, weight_decay: float) -> list[dict]:
        """Optimizer parameter groups. Default: one lr; no weight decay on biases and norms.
        Families override for separate backbone/head or embedding learning rates."""
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
        return [{"params": decay, "lr": lr, "weight_decay": weight_decay},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0}]

    # --- data ------------------------------------------------------------------------------
    def train_batches(self, epoch: int) -> Iterator[Any]:
        """Training batches of one epoch, shuffled from (seed, epoch), already on the device."""
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Scalar training loss of ``batch``."""
        raise NotImplementedError

    # --- evaluation ------------------------------------------------------------------------
    def eval_splits(self) -> list[str]:
        """Splits reported at the end: ``test`` and any ``test_<name>`` variants present."""
        names = sorted(p.stem for p in self.data_dir.glob("test*.jsonl"))
        return names or ["test"]

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str) -> dict[str, float]:
        """Metrics on ``split`` (``validation`` for selection, test splits for reporting).
        Must include ``primary_metric``; values in the metric's natural unit (accuracy in %)."""
        raise NotImplementedError

    def baseline(self, split: str) -> dict[str, float]:
        """Metric of a trivial predictor on ``split`` (chance / majority class / copy-source)."""
        raise NotImplementedError

    def signature(self) -> str:
        """How the metric was computed (tokenizer, matching rule…), recorded on every row."""
        return f"{self.primary_metric}|family:{self.family}"


def package_versions(*names: str) -> str:
    """``name:version`` of each installed package, ``|``-joined (``name:absent`` if missing), for
    metric signatures: a result says which tokenizer and metric code produced it."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in names:
        try:
            out.append(f"{name}:{version(name)}")
        except PackageNotFoundError:
            out.append(f"{name}:absent")
    return "|".join(out)


def pretrained_path(pretrained_dir: str | Path) -> Path:
    """The folder holding the pre-trained weights recorded by the ``pretrained`` rule.

    ``pretrained_dir/pretrained.json`` has a ``path`` key: the local snapshot of a Hub model, the
    user's local path, or ``pretrained_dir`` itself for models pre-trained by the demo.
    """
    pretrained_dir = Path(pretrained_dir)
    info = json.loads((pretrained_dir / "pretrained.json").read_text())
    path = Path(info["path"])
    return path if path.is_absolute() else (pretrained_dir / path)
