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
    return list(METHODS)


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
