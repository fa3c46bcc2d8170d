"""Command line of the analyses: ``python -m smcbench analyze <subcommand> [options]``.

Subcommands (each writes fixed-name files under ``<out>/figures`` and ``<out>/tables``, see
:data:`smcbench.analysis.reports.OUTPUTS`): curves, matching, layerwise, iou, drift, embeddings,
obert, modulewise, cost, and ``all`` (every one of them). Missing runs and unreadable per-run files
are printed as ``warning: …`` lines on stderr, naming them; a missing or malformed results table
is an error (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import AnalysisInputError


def build_parser() -> argparse.ArgumentParser:
    from .reports import OUTPUTS

    p = argparse.ArgumentParser(prog="smcbench analyze", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="subcommand")
    for name in list(OUTPUTS) + ["all"]:
        outs = ", ".join(OUTPUTS[name]) if name in OUTPUTS else "every output above"
        s = sub.add_parser(name, help=f"writes {outs}")
        s.add_argument("--results", required=True, help="results/<suite>/results.csv")
        s.add_argument("--primary-metrics", default=None,
                       help="primary_metrics.json (default: beside results.csv)")
        s.add_argument("--config", default=None, help="resolved config.json (default: beside results.csv)")
        s.add_argument("--layerwise", default=None,
                       help="every run's per-tensor sparsity, layerwise.csv (default: beside results.csv)")
        s.add_argument("--out", default=None, help="suite folder to write figures/ and tables/ into "
                                                   "(default: the folder of results.csv)")
        s.add_argument("--root", default=".", help="folder the run_dir column is relative to (default: .)")
        s.add_argument("--value-column", default="value", choices=["value", "value_best_on_test"],
                       help="'value' (model selected on validation; default) or the paper's "
                            "'value_best_on_test' compatibility column")
        if name in ("matching", "all"):
            s.add_argument("--tolerance", type=float, default=None,
                           help="override config matching_tolerance (points of the metric)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one analysis subcommand; returns the exit status (0 ok, 2 bad input)."""
    from .reports import SUBCOMMANDS, Inputs, run_matching

    args = build_parser().parse_args(argv)
    try:
        inp = Inputs.load(args.results, args.primary_metrics, args.config, args.root, args.value_column,
                          args.layerwise)
        out = Path(args.out) if args.out else Path(args.results).parent
        todo = list(SUBCOMMANDS) if args.command == "all" else [args.command]
        for name in todo:
            if name == "matching":
                run_matching(inp, out, getattr(args, "tolerance", None))
            else:
                SUBCOMMANDS[name](inp, out)
    except AnalysisInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
