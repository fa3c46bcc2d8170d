"""The method registry: names from config -> facts the pipeline needs + the implementing class.

This module imports nothing heavy (no torch): the Snakefile reads it to plan the DAG. The class is
imported only when a job builds the method (:func:`build_method`).

Add a method: write a :class:`~smcbench.sparsity.base.SparseMethod` subclass (and, if it has
settings, a :class:`~smcbench.sparsity.settings.MethodSettings` dataclass), add one ``MethodInfo``
entry here, and one key under ``methods:`` in the config.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

from .settings import (GMPSettings, IMPDistillSettings, IMPSettings, MethodSettings, NoSettings, RigLSettings,
                       SnipSettings, parse_settings)


@dataclass(frozen=True)
class MethodInfo:
    """Facts about a method that the DAG and the training loop need (the loop never tests names).

    Attributes:
        cls: ``"module:Class"`` of the implementation.
        timing: ``"none"`` (dense), ``"before"``, ``"during"`` or ``"after"`` training.
        start_from: the weights training starts from: ``"pretrained"``, ``"dense"`` (the dense
            fine-tune of the same dataset/model/seed) or ``"previous_round"`` (IMP: round k-1's
            trained weights; round 1 starts from the dense fine-tune).
        init_mask_from: the before-training method whose mask this one starts from (``snip`` and
            ``snip+rigl`` share ``snip``'s): the training job computes it (seeded, so identical
            across the methods sharing it) unless ``--prev-mask`` gives it.
        iterative: IMP-style: level k is round k and needs round k-1.
        settings: the settings dataclass (a :class:`~smcbench.sparsity.settings.MethodSettings`
            subclass, or ``"module:Class"`` of one).
        rewinds_to_pretrained: the method rewinds survivors to the pre-trained weights (and the
            seeded head init) after pruning (``lth``): the loop keeps a copy of them.
        records_drift: the run writes ``drift.csv`` (relative distance of each scope tensor from
            its pre-trained value; the dense fine-tune).
        distill_from_dense: the loss adds knowledge distillation from a teacher built from the
            dense fine-tune (``--teacher-weights``); weights ``alpha`` and temperature
            ``temperature`` come from the method's settings.
    """

    cls: str
    timing: str
    start_from: str = "pretrained"
    init_mask_from: str | None = None
    iterative: bool = False
    settings: Any = NoSettings
    rewinds_to_pretrained: bool = False
    records_drift: bool = False
    distill_from_dense: bool = False

    @property
    def keeps_pretrained(self) -> bool:
        """The loop keeps a CPU copy of the starting (pre-trained) weights."""
        return self.rewinds_to_pretrained or self.records_drift

    def settings_class(self) -> type[MethodSettings]:
        s = self.settings
        if isinstance(s, str):
            module, name = s.split(":")
            s = getattr(importlib.import_module(module), name)
        return s


_M = "smcbench.sparsity.methods:"

METHODS: dict[str, MethodInfo] = {
    "dense": MethodInfo(_M + "Dense", "none", records_drift=True),
    "lth": MethodInfo(_M + "LotteryTicket", "after", "previous_round", iterative=True, settings=IMPSettings,
                      rewinds_to_pretrained=True),
    "imp_lrr": MethodInfo(_M + "IMPLearningRateRewinding", "after", "previous_round", iterative=True,
                          settings=IMPSettings),
    "imp_lrr_kd": MethodInfo(_M + "IMPLearningRateRewinding", "after", "previous_round", iterative=True,
                             settings=IMPDistillSettings, distill_from_dense=True),
    "omp_after": MethodInfo(_M + "OneShotMagnitude", "after", "dense"),
    "random_after": MethodInfo(_M + "OneShotRandom", "after", "dense"),
    "gmp": MethodInfo(_M + "GradualMagnitude", "during", settings=GMPSettings),
    "omp_before": MethodInfo(_M + "OneShotMagnitude", "before", init_mask_from="omp_before"),
    "random_before": MethodInfo(_M + "OneShotRandom", "before", init_mask_from="random_before"),
    "snip": MethodInfo(_M + "Snip", "before", init_mask_from="snip", settings=SnipSettings),
    "snip+rigl": MethodInfo(_M + "RigL", "during", init_mask_from="snip", settings=RigLSettings),
    "random_before+rigl": MethodInfo(_M + "RigL", "during", init_mask_from="random_before", settings=RigLSettings),
    "omp_before+rigl": MethodInfo(_M + "RigL", "during", init_mask_from="omp_before", settings=RigLSettings),
    "obert": MethodInfo("smcbench.sparsity.obert:OBert", "after", "previous_round", iterative=True,
                        settings="smcbench.sparsity.obert_settings:ObertSettings", distill_from_dense=True),
}


def known_methods() -> list[str]:
    """The method names of the registry, in registry order."""
    return list(METHODS)


# --- scopes (names only; resolution to parameters lives in ``scopes.py``, which imports torch) ---

#: The named scopes. ``modules:<kinds>`` scopes (any ``+``-combination of :data:`MODULE_KINDS`,
#: e.g. ``modules:Q+V``) are valid too; the ones of the paper's 5% table are listed here.
SCOPES: tuple[str, ...] = (
    "paper", "no_embeddings", "no_heads", "no_embeddings_heads", "attn_ffn",
    "modules:Q+K+V+O+FFN", "modules:Q+K", "modules:Q+V", "modules:K+V", "modules:Q+K+V",
)
#: Module kinds a ``modules:`` scope may combine (attention projections and the FFN Linears).
MODULE_KINDS: tuple[str, ...] = ("Q", "K", "V", "O", "FFN")


def parse_module_scope(scope: str) -> tuple[str, ...]:
    """The module kinds of a ``modules:A+B`` scope, in :data:`MODULE_KINDS` order.

    Raises ValueError naming the bad part and the valid kinds.
    """
    if not scope.startswith("modules:"):
        raise ValueError(f"not a module scope: {scope!r} (expected 'modules:' + e.g. 'Q+K')")
    parts = [p.strip().upper() for p in scope[len("modules:"):].split("+")]
    bad = [p for p in parts if p not in MODULE_KINDS]
    if bad or not parts:
        raise ValueError(f"bad module kind(s) {bad or parts} in scope {scope!r} "
                         f"(valid kinds: {', '.join(MODULE_KINDS)}, joined by '+', e.g. 'modules:Q+V')")
    if len(set(parts)) != len(parts):
        raise ValueError(f"repeated module kind in scope {scope!r}")
    return tuple(k for k in MODULE_KINDS if k in parts)


def validate_scope_name(scope: str) -> str:
    """Return ``scope`` if it names a scope; else raise ValueError listing the valid choices."""
    if isinstance(scope, str) and scope.startswith("modules:"):
        parse_module_scope(scope)
        return scope
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} (valid: {', '.join(SCOPES)}, "
                         f"or 'modules:' + a '+'-combination of {', '.join(MODULE_KINDS)})")
    return scope


def validate_target(target_sparsity: float, method: str | None = None) -> float:
    """Check a target sparsity: in (0, 1) for every sparse method; 0 for ``dense``.

    Returns the value as a float; raises ValueError naming the value and the valid range.
    """
    try:
        s = float(target_sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"target sparsity {target_sparsity!r} is not a number") from None
    if method == "dense":
        if s != 0.0:
            raise ValueError(f"target sparsity {s} for method 'dense' (must be 0)")
        return s
    if not 0.0 < s < 1.0:
        who = f" for method {method!r}" if method else ""
        raise ValueError(f"target sparsity {s}{who} is outside (0, 1) (a sparse method needs 0 < s < 1)")
    return s


def method_info(name: str) -> MethodInfo:
    """The registry entry of ``name``; an unknown name raises a ValueError listing the known."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} in config.methods (known: {', '.join(METHODS)})") from None


