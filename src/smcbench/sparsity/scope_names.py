"""Scope names without torch: config validation imports this cheaply.

The names are defined once, in :mod:`smcbench.sparsity.registry`; this module re-exports them.
Resolution to parameters lives in :mod:`smcbench.sparsity.scopes` (imports torch).
"""

from .registry import MODULE_KINDS, SCOPES, parse_module_scope, validate_scope_name

__all__ = ["MODULE_KINDS", "SCOPES", "parse_module_scope", "validate_scope_name"]
