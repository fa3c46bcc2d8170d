"""``python -m smcbench``: run a step, through the warm job server when one is running."""

import os
import sys


def _entry() -> int:
    sock = os.environ.get("SMCBENCH_SERVER")
    if sock and os.path.exists(sock) and (len(sys.argv) < 2 or sys.argv[1] in ("train", "mask", "prepare", "pretrained", "results", "analyze")):
        from .client import run_via_server

        code = run_via_server(sock, sys.argv[1:])
        if code is not None:
            return code
    from .cli import main

    return main()


sys.exit(_entry())
