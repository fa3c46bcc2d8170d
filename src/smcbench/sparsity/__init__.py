"""The sparsity engine: masks, scopes, scores, exact global selection, methods.

Model-agnostic: it imports torch and nothing of ``smcbench.tasks``. Importing this package is
cheap; the heavy modules load on first use.
"""

from .registry import METHODS, MethodInfo, build_method, known_methods, method_info

__all__ = ["METHODS", "MethodInfo", "build_method", "known_methods", "method_info"]
