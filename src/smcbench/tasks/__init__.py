"""Task families. Importing this package is cheap; a family module loads on first use.

``FAMILIES`` maps a family name to the module implementing the contract of ``tasks/base.py``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES: dict[str, str] = {
    "commonsense": "smcbench.tasks.commonsense",
    "arithmetic": "smcbench.tasks.arithmetic",
    "protein": "smcbench.tasks.protein",
    "translation": "smcbench.tasks.translation",
}


# Dataset names the CLI knows without a config (``smcbench prepare DATASET``); configs name the
# family explicitly, so a new dataset needs no entry here.
KNOWN_DATASETS: dict[str, str] = {
    "csqa": "commonsense", "winogrande": "commonsense", "race": "commonsense",
    "demo_cs_easy": "commonsense", "demo_cs_hard": "commonsense",
    "mawps": "arithmetic", "asdiv_a": "arithmetic", "svamp": "arithmetic",
    "demo_mawps": "arithmetic", "demo_asdiv": "arithmetic", "demo_svamp": "arithmetic",
    "hotprotein_s": "protein", "hotprotein_s2c2": "protein", "hotprotein_s2c5": "protein",
    "meltome": "protein", "demo_protein2": "protein", "demo_protein5": "protein",
    "opus100": "translation", "opus100_2to2": "translation", "opus100_5to5": "translation",
    "opus100_10to10": "translation", "demo_mt_2to2": "translation", "demo_mt_5to5": "translation",
    "demo_mt_10to10": "translation",
}


# The model architectures each family builds (``models.<name>.arch`` in the config), checked
# before any job runs.
ARCHS: dict[str, tuple[str, ...]] = {
    "commonsense": ("roberta_mc", "roberta_mlm"),
    "arithmetic": ("gts", "graph2tree"),
    "protein": ("esm", "tape", "esm_if1"),
    "translation": ("mbart",),
}


def dataset_family(dataset: str) -> str:
    """The family of a known dataset name; unknown names raise a ValueError listing the known."""
    try:
        return KNOWN_DATASETS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r} (known: {', '.join(KNOWN_DATASETS)}; "
                         "or pass --family)") from None


def family_module(family: str) -> ModuleType:
    """The module of ``family``; an unknown name raises a ValueError listing the known ones."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r} (known: {', '.join(FAMILIES)})")
    return importlib.import_module(FAMILIES[family])


def task_class(family: str):
    """The :class:`~smcbench.tasks.base.Task` subclass of ``family`` (module attribute ``TASK``)."""
    return family_module(family).TASK
