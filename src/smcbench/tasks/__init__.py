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


def family_module(family: str) -> ModuleType:
    """The module of ``family``; an unknown name raises a ValueError listing the known ones."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r} (known: {', '.join(FAMILIES)})")
    return importlib.import_module(FAMILIES[family])


def task_class(family: str):
    """The :class:`~smcbench.tasks.base.Task` subclass of ``family`` (module attribute ``TASK``)."""
    return family_module(family).TASK
