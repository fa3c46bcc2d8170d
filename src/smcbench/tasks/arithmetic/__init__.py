"""Arithmetic reasoning family (SMC-Bench §4): math word problem → prefix equation → value.

Datasets MAWPS, ASDiv-A (5-fold CV) and SVAMP from the SVAMP repository, and the synthetic demo
sets; models GTS and Graph2Tree over RoBERTa embeddings.

Layout (the same in every family):

* :mod:`.equations`: prefix equations (check, evaluate, compare values, templates),
* :mod:`.data`: the SVAMP-repository readers and ``prepare``,
* :mod:`.synthetic`: the demo's problem generator,
* :mod:`.model`: GTS / Graph2Tree (encoder, batched tree decoder), :mod:`.search`: beam search,
* :mod:`.task`: ``make_pretrained`` and :class:`~.task.ArithmeticTask`.

Importing this package is cheap (no torch): ``DATASETS`` and ``ARCHS`` are plain data; ``prepare``,
``make_pretrained`` and ``TASK`` load their modules on first use.
"""

from __future__ import annotations

import importlib

FAMILY = "arithmetic"
DATASETS = ("mawps", "asdiv_a", "svamp", "demo_mawps", "demo_asdiv", "demo_svamp")
ARCHS = ("gts", "graph2tree")

_LAZY = {"prepare": "data", "carve_validation": "data", "parse_csv_row": "data", "read_svamp_csv": "data",
         "make_pretrained": "task", "TASK": "task", "ArithmeticTask": "task"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FAMILY", "DATASETS", "ARCHS", "prepare", "make_pretrained", "TASK"]
