"""Old import path of :mod:`smcbench.tasks.translation.opus` (kept while callers migrate)."""

from .translation.opus import *  # noqa: F401,F403
from .translation.opus import _read_parquet, find_layout, read_lines, read_opus100, read_pair  # noqa: F401
