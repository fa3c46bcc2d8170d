"""Lazy attributes of a family package: its declarations import no torch, its contract loads on use."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, submodules: tuple[str, ...]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: a submodule by name, else the first submodule in
    ``submodules`` that has the attribute (so ``family.TASK`` imports ``family.task`` on first use)."""

    def __getattr__(name: str) -> Any:
        if name in submodules:  # ``from . import data`` inside the package: the submodule itself
            return importlib.import_module(f"{package}.{name}")
        for sub in submodules:
            module = importlib.import_module(f"{package}.{sub}")
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
