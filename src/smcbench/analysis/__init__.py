"""Analyses of a suite's results: curves, matching sparsity, layerwise sparsity, mask IoU, weight
drift, ablations, cost, and the figures and tables of the report (SPEC §4).

Everything here is computed from ``results/<suite>/results.csv``, ``results/<suite>/layerwise.csv``
(every run's per-tensor sparsity) and the per-run files results.csv points to
(``mask.safetensors``, ``drift.csv``); no number is typed by hand. Importing this package is cheap: pandas, matplotlib, seaborn
and torch load inside the functions that need them. The command line is
:func:`smcbench.analysis.cli.main`; the demo prints
:func:`smcbench.analysis.matching.format_terminal_table` at its end.
"""

__all__ = ["AnalysisInputError"]


class AnalysisInputError(Exception):
    """An input of the analyses is missing or malformed; the message names it and the fix."""
