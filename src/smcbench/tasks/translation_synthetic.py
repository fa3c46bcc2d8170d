"""Old import path of :mod:`smcbench.tasks.translation.synthetic` (kept while callers migrate)."""

from .translation.synthetic import *  # noqa: F401,F403
