"""The sparsity engine: masks, scopes, scores, exact global selection, methods.

Model-agnostic: it imports torch and nothing of ``smcbench.tasks``. Importing this package is
cheap; the heavy modules load on first use.
"""

from .registry import (METHODS, MODULE_KINDS, SCOPES, MethodInfo, build_method, check_run, known_methods,
                       method_info, method_settings, parse_module_scope, validate_method_settings,
                       validate_scope_name, validate_target)
from .settings import MethodSettings, SettingsError

__all__ = ["METHODS", "MODULE_KINDS", "SCOPES", "MethodInfo", "MethodSettings", "SettingsError", "build_method",
           "check_run", "known_methods", "method_info", "method_settings", "parse_module_scope",
           "validate_method_settings", "validate_scope_name", "validate_target"]
