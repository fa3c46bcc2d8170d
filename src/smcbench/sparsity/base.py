"""The contract between the sparsity engine and the one training loop.

The engine knows nothing of tasks. A training job hands it a :class:`SparsityContext` (the model,
the resolved scope, the target, the seed, a way to get gradients on training batches) and calls a
:class:`SparseMethod`'s hooks at fixed points of the loop:

    method.on_train_begin(ctx)              # build the mask (score + select), rewind, apply
    for step in range(ctx.total_steps):
        loss.backward()
        method.on_before_optimizer_step(ctx, step)   # masks gradients (RigL reads dense grads first)
        optimizer.step()
        method.on_after_optimizer_step(ctx, step)    # enforce the mask; GMP / RigL updates
    mask = method.on_train_end(ctx)         # the final mask (saved with the run)

A method owns its state: the mask, its schedule position, its history and any cache. The loop
saves ``method.state_dict()`` in its resumable checkpoint and, on resume, calls
``method.on_train_begin(ctx)`` then ``method.load_state_dict(state)``; it never touches the
method's tensors itself.

A new method is one subclass of :class:`SparseMethod` plus one entry in ``registry.METHODS`` and
one key under ``methods:`` in the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from .mask import Mask

if TYPE_CHECKING:
    from .registry import MethodInfo

# A callable returning an iterator of *scalar training losses*, one per batch, for ``n`` batches.
# The engine calls ``.backward()`` on each loss itself; the task decides what a batch is.
LossBatches = Callable[[int], Iterator[torch.Tensor]]


@dataclass
class SparsityContext:
    """Everything a sparse method may look at. Built by the training job, never by the engine.

    Attributes:
        model: the model being trained; its weights are already the job's starting weights
            (pre-trained for "before"/"during" methods, the dense fine-tune for "after" methods,
            round k-1's trained weights for IMP).
        scope: the resolved names of the prunable parameters (see ``scopes.resolve_scope``).
        target_sparsity: the nominal sparsity s of this run, in (0, 1); 0 for ``dense``.
        seed: the run's seed (random scores, RigL noise, SNIP batch choice).
        total_steps: optimizer steps the training loop will take.
        loss_batches: gradients on training data for SNIP / oBERT style scores.
        optimizer: set by the loop before the first step (RigL resets Adam state through it).
        prev_mask: the mask to start from: round k-1's mask for IMP, the before-training mask for
            ``<init>+rigl`` and the one-shot "before" methods when computed by the ``mask`` rule.
        rewind_state: parameter tensors to rewind survivors to (LTH: pre-trained weights and the
            seeded init of new heads), keyed by parameter name.
        round: the IMP round (1-based) for iterative methods, else 1.
        settings: the method's own settings from config (already merged with per-task overrides).
        log: a callable taking a string, for the run's log.
        resuming: True when the loop will call ``load_state_dict`` right after
            ``on_train_begin`` (a resumed job): a method may skip expensive work there whose
            result the restored state replaces (the weights are restored by the loop too).
    """

    model: torch.nn.Module
    scope: list[str]
    target_sparsity: float
    seed: int
    total_steps: int
    loss_batches: LossBatches | None = None
    optimizer: torch.optim.Optimizer | None = None
    prev_mask: Mask | None = None
    rewind_state: dict[str, torch.Tensor] | None = None
    round: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print
    resuming: bool = False

    def parameters_in_scope(self) -> dict[str, torch.nn.Parameter]:
        """The prunable parameters, by name, in model order."""
        named = dict(self.model.named_parameters())
        return {name: named[name] for name in self.scope}


def _registered() -> dict:
    from .registry import METHODS

    return METHODS


class SparseMethod:
    """Base class of every sparse method. Subclasses override what they need.

    Built by :func:`~smcbench.sparsity.registry.build_method`, which passes the registry entry
    (``info``: timing, start weights, which before-training mask it starts from) and the method's
    config settings. One class may serve several names (``omp_before`` and ``omp_after`` are
    both one-shot magnitude; only where they start differs).
    """

    def __init__(self, name: str, info: "MethodInfo", settings: dict[str, Any] | None = None):
        from .registry import method_settings

        from .settings import MethodSettings

        self.name = name
        self.info = info
        #: the typed settings (the dataclass named by ``info.settings``), checked on construction
        if isinstance(settings, MethodSettings):
            self.config = settings
            self.settings = settings.to_dict()
        else:
            self.settings = dict(settings or {})
            self.config = method_settings(name, self.settings) if name in _registered() else None
        self.mask: Mask | None = None

    # --- state (resume) --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything that changes during training (tensors, numbers, lists, dicts), for the
        resumable checkpoint. Subclasses extend it (schedule position, history)."""
        return {"mask": None if self.mask is None else {n: t.detach().clone() for n, t in self.mask.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` after :meth:`on_train_begin` of a resumed run. The mask is a
        new :class:`Mask` object, so nothing cached from the start-of-training mask survives."""
        mask = state.get("mask")
        self.mask = None if mask is None else Mask({n: t.to(torch.bool) for n, t in mask.items()})

    # --- before training -------------------------------------------------------------------
    def compute_mask(self, ctx: SparsityContext) -> Mask | None:
        """Score and select: the mask this method prunes to at the start of training.

        Pure with respect to ``ctx.model``'s weights (it does not modify them). ``None`` means
        no mask (dense). Called by the ``mask`` rule for before-training masks (computed once,
        shared by e.g. ``snip`` and ``snip+rigl``) and by :meth:`on_train_begin` otherwise.
        """
        return None

    def on_train_begin(self, ctx: SparsityContext) -> None:
        """Build or take the starting mask, rewind if the method says so, apply it to weights."""
        self.mask = ctx.prev_mask if self.info.init_mask_from else self.compute_mask(ctx)
        if self.mask is not None:
            self.mask.apply_(ctx.model)

    # --- every step ------------------------------------------------------------------------
    def on_before_optimizer_step(self, ctx: SparsityContext, step: int) -> None:
        """Called after ``backward()``, before ``optimizer.step()``: zero pruned gradients."""
        if self.mask is not None:
            self.mask.apply_to_grads_(ctx.model)

    def on_after_optimizer_step(self, ctx: SparsityContext, step: int) -> None:
        """Called after ``optimizer.step()``: re-zero pruned weights (weight decay, Adam)."""
        if self.mask is not None:
            self.mask.apply_(ctx.model)

    # --- after training --------------------------------------------------------------------
    def on_train_end(self, ctx: SparsityContext) -> Mask | None:
        """The final mask of the run (``None`` for dense)."""
        if self.mask is not None:
            self.mask.apply_(ctx.model)
        return self.mask

    # --- reporting ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """A small JSON-ready dict about the current mask (realized sparsity, counts).

        Engine methods add their last selection's threshold and tie counts.
        """
        if self.mask is None:
            return {"realized_sparsity": 0.0, "num_pruned": 0, "numel": 0}
        return {"realized_sparsity": self.mask.sparsity(), "num_pruned": self.mask.num_pruned(),
                "numel": self.mask.numel()}