def method_settings(name: str, settings: Mapping[str, Any] | None = None) -> MethodSettings:
    """``settings`` parsed into the method's settings dataclass (defaults filled, types and ranges
    checked; an unknown key names the closest valid one). Raises :class:`SettingsError`."""
    info = method_info(name)
    parsed = parse_settings(info.settings_class(), name, settings)
    if isinstance(parsed, RigLSettings) and info.init_mask_from:
        # the init method's own settings are checked with its class
        method_settings(info.init_mask_from, parsed.init_settings)
    return parsed


def validate_method_settings(name: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Torch-free check for planning: the normalized settings (with defaults) as a plain dict.

    Raises :class:`~smcbench.sparsity.settings.SettingsError` (a ValueError) on any value a
    training job would refuse."""
    return method_settings(name, settings).to_dict()


def check_run(name: str, settings: Mapping[str, Any] | None, level: int, target_sparsity: float) -> None:
    """Checks of one (method, level) that need the level: the target is valid for the method, and
    an IMP round's target agrees with its ``prune_fraction``. Raises ValueError."""
    validate_target(target_sparsity, name)
    parsed = method_settings(name, settings)
    if hasattr(parsed, "check_level"):
        parsed.check_level(name, int(level) or 1, target_sparsity)


def build_method(name: str, settings: Mapping[str, Any] | None = None):
    """Instantiate the method ``name`` with its config ``settings`` (checked and typed)."""
    info = method_info(name)
    method_settings(name, settings)  # a clear error before the class is even imported
    module, cls = info.cls.split(":")
    klass = getattr(importlib.import_module(module), cls)
    return klass(name=name, info=info, settings=dict(settings or {}))
