"""``python -m smcbench.analysis <subcommand> …`` (same as ``python -m smcbench analyze …``)."""

import sys

from .cli import main

sys.exit(main())
