"""Pruning criteria: a score per weight of the scope; the lowest scores are pruned.

A scorer is any object with ``score(ctx) -> Mapping[name, Tensor]`` (scores in the order of
``ctx.scope``) and a boolean attribute ``absolute``: when True the selection ranks ``|score|``
without materializing it, which lets magnitude pruning pass the weights themselves (no copy).
Second-order criteria (oBERT) plug in as another :class:`Scorer`.
"""

from __future__ import annotations

import zlib
from typing import Iterator, Mapping

import torch

from .base import SparsityContext

__all__ = ["Scorer", "MagnitudeScorer", "RandomScorer", "SnipScorer", "random_scores", "tensor_seed"]


class Scorer:
    """Interface of a pruning criterion.

    Subclasses implement :meth:`score`. Set ``absolute = True`` if the selection must rank the
    absolute value of the returned tensors.
    """

    absolute: bool = False

    def score(self, ctx: SparsityContext) -> Mapping[str, torch.Tensor]:
        """Scores by parameter name, for every name of ``ctx.scope``, in that order.

        Must not modify the model's weights. Higher = more important (kept).
        """
        raise NotImplementedError


class MagnitudeScorer(Scorer):
    """``|w|``: returns the weights themselves with ``absolute = True`` (no copy)."""

    absolute = True

    def score(self, ctx: SparsityContext) -> Mapping[str, torch.Tensor]:
        """The scope's parameters (detached views), ranked by absolute value."""
        return {n: p.detach() for n, p in ctx.parameters_in_scope().items()}


def tensor_seed(seed: int, name: str) -> int:
    """A 63-bit seed for one tensor: depends on the run seed and the parameter name only."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (1 << 63)


class _LazyRandom(Mapping[str, torch.Tensor]):
    """Uniform [0, 1) scores regenerated on every access from (seed, name): bitwise the same each
    time, on every device, and never all held in memory at once."""

    def __init__(self, shapes: dict[str, tuple[torch.Size, torch.device]], seed: int):
        self._shapes, self._seed = shapes, seed

    def __getitem__(self, name: str) -> torch.Tensor:
        shape, device = self._shapes[name]
        gen = torch.Generator(device="cpu").manual_seed(tensor_seed(self._seed, name))
        return torch.rand(shape, generator=gen, dtype=torch.float32).to(device)

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


def random_scores(params: Mapping[str, torch.Tensor], seed: int) -> Mapping[str, torch.Tensor]:
    """Seeded uniform scores for ``params`` (a lazy mapping; generated on CPU, then moved)."""
    return _LazyRandom({n: (p.shape, p.device) for n, p in params.items()}, seed)


class RandomScorer(Scorer):
    """Global random ranking: uniform scores seeded by ``ctx.seed`` and the parameter name, so the
    pruned count is exact (unlike per-layer Bernoulli masks)."""

    def score(self, ctx: SparsityContext) -> Mapping[str, torch.Tensor]:
        """Lazy seeded uniform scores for the scope."""
        return random_scores(ctx.parameters_in_scope(), ctx.seed)


class SnipScorer(Scorer):
    """SNIP connection sensitivity ``|g * w|`` with ``g`` summed over ``num_batches`` batches.

    Gradients come from ``ctx.loss_batches(num_batches)`` (scalar losses; this scorer calls
    ``backward``). The model runs in eval mode (no dropout: the scores are deterministic) and is
    put back in its previous mode; weights are unchanged and all gradients are ``None`` after.
    A scope tensor that gets no gradient (unused in the forward pass) scores 0 everywhere.
    The score tensors reuse the gradient buffers, so no extra model-sized memory is needed.
    """

    absolute = True

    def __init__(self, num_batches: int = 1):
        if int(num_batches) < 1:
            raise ValueError(f"snip num_batches={num_batches!r} (must be an integer >= 1)")
        self.num_batches = int(num_batches)

    def score(self, ctx: SparsityContext) -> Mapping[str, torch.Tensor]:
        """Accumulate gradients over the batches and return ``g * w`` per scope tensor."""
        if ctx.loss_batches is None:
            raise ValueError("snip needs ctx.loss_batches (gradients on training batches), got None")
        model = ctx.model
        params = ctx.parameters_in_scope()
        was_training = model.training
        model.eval()
        model.zero_grad(set_to_none=True)
        seen = 0
        try:
            with torch.enable_grad():
                for loss in ctx.loss_batches(self.num_batches):
                    if loss.dim() != 0:
                        raise ValueError(f"loss_batches must yield scalar losses, got shape {tuple(loss.shape)}")
                    loss.backward()
                    seen += 1
            if seen == 0:
                raise ValueError("ctx.loss_batches yielded no batch")
            scores: dict[str, torch.Tensor] = {}
            no_grad = []
            with torch.no_grad():
                for n, p in params.items():
                    g = p.grad
                    if g is None:
                        no_grad.append(n)
                        scores[n] = torch.zeros_like(p, dtype=torch.float32)
                    else:
                        scores[n] = g.mul_(p.detach())  # the grad buffer becomes the score
                        p.grad = None
            if no_grad:
                ctx.log(f"snip: {len(no_grad)} scope tensor(s) got no gradient and score 0: {no_grad[:3]}")
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        if seen < self.num_batches:
            ctx.log(f"snip: asked for {self.num_batches} batches, loss_batches gave {seen}")
        return scores
