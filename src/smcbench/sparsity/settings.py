"""Typed settings of the sparse methods (no torch: config validation imports this at planning).

Each method declares one frozen dataclass here and names it in its ``MethodInfo.settings``. The
config's ``methods.<name>`` mapping (merged with a dataset's ``method_overrides``) is turned into
that dataclass by :func:`parse_settings`: values are converted to the declared type, range-checked
by the class's ``check()``, and an unknown key is an error naming the key and the closest valid
one. The training job builds the method from the same dataclass, so planning refuses exactly what
a job would refuse.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

__all__ = ["MethodSettings", "NoSettings", "DistillSettings", "IMPDistillSettings", "IMPSettings", "GMPSettings", "SnipSettings", "RigLSettings",
           "SettingsError", "parse_settings"]


class SettingsError(ValueError):
    """A method setting that no job would accept; the message names method, key and value."""


def _closest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (valid: {', '.join(valid) or 'none'})"


def _convert(method: str, key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise SettingsError(f"methods.{method}.{key}={value!r} is not a boolean")
    if kind is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise SettingsError(f"methods.{method}.{key}={value!r} is not an integer")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(float(value)):
            raise SettingsError(f"methods.{method}.{key}={value!r} is not a number")
        return float(value)
    if kind is dict:
        if not isinstance(value, Mapping):
            raise SettingsError(f"methods.{method}.{key}={value!r} is not a mapping")
        return dict(value)
    return value


@dataclass(frozen=True)
class MethodSettings:
    """Base of every method's settings. Subclasses add typed fields with defaults and ``check()``."""

    method: ClassVar[str] = "?"

    def check(self, method: str) -> None:
        """Raise :class:`SettingsError` for an out-of-range value (called after type conversion)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _range(self, method: str, key: str, lo: float | None, hi: float | None, lo_open: bool = False,
               hi_open: bool = False) -> None:
        v = getattr(self, key)
        bad = ((lo is not None and (v < lo or (lo_open and v == lo)))
               or (hi is not None and (v > hi or (hi_open and v == hi))))
        if bad:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            raise SettingsError(f"methods.{method}.{key}={v!r} is outside {left}{'-inf' if lo is None else lo}, "
                                f"{'inf' if hi is None else hi}{right}")


@dataclass(frozen=True)
class NoSettings(MethodSettings):
    """A method without settings (dense, one-shot magnitude/random)."""


@dataclass(frozen=True)
class IMPSettings(MethodSettings):
    """Iterative magnitude pruning (``lth``, ``imp_lrr``).

    Attributes:
        prune_fraction: the fraction of the remaining weights each round prunes, in (0, 1); round
            k's target is ``1 - (1 - prune_fraction)**k`` and must equal the level's target.
    """

    prune_fraction: float = 0.2

    def check(self, method: str) -> None:
        self._range(method, "prune_fraction", 0.0, 1.0, lo_open=True, hi_open=True)

    def check_level(self, method: str, k: int, target_sparsity: float) -> None:
        """Round ``k`` must have the target this prune fraction gives (else every job refuses)."""
        expected = 1.0 - (1.0 - self.prune_fraction) ** int(k)
        if abs(float(target_sparsity) - expected) > 1e-6:
            raise SettingsError(f"methods.{method}.prune_fraction={self.prune_fraction} gives round {k} the sparsity "
                                f"{expected:.6g}, but the level's target is {float(target_sparsity):.6g} "
                                f"(IMP levels are 1-(1-prune_fraction)**k)")


@dataclass(frozen=True)
class GMPSettings(MethodSettings):
    """Gradual magnitude pruning (Zhu & Gupta's cubic schedule).

    Attributes:
        t0: fraction of training at which pruning starts, in [0, 1].
        t1: fraction of training at which the target is reached, in [0, 1], greater than t0.
        delta_t: optimizer steps between two pruning events (>= 1); a final prune at t1 always.
    """

    t0: float = 0.1
    t1: float = 0.8
    delta_t: int = 1000

    def check(self, method: str) -> None:
        self._range(method, "t0", 0.0, 1.0)
        self._range(method, "t1", 0.0, 1.0)
        if not self.t0 < self.t1:
            raise SettingsError(f"methods.{method}: t0={self.t0} must be < t1={self.t1}")
        self._range(method, "delta_t", 1, None)


@dataclass(frozen=True)
class SnipSettings(MethodSettings):
    """SNIP connection sensitivity.

    Attributes:
        num_batches: training batches whose gradients are summed for ``|g * w|`` (>= 1).
    """

    num_batches: int = 1

    def check(self, method: str) -> None:
        self._range(method, "num_batches", 1, None)


@dataclass(frozen=True)
class RigLSettings(MethodSettings):
    """RigL dynamic sparse training from a before-training mask.

    Attributes:
        delta_t: optimizer steps between two drop/grow updates (>= 1).
        alpha: initial fraction of each layer's active weights dropped and regrown, in (0, 1].
        alpha_min: the fraction at the end of the cosine decay, in [0, alpha].
        t_end: fraction of training after which the mask stays fixed, in (0, 1].
        init_settings: the settings of the before-training method the mask starts from (e.g.
            snip's ``num_batches``); checked with that method's class. A mask computed in the job
            equals the one-shot method's when these agree.
    """

    delta_t: int = 1000
    alpha: float = 0.5
    alpha_min: float = 0.005
    t_end: float = 1.0
    init_settings: dict = field(default_factory=dict)

    def check(self, method: str) -> None:
        self._range(method, "delta_t", 1, None)
        self._range(method, "alpha", 0.0, 1.0, lo_open=True)
        self._range(method, "alpha_min", 0.0, self.alpha)
        self._range(method, "t_end", 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class DistillSettings(MethodSettings):
    """Settings of a method with ``MethodInfo.distill_from_dense`` (subclass it to add the
    method's own): loss = ``(1 - kd_alpha) * task + kd_alpha * kd_temperature**2 * KL(teacher || student)``.

    Attributes:
        kd_alpha: weight of the distillation term, in [0, 1] (0: the task loss alone).
        kd_temperature: softmax temperature T of teacher and student, > 0.
    """

    kd_alpha: float = 0.5
    kd_temperature: float = 2.0

    def check(self, method: str) -> None:
        self._range(method, "kd_alpha", 0.0, 1.0)
        self._range(method, "kd_temperature", 0.0, None, lo_open=True)


@dataclass(frozen=True)
class IMPDistillSettings(IMPSettings, DistillSettings):
    """IMP with learning-rate rewinding and distillation from the dense fine-tune (``imp_lrr_kd``).

    Attributes:
        prune_fraction: as for IMP, in (0, 1).
        kd_alpha: weight of the distillation term, in [0, 1].
        kd_temperature: softmax temperature T, > 0.
    """

    def check(self, method: str) -> None:
        IMPSettings.check(self, method)
        DistillSettings.check(self, method)


def parse_settings(cls: type[MethodSettings], method: str, raw: Mapping[str, Any] | None) -> MethodSettings:
    """``raw`` (a config mapping) as ``cls``: converted, defaulted, range-checked.

    Raises SettingsError for a non-mapping, an unknown key (naming the closest valid key), a value
    of the wrong type or out of range."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SettingsError(f"settings of method {method!r} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    valid = list(fields)
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise SettingsError(f"unknown setting {key!r} for method {method!r}{_closest(str(key), valid)}")
        kind = fields[key].type
        kind = {"float": float, "int": int, "bool": bool, "dict": dict, "str": str}.get(kind, kind) \
            if isinstance(kind, str) else kind
        values[key] = _convert(method, key, value, kind)
    obj = cls(**values)
    obj.check(method)
    return obj
