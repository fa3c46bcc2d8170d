"""Protein thermostability family (SMC-Bench §protein): HotProtein HP-S / HP-S²C2 / HP-S²C5, FLIP's
Meltome Atlas and the synthetic demo; models ESM-1b, TAPE and ESM-IF1.

Layout (the same in every family):

* :mod:`.formats`: FASTA / CSV / PDB / split-pickle parsers (standard library only),
* :mod:`.data`: the HotProtein and Meltome readers and ``prepare``,
* :mod:`.synthetic`: the demo's generator,
* :mod:`.model`: the backbones' wrappers, checkpoint conversions, the tiny demo ESM,
* :mod:`.task`: ``make_pretrained`` and :class:`~.task.ProteinTask`.

Importing this package is cheap (no torch): ``DATASETS`` and ``ARCHS`` are plain data; ``prepare``,
``make_pretrained`` and ``TASK`` load their modules on first use.
"""

from __future__ import annotations

import importlib

FAMILY = "protein"
DATASETS = ("hotprotein_s", "hotprotein_s2c2", "hotprotein_s2c5", "meltome", "demo_protein2", "demo_protein5")
ARCHS = ("esm", "tape", "esm_if1")

_LAZY = {"prepare": "data", "make_pretrained": "task", "TASK": "task", "ProteinTask": "task"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FAMILY", "DATASETS", "ARCHS", "prepare", "make_pretrained", "TASK"]
