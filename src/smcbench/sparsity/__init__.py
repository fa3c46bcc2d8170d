"""The sparsity engine: masks, scopes, scores, exact global selection, methods.

Model-agnostic: it imports torch and nothing of ``smcbench.tasks``. Importing this package is
cheap; the heavy modules load on first use.
"""

from .registry import (METHODS, MODULE_KINDS, SCOPES, MethodInfo, build_method, known_methods,
                       method_info, parse_module_scope, validate_scope_name, validate_target)

__all__ = ["METHODS", "MODULE_KINDS", "SCOPES", "MethodInfo", "build_method", "known_methods",
           "method_info", "parse_module_scope", "validate_scope_name", "validate_target"]
