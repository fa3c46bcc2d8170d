"""Task families. Importing this package is cheap: each family is a package whose ``__init__``
declares, without importing torch,

* ``DATASETS``: the dataset names it prepares (``smcbench prepare NAME`` needs no ``--family``),
* ``ARCHS``: the model architectures it builds (``models.<name>.arch`` in the config),

and loads the contract of ``tasks/base.py`` (``prepare``, ``make_pretrained``, ``TASK``) on first
use. ``FAMILIES`` maps a family name to its package; the registries below are derived from the
declarations, so adding a family is its own package plus one line in ``FAMILIES``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

FAMILIES: dict[str, str] = {
    "commonsense": "smcbench.tasks.commonsense",
    "arithmetic": "smcbench.tasks.arithmetic",
    "protein": "smcbench.tasks.protein",
    "translation": "smcbench.tasks.translation",
}


# Declarations of families still shipped as one module (importing it would import torch):
# used only until the family becomes a package with a light ``__init__``.
_MODULE_FALLBACK: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "arithmetic": (("mawps", "asdiv_a", "svamp", "demo_mawps", "demo_asdiv", "demo_svamp"),
                   ("gts", "graph2tree")),
    "protein": (("hotprotein_s", "hotprotein_s2c2", "hotprotein_s2c5", "meltome", "demo_protein2",
                 "demo_protein5"), ("esm", "tape", "esm_if1")),
}


def _declared(family: str, path: str) -> tuple:
    spec = importlib.util.find_spec(path)
    if spec is not None and spec.submodule_search_locations is None and family in _MODULE_FALLBACK:
        return _MODULE_FALLBACK[family]
    module = importlib.import_module(path)
    return module.DATASETS, module.ARCHS


def _declarations() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    known: dict[str, str] = {}
    archs: dict[str, tuple[str, ...]] = {}
    for family, path in FAMILIES.items():
        try:
            datasets, family_archs = _declared(family, path)
        except AttributeError:
            raise ImportError(f"task family {family!r} ({path}) must declare DATASETS and ARCHS "
                              "in its package __init__") from None
        for name in sorted(datasets):
            if name in known:
                raise ImportError(f"dataset {name!r} is declared by two families: "
                                  f"{known[name]!r} and {family!r}")
            known[name] = family
        archs[family] = tuple(family_archs)
    return known, archs


#: dataset name -> family, for every dataset a family declares (configs name the family
#: explicitly, so a config may add datasets that are not listed here)
KNOWN_DATASETS: dict[str, str]
#: family -> the model architectures it builds, checked before any job runs
ARCHS: dict[str, tuple[str, ...]]
KNOWN_DATASETS, ARCHS = _declarations()


def dataset_family(dataset: str) -> str:
    """The family of a known dataset name; unknown names raise a ValueError listing the known."""
    try:
        return KNOWN_DATASETS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r} (known: {', '.join(KNOWN_DATASETS)}; "
                         "or pass --family)") from None


def family_module(family: str) -> ModuleType:
    """The package of ``family``; an unknown name raises a ValueError listing the known ones."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r} (known: {', '.join(FAMILIES)})")
    return importlib.import_module(FAMILIES[family])


def task_class(family: str):
    """The :class:`~smcbench.tasks.base.Task` subclass of ``family`` (package attribute ``TASK``)."""
    return family_module(family).TASK
