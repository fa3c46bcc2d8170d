"""The method registry: names from config -> facts the pipeline needs + the implementing class.

This module imports nothing heavy (no torch): the Snakefile reads it to plan the DAG. The class is
imported only when a job builds the method (:func:`build_method`).

Add a method: write a :class:`~smcbench.sparsity.base.SparseMethod` subclass, add one
``MethodInfo`` entry here, and one key under ``methods:`` in the config.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MethodInfo:
    """Facts about a method that the DAG needs.

    Attributes:
        cls: ``"module:Class"`` of the implementation.
        timing: ``"none"`` (dense), ``"before"``, ``"during"`` or ``"after"`` training.
        start_from: the weights training starts from: ``"pretrained"``, ``"dense"`` (the dense
            fine-tune of the same dataset/model/seed) or ``"previous_round"`` (IMP: round k-1's
            trained weights; round 1 starts from the dense fine-tune).
        init_mask_from: the method whose before-training mask this one starts from; the ``mask``
            rule computes it once per (level, seed) and shares it (``snip`` and ``snip+rigl``).
        iterative: IMP-style: level k is round k and needs round k-1.
    """

    cls: str
    timing: str
    start_from: str = "pretrained"
    init_mask_from: str | None = None
    iterative: bool = False


_M = "smcbench.sparsity.methods:"

METHODS: dict[str, MethodInfo] = {
    "dense": MethodInfo(_M + "Dense", "none"),
    "lth": MethodInfo(_M + "LotteryTicket", "after", "previous_round", iterative=True),
    "imp_lrr": MethodInfo(_M + "IMPLearningRateRewinding", "after", "previous_round", iterative=True),
    "omp_after": MethodInfo(_M + "OneShotMagnitude", "after", "dense"),
    "random_after": MethodInfo(_M + "OneShotRandom", "after", "dense"),
    "gmp": MethodInfo(_M + "GradualMagnitude", "during"),
    "omp_before": MethodInfo(_M + "OneShotMagnitude", "before", init_mask_from="omp_before"),
    "random_before": MethodInfo(_M + "OneShotRandom", "before", init_mask_from="random_before"),
    "snip": MethodInfo(_M + "Snip", "before", init_mask_from="snip"),
    "snip+rigl": MethodInfo(_M + "RigL", "during", init_mask_from="snip"),
    "random_before+rigl": MethodInfo(_M + "RigL", "during", init_mask_from="random_before"),
    "omp_before+rigl": MethodInfo(_M + "RigL", "during", init_mask_from="omp_before"),
}


def known_methods() -> list[str]:
    """The method names of the registry, in registry order."""
    return list(METHODS)


# --- scopes (names only; resolution to parameters lives in ``scopes.py``, which imports torch) ---

#: The named scopes. ``modules:<kinds>`` scopes (any ``+``-combination of :data:`MODULE_KINDS`,
#: e.g. ``modules:Q+V``) are valid too; the ones of the paper's 5% table are listed here.
SCOPES: tuple[str, ...] = (
    "paper", "no_embeddings", "no_heads", "attn_ffn",
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


def build_method(name: str, settings: dict[str, Any] | None = None):
    """Instantiate the method ``name`` with its config ``settings``."""
    info = method_info(name)
    module, cls = info.cls.split(":")
    klass = getattr(importlib.import_module(module), cls)
    return klass(name=name, info=info, settings=settings or {})
