"""Old import path of :mod:`smcbench.tasks.commonsense.synthetic` (kept while callers migrate)."""

from .commonsense.synthetic import *  # noqa: F401,F403
from .commonsense.synthetic import GENERATOR_VERSION, World  # noqa: F401
