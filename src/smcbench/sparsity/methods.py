"""The sparse methods of SPEC §2, built by name through ``registry.build_method``.

Every method selects with :func:`~smcbench.sparsity.select.select_global` (exact count, deterministic
tie-break), so the realized sparsity equals ``round(s * N) / N`` over the scope for every method.

==================  =========================  =================================================
class               registry names             what it does
==================  =========================  =================================================
Dense               dense                      nothing
LotteryTicket       lth                        IMP round k: prune to s_k among round k-1's
                                               survivors (global magnitude), rewind survivors
                                               to ``ctx.rewind_state``
IMPLearning...      imp_lrr                    the same; survivors keep their trained values
OneShotMagnitude    omp_after, omp_before      global magnitude to s, once
OneShotRandom       random_after, random_before global seeded random scores to s, once
GradualMagnitude    gmp                        cubic schedule to s between t0 and t1
Snip                snip                       global |g * w| on the pre-trained weights
RigL                <init>+rigl                drop/grow per layer every delta_t steps
==================  =========================  =================================================
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import SparseMethod, SparsityContext
from .mask import Mask, reset_optimizer_state_
from .registry import validate_target
from .scores import MagnitudeScorer, RandomScorer, Scorer, SnipScorer
from .select import Selection, num_to_prune, select_global

__all__ = ["Dense", "MaskedMethod", "LotteryTicket", "IMPLearningRateRewinding", "OneShotMagnitude",
           "OneShotRandom", "GradualMagnitude", "Snip", "RigL", "prune_to", "gmp_sparsity",
           "gmp_prune_steps", "rigl_drop_fraction", "rewind_"]


def prune_to(ctx: SparsityContext, scorer: Scorer, target_sparsity: float,
             eligible: Mask | None = None) -> tuple[Mask, Selection]:
    """Global selection over ``ctx.scope``: prune exactly ``num_to_prune(target, N)`` weights.

    ``eligible`` (a mask) forces its pruned entries to stay pruned (they count towards the target).
    Returns the new mask and the selection record (threshold, ties).
    """
    scores = scorer.score(ctx)
    numel = sum(p.numel() for p in ctx.parameters_in_scope().values())
    k = num_to_prune(target_sparsity, numel)
    sel = select_global(scores, k, absolute=scorer.absolute, eligible=eligible)
    return Mask(sel.mask), sel


def _check_mask_for(ctx: SparsityContext, mask: Mask, what: str, exact_target: bool = True) -> None:
    """A given mask must cover exactly the scope and (optionally) realize the target exactly."""
    if list(mask) != list(ctx.scope) and set(mask) != set(ctx.scope):
        extra, missing = set(mask) - set(ctx.scope), set(ctx.scope) - set(mask)
        raise ValueError(f"{what} does not match the scope: missing {sorted(missing)[:3]}, "
                         f"extra {sorted(extra)[:3]}")
    if exact_target:
        want = num_to_prune(ctx.target_sparsity, mask.numel())
        if mask.num_pruned() != want:
            raise ValueError(f"{what} prunes {mask.num_pruned()} of {mask.numel()} weights, but target "
                             f"{ctx.target_sparsity} needs exactly {want}")


@torch.no_grad()
def rewind_(ctx: SparsityContext) -> int:
    """Copy ``ctx.rewind_state`` into the model's parameters (every name it holds). Returns the
    number of tensors rewound; raises ValueError on a missing state, unknown name or bad shape."""
    if ctx.rewind_state is None:
        raise ValueError("rewinding needs ctx.rewind_state (the pre-trained weights and seeded head "
                         "init, keyed by parameter name), got None")
    named = dict(ctx.model.named_parameters())
    unknown = [n for n in ctx.rewind_state if n not in named]
    if unknown:
        raise ValueError(f"rewind_state names not in the model: {unknown[:5]}")
    for n, t in ctx.rewind_state.items():
        p = named[n]
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError(f"rewind_state[{n!r}] has shape {tuple(t.shape)}, parameter {tuple(p.shape)}")
        p.copy_(t.to(device=p.device, dtype=p.dtype))
    return len(ctx.rewind_state)


class Dense(SparseMethod):
    """No pruning: the dense fine-tune every sparse method is compared with."""

    def compute_mask(self, ctx: SparsityContext) -> Mask | None:
        """Always ``None`` (no mask)."""
        return None


class MaskedMethod(SparseMethod):
    """Shared machinery of the engine's methods: a scorer, selection stats, optimizer-state reset.

    Subclasses set :attr:`scorer` (or override :meth:`make_scorer`) and may override
    :meth:`compute_mask`. A method registered with ``init_mask_from`` uses ``ctx.prev_mask`` (the
    ``mask`` rule's before-training mask) and checks it realizes the target exactly; without one
    it computes its own mask (and says so in the log).
    """

    scorer: Scorer = MagnitudeScorer()

    def __init__(self, name: str, info, settings: dict[str, Any] | None = None):
        super().__init__(name, info, settings)
        self.last_selection: Selection | None = None
        self._restored_selection: dict[str, Any] | None = None
        self.target_sparsity: float | None = None

    def _selection_summary(self) -> dict[str, Any]:
        sel = self.last_selection
        if sel is not None:
            return {"threshold": sel.threshold, "ties_at_threshold": sel.ties_at_threshold,
                    "ties_pruned": sel.ties_pruned}
        return dict(self._restored_selection or {"threshold": None, "ties_at_threshold": 0, "ties_pruned": 0})

    def state_dict(self) -> dict[str, Any]:
        """The mask, the target and the last selection's summary (threshold, ties)."""
        out = super().state_dict()
        out.update(target_sparsity=self.target_sparsity, selection=self._selection_summary())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.target_sparsity = state.get("target_sparsity", self.target_sparsity)
        self.last_selection = None
        self._restored_selection = dict(state.get("selection") or {})

    def make_scorer(self, ctx: SparsityContext) -> Scorer:
        """The criterion of this method (default: :attr:`scorer`)."""
        return self.scorer

    def compute_mask(self, ctx: SparsityContext) -> Mask | None:
        """Global selection of the scope's weights to exactly ``ctx.target_sparsity``."""
        validate_target(ctx.target_sparsity, self.name)
        mask, self.last_selection = prune_to(ctx, self.make_scorer(ctx), ctx.target_sparsity)
        return mask

    def _starting_mask(self, ctx: SparsityContext) -> Mask:
        if self.info.init_mask_from and ctx.prev_mask is not None:
            _check_mask_for(ctx, ctx.prev_mask, f"ctx.prev_mask (from {self.info.init_mask_from!r})")
            return ctx.prev_mask.clone()
        if self.info.init_mask_from:
            ctx.log(f"{self.name}: no ctx.prev_mask given; computing the {self.info.init_mask_from!r} mask here")
        return self.compute_mask(ctx)

    def on_train_begin(self, ctx: SparsityContext) -> None:
        """Take or compute the starting mask, apply it to weights and optimizer state."""
        self.target_sparsity = validate_target(ctx.target_sparsity, self.name)
        self.mask = self._starting_mask(ctx)
        self.mask.apply_(ctx.model)
        self.mask.apply_to_optimizer_state_(ctx.optimizer, ctx.model)

    def stats(self) -> dict[str, Any]:
        """Realized sparsity of the current mask, the target, and the last selection's threshold
        and tie counts."""
        out = super().stats()
        out["target_sparsity"] = self.target_sparsity
        out.update(self._selection_summary())
        return out


class OneShotMagnitude(MaskedMethod):
    """One-shot global magnitude pruning (``omp_after`` on the dense fine-tune, ``omp_before`` on
    the pre-trained weights)."""

    scorer = MagnitudeScorer()


class OneShotRandom(MaskedMethod):
    """One-shot global random pruning with seeded uniform scores (exact count)."""

    scorer = RandomScorer()


class Snip(MaskedMethod):
    """SNIP: global ``|g * w|`` on the pre-trained weights over ``num_batches`` batches (default 1);
    ties (e.g. the zero scores of embedding rows no batch touched) are broken by flat index, so
    the realized sparsity equals the target."""

    def make_scorer(self, ctx: SparsityContext) -> Scorer:
        """A :class:`SnipScorer` with ``settings['num_batches']``."""
        return SnipScorer(self.config.num_batches)


class LotteryTicket(MaskedMethod):
    """IMP with rewinding to ``ctx.rewind_state`` (``lth``).

    Round k starts from round k-1's trained weights with ``ctx.prev_mask`` = round k-1's mask
    (``None`` at round 1, whose start weights are the dense fine-tune). It prunes, among the
    survivors only, down to exactly ``ctx.target_sparsity`` = 1 - (1 - prune_fraction)^k, i.e.
    ``prune_fraction`` of the remaining weights, then rewinds the survivors (and every other
    parameter in ``rewind_state``) to the pre-trained weights and seeded head init.
    """

    rewind = True

    def _prune_fraction(self) -> float:
        return self.config.prune_fraction

    def compute_mask(self, ctx: SparsityContext) -> Mask:
        """Global magnitude among round k-1's survivors to exactly ``ctx.target_sparsity``."""
        s = validate_target(ctx.target_sparsity, self.name)
        f, k = self._prune_fraction(), int(ctx.round)
        if k < 1:
            raise ValueError(f"{self.name}: ctx.round={ctx.round!r} (IMP rounds start at 1)")
        expected = 1.0 - (1.0 - f) ** k
        if abs(s - expected) > 1e-6:
            raise ValueError(f"{self.name}: round {k} with prune_fraction {f} means sparsity {expected:.6g}, "
                             f"but ctx.target_sparsity={s} (level and round disagree)")
        prev = ctx.prev_mask
        if prev is not None:
            _check_mask_for(ctx, prev, "ctx.prev_mask (round k-1)", exact_target=False)
            n = prev.numel()
            prev_expected = 1.0 - (1.0 - f) ** (k - 1)
            if abs(prev.sparsity() - prev_expected) > 1.0 / n + 1e-9:
                raise ValueError(f"{self.name}: round {k - 1}'s mask has sparsity {prev.sparsity():.6g}, "
                                 f"expected {prev_expected:.6g} (is prev_mask from the right round?)")
        elif k > 1:
            raise ValueError(f"{self.name}: round {k} needs ctx.prev_mask (round {k - 1}'s mask), got None")
        mask, self.last_selection = prune_to(ctx, MagnitudeScorer(), s, eligible=prev)
        return mask

    def on_train_begin(self, ctx: SparsityContext) -> None:
        """Prune among the survivors, rewind (``lth`` only), apply the mask."""
        self.target_sparsity = validate_target(ctx.target_sparsity, self.name)
        self.mask = self.compute_mask(ctx)
        if self.rewind:
            n = rewind_(ctx)
            ctx.log(f"{self.name}: rewound {n} tensors to rewind_state")
        self.mask.apply_(ctx.model)
        self.mask.apply_to_optimizer_state_(ctx.optimizer, ctx.model)


class IMPLearningRateRewinding(LotteryTicket):
    """IMP with learning-rate rewinding (``imp_lrr``): like ``lth`` but survivors keep their
    trained values (the training loop restarts the learning-rate schedule)."""

    rewind = False


def gmp_sparsity(t: float, s: float, t0: float, t1: float) -> float:
    """Cubic schedule (Zhu & Gupta): 0 before ``t0``, ``s`` from ``t1`` on, and in between
    ``s * (1 - (1 - (t - t0) / (t1 - t0))**3)``."""
    if t >= t1:
        return s
    if t <= t0:
        return 0.0
    return s * (1.0 - (1.0 - (t - t0) / (t1 - t0)) ** 3)


def gmp_prune_steps(total_steps: int, t0: float, t1: float, delta_t: int) -> tuple[int, int, list[int]]:
    """``(t0_step, t1_step, steps)``: the optimizer-step counts after which GMP prunes.

    ``t0_step = round(t0 * T)``, ``t1_step = max(1, round(t1 * T))`` (clamped to ``T``); pruning
    happens after every multiple of ``delta_t`` in ``(t0_step, t1_step)`` and always at
    ``t1_step``, so the schedule ends exactly at ``s`` even when ``t1_step`` is not a multiple of
    ``delta_t`` or ``delta_t`` exceeds the window (then it is a single prune at ``t1_step``).
    """
    T = max(int(total_steps), 0)
    t1s = min(T, max(1, int(round(t1 * T)))) if T else 0
    t0s = min(int(round(t0 * T)), t1s)
    first = (t0s // delta_t + 1) * delta_t
    steps = list(range(first, t1s, delta_t)) + ([t1s] if t1s > 0 else [])
    return t0s, t1s, steps


class GradualMagnitude(MaskedMethod):
    """GMP: global magnitude pruning on the cubic schedule from 0 at ``t0`` to exactly ``s`` at
    ``t1`` (fractions of ``ctx.total_steps``), every ``delta_t`` steps plus a final prune at t1.
    Already pruned weights stay pruned; the optimizer state of newly pruned weights is zeroed.
    """

    def __init__(self, name: str, info, settings: dict[str, Any] | None = None):
        super().__init__(name, info, settings)
        self.t0, self.t1, self.delta_t = self.config.t0, self.config.t1, self.config.delta_t
        self._steps: set[int] = set()
        self._t0s = self._t1s = 0

    def compute_mask(self, ctx: SparsityContext) -> Mask:
        """The mask at the start of training: nothing pruned yet."""
        return Mask.ones_like(ctx.parameters_in_scope())

    def on_train_begin(self, ctx: SparsityContext) -> None:
        """Start dense (a mask of ones); plan the prune steps."""
        self.target_sparsity = validate_target(ctx.target_sparsity, self.name)
        self.mask = self.compute_mask(ctx)
        self._t0s, self._t1s, steps = gmp_prune_steps(ctx.total_steps, self.t0, self.t1, self.delta_t)
        self._steps = set(steps)
        if ctx.total_steps <= 0:  # no training at all: prune now so the result is still at s
            self._prune(ctx, self.target_sparsity)
        if self.delta_t > max(self._t1s - self._t0s, 1):
            ctx.log(f"{self.name}: delta_t={self.delta_t} exceeds the pruning window "
                    f"({self._t0s}..{self._t1s} steps); pruning once at step {self._t1s}")

    def _prune(self, ctx: SparsityContext, s_t: float) -> None:
        params = ctx.parameters_in_scope()
        numel = self.mask.numel()
        k = max(num_to_prune(s_t, numel), self.mask.num_pruned())
        if k == self.mask.num_pruned():
            return
        sel = select_global({n: p.detach() for n, p in params.items()}, k, absolute=True, eligible=self.mask)
        for n, p in params.items():
            newly = self.mask[n] & ~sel.mask[n]
            self.mask[n].copy_(sel.mask[n])
            if ctx.optimizer is not None:
                reset_optimizer_state_(ctx.optimizer, p, newly)
        self.last_selection = sel
        self.mask.invalidate_cache()
        self.mask.apply_(ctx.model)

    def on_after_optimizer_step(self, ctx: SparsityContext, step: int) -> None:
        """Enforce the mask; after optimizer step ``step + 1`` in the plan, prune to ``s_t``."""
        self.mask.apply_(ctx.model)
        t = step + 1
        if t in self._steps:
            self._prune(ctx, gmp_sparsity(t, self.target_sparsity, self._t0s, self._t1s))

    def on_train_end(self, ctx: SparsityContext) -> Mask | None:
        """Guarantee the final sparsity (if the loop stopped before t1, prune to s now)."""
        if self.mask.num_pruned() < num_to_prune(self.target_sparsity, self.mask.numel()):
            ctx.log(f"{self.name}: training ended before t1; pruning to the target now")
            self._prune(ctx, self.target_sparsity)
        return super().on_train_end(ctx)


def rigl_drop_fraction(t: int, total: int, alpha: float, alpha_min: float) -> float:
    """Cosine decay of the drop fraction: ``alpha`` at t=0 to ``alpha_min`` at t=total."""
    if total <= 0:
        return alpha_min
    x = min(max(t / total, 0.0), 1.0)
    return alpha_min + (alpha - alpha_min) * 0.5 * (1.0 + math.cos(math.pi * x))


class RigL(MaskedMethod):
    """RigL dynamic sparse training from a before-training mask (``snip+rigl``,
    ``random_before+rigl``, ``omp_before+rigl``).

    Every ``delta_t`` optimizer steps (while ``t < t_end * total_steps``), in
    :meth:`on_before_optimizer_step` (the gradients are still dense there), per layer:

    * drop the ``round(alpha_t * active)`` active weights of smallest ``|w|``;
    * grow as many weights with the largest dense ``|grad|`` among those inactive after the drop
      (a weight dropped and regrown in the same update is unchanged);
    * newly grown weights start at 0 and the Adam moments (``exp_avg``, ``exp_avg_sq``,
      ``max_exp_avg_sq``; SGD momentum) of every dropped and every newly grown weight are zeroed;
    * ``alpha_t`` decays by a cosine from ``alpha`` (0.5) to ``alpha_min`` (0.005).

    Per-layer and global sparsity stay exactly constant. Ties break by flat index (deterministic).
    """

    def __init__(self, name: str, info, settings: dict[str, Any] | None = None):
        super().__init__(name, info, settings)
        c = self.config
        self.delta_t, self.alpha, self.alpha_min, self.t_end = c.delta_t, c.alpha, c.alpha_min, c.t_end
        self.history: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        """Adds the update history (its length is the schedule position)."""
        out = super().state_dict()
        out["history"] = [dict(h) for h in self.history]
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [dict(h) for h in state.get("history", [])]

    def compute_mask(self, ctx: SparsityContext) -> Mask:
        """The mask of the init method (``info.init_mask_from``), computed here when the ``mask``
        rule did not provide one; its settings come from ``settings['init_settings']``."""
        from .registry import build_method

        init = build_method(self.info.init_mask_from, dict(self.config.init_settings))
        mask = init.compute_mask(ctx)
        self.last_selection = getattr(init, "last_selection", None)
        return mask

    def on_before_optimizer_step(self, ctx: SparsityContext, step: int) -> None:
        """On update steps, drop/grow from the dense gradients; then mask the gradients."""
        t = step + 1
        total = max(int(ctx.total_steps), 1)
        if t % self.delta_t == 0 and t < self.t_end * total:
            self._update(ctx, t, rigl_drop_fraction(t, total, self.alpha, self.alpha_min))
        self.mask.apply_to_grads_(ctx.model)

    @torch.no_grad()
    def _update(self, ctx: SparsityContext, t: int, alpha_t: float) -> None:
        params = ctx.parameters_in_scope()
        if not all(bool(torch.isfinite(p.grad).all()) for p in params.values() if p.grad is not None):
            # fp16 overflow: the loss scaler will skip this step; do not grow from inf/NaN grads
            ctx.log(f"{self.name}: non-finite gradients at step {t}; mask update skipped")
            self.history.append({"step": t, "alpha": alpha_t, "dropped": 0, "grown": 0, "skipped": True})
            return
        dropped_total = grown_new_total = 0
        for n, p in params.items():
            m = self.mask[n]
            numel = m.numel()
            active = int(m.count_nonzero())
            n_drop = num_to_prune(alpha_t, active)
            if p.grad is None or n_drop == 0 or active == numel:
                continue
            # drop: keep the (active - n_drop) largest |w| among the active
            after_drop = select_global({n: p.detach()}, numel - active + n_drop, absolute=True,
                                       eligible={n: m}).mask[n]
            # grow: the n_drop largest dense |grad| among the inactive (after the drop)
            grow = select_global({n: p.grad}, numel - n_drop, absolute=True,
                                 eligible={n: ~after_drop}).mask[n]
            new = after_drop | grow
            newly = new & ~m
            dropped = m & ~new
            changed = newly | dropped
            p.masked_fill_(changed, 0.0)
            if ctx.optimizer is not None:
                reset_optimizer_state_(ctx.optimizer, p, changed)
            m.copy_(new)
            dropped_total += int(dropped.count_nonzero())
            grown_new_total += int(newly.count_nonzero())
        self.mask.invalidate_cache()
        self.history.append({"step": t, "alpha": alpha_t, "dropped": dropped_total, "grown": grown_new_total})

    def stats(self) -> dict[str, Any]:
        """Adds the number of mask updates and of weights regrown in total."""
        out = super().stats()
        out["rigl_updates"] = len(self.history)
        out["rigl_regrown"] = sum(h["grown"] for h in self.history)
        return out
