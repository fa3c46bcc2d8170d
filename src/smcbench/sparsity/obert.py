"""oBERT: second-order (Optimal Brain Surgeon) pruning with a block-diagonal empirical Fisher.

The criterion of Kurtic et al. (2022), the "stronger recipe" of the paper's Appendix C, with the
parts the paper's own code left out (blocks larger than 1, the OBS weight update; knowledge
distillation is the training loop's, declared by the registry entry).

Fisher. Over the m gradients ``g_1..g_m`` of m training batches (the model in eval mode, so the
gradients are deterministic), the empirical Fisher is ``F = damp * I + (1/m) * sum_j g_j g_j^T``.
It is never formed whole: the scope's weights are cut into blocks of ``B`` consecutive entries of
each flattened tensor (the last block of a tensor is zero-padded), and only the ``B x B`` diagonal
blocks are kept. Each block's inverse starts at ``I / damp`` and takes one Sherman-Morrison
(rank-1 Woodbury) step per gradient::

    F^-1  <-  F^-1 - (F^-1 g)(F^-1 g)^T / (m + g^T F^-1 g)

which after m steps is exactly ``(damp * I + (1/m) sum g g^T)^-1`` (:func:`woodbury_inverse`).
Gradients are masked by the previous round's mask, so already pruned weights stay decoupled.

Scores. ``rho_i = w_i^2 / (2 [F^-1]_ii)``: the loss increase of removing weight i alone, the
quadratic model's estimate. At ``B = 1`` it is ``w_i^2 (damp + mean_j g_ji^2) / 2``, the diagonal
(the paper's code's) case. Selection is the engine's exact global selection over the scope
(:func:`~smcbench.sparsity.select.select_global`), among the previous round's survivors.

OBS update. For the set ``Q`` of weights a block loses in this round, the surviving weights of the
block move by the multi-weight OBS step (the minimizer of ``d^T F d`` subject to ``w_Q + d_Q = 0``)::

    d = - F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q            (:func:`obs_block_update`)

(for one weight q this is ``-w_q F^-1 e_q / [F^-1]_qq``). At ``B = 1`` a block holds one weight and
the update is just the pruning itself.

Memory. The inverse blocks take ``4 * B`` bytes per weight (fp32). They are built for as many
blocks at a time as ``memory_budget_mb`` allows (a *chunk*), never for the whole scope when it does
not fit: each chunk gathers its own m gradients (m backward passes per chunk). Scores (4 bytes per
weight) are kept for the global selection; with more than one chunk the update pass rebuilds each
chunk's inverse and the corrections are buffered (4 bytes per weight of the scope) and applied
after the last chunk, so every chunk sees the same weights and chunked equals unchunked.

Recipe (:class:`OBert`, registered as ``obert``): iterative rounds like IMP (round k prunes
``prune_fraction`` of round k-1's survivors, starting from round k-1's trained weights), survivors
keep their values (learning-rate rewinding: the loop restarts the schedule), and the loss adds
distillation from the dense fine-tune (``alpha``, ``temperature``; the loop's KD hook).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch

from .base import SparsityContext
from .mask import Mask
from .methods import MaskedMethod
from .obert_settings import ObertSettings
from .registry import validate_target
from .scores import Scorer
from .select import num_to_prune, select_global
from .settings import parse_settings

__all__ = ["ObertSettings", "ObertScorer", "OBert", "Span", "plan_chunks", "woodbury_inverse",
           "obs_block_update", "block_inverse_diagonal"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: float64 bytes of inverse blocks the OBS update copies at a time (its temporaries are a few of these)
_UPDATE_BATCH_BYTES = 32 * 2**20


# --- blocks and chunks ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """Blocks ``b0..b1-1`` (of ``block_size`` consecutive weights) of one flattened tensor."""

    name: str
    numel: int
    b0: int
    b1: int

    @property
    def num_blocks(self) -> int:
        return self.b1 - self.b0


def plan_chunks(numels: Mapping[str, int], block_size: int, budget_bytes: float,
                itemsize: int = 4) -> list[list[Span]]:
    """Cut the tensors' blocks into chunks whose inverse blocks fit ``budget_bytes`` each.

    A tensor of n weights has ``ceil(n / B)`` blocks; a chunk holds at most
    ``floor(budget / (B * B * itemsize))`` blocks, taken in tensor order (a tensor may span
    several chunks, a chunk several tensors). Raises ValueError if not even one block fits.
    """
    B = int(block_size)
    per_block = B * B * itemsize
    cap = int(budget_bytes // per_block)
    if cap < 1:
        raise ValueError(f"a memory budget of {budget_bytes:.4g} bytes holds no {B}x{B} Fisher block "
                         f"({per_block} bytes)")
    chunks: list[list[Span]] = []
    cur: list[Span] = []
    room = cap
    for name, n in numels.items():
        nb = -(-int(n) // B)
        b = 0
        while b < nb:
            take = min(room, nb - b)
            cur.append(Span(name, int(n), b, b + take))
            b += take
            room -= take
            if room == 0:
                chunks.append(cur)
                cur, room = [], cap
    if cur:
        chunks.append(cur)
    return chunks


# --- the inverse Fisher blocks -------------------------------------------------------------------

def woodbury_inverse(grads: Iterable[torch.Tensor], num_blocks: int, block_size: int, num_grads: int,
                     damp: float, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
    """The inverses of the B x B diagonal blocks of ``damp * I + (1/m) sum g g^T``.

    Args:
        grads: the gradients, each a flat tensor of ``num_blocks * block_size`` entries (zero
            padded); at most ``num_grads`` of them are used.
        num_grads: m, the normalization of the Fisher (the number of gradients expected).

    Returns ``(finv, seen)``: ``finv`` of shape ``(num_blocks, B, B)`` (``(num_blocks, 1, 1)`` at
    B = 1, updated elementwise) and the number of gradients consumed. One Sherman-Morrison step
    per gradient; memory is the blocks plus a few gradient-sized temporaries.
    """
    B, nb, m = int(block_size), int(num_blocks), float(num_grads)
    finv = torch.eye(B, dtype=dtype, device=device).div_(damp).repeat(nb, 1, 1)
    seen = 0
    for g in grads:
        if seen >= num_grads:
            break
        g = g.to(device=finv.device, dtype=dtype).reshape(nb, B)
        if B == 1:
            f = finv.view(nb)  # f - (f g)^2 / (m + g^2 f) written as f m / (m + g^2 f): no cancellation
            denom = g.view(nb).square().mul_(f).add_(m)
            f.mul_(m).div_(denom)
        else:
            fg = torch.bmm(finv, g.unsqueeze(2)).squeeze(2)           # (nb, B)
            denom = (g * fg).sum(1, keepdim=True).add_(m)             # m + g^T F^-1 g
            u = fg.div_(denom.sqrt_())
            # the rank-1 downdate as one fused elementwise pass (batched baddbmm with a K=1
            # product measured ~10x slower on CPU)
            finv.addcmul_(u.unsqueeze(2), u.unsqueeze(1), value=-1.0)
        seen += 1
    return finv, seen


def block_inverse_diagonal(finv: torch.Tensor) -> torch.Tensor:
    """The diagonal of every block, flattened: ``[F^-1]_ii`` for each weight (padding included)."""
    return finv.diagonal(dim1=1, dim2=2).reshape(-1)


def obs_block_update(finv: torch.Tensor, w: torch.Tensor, prune: torch.Tensor) -> torch.Tensor:
    """The multi-weight OBS correction of each block: ``d = -F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q``.

    Args:
        finv: ``(nb, B, B)`` inverse Fisher blocks.
        w: ``(nb, B)`` the blocks' weights.
        prune: ``(nb, B)`` bool, the set Q of each block (may be empty).

    Returns ``d`` of shape ``(nb, B)`` in ``w``'s dtype, with ``d_Q = -w_Q`` exactly (the pruned
    weights land on 0) and zeros in blocks with nothing to prune. Blocks are grouped by ``|Q|``
    and each group's ``|Q| x |Q|`` systems are solved in one batched float64 solve, 32 MiB of
    blocks at a time.
    """
    nb, B = w.shape
    out = torch.zeros_like(w)
    counts = prune.sum(dim=1)
    step = max(1, _UPDATE_BATCH_BYTES // (8 * B * B))  # bounded float64 temporaries
    ar = torch.arange(B, device=w.device)
    for k in counts.unique().tolist():
        if k == 0:
            continue
        group = (counts == k).nonzero().squeeze(1)
        for start in range(0, group.numel(), step):
            rows = group[start:start + step]
            n = rows.numel()
            idx = prune[rows].nonzero()[:, 1].view(n, k)                 # Q of each block, ascending
            f_q = finv[rows.view(n, 1, 1), ar.view(1, B, 1), idx.unsqueeze(1)].to(torch.float64)  # F^-1[:, Q]
            f_qq = f_q.gather(1, idx.unsqueeze(2).expand(n, k, k))        # F^-1[Q, Q]   (n, k, k)
            wq = w[rows].to(torch.float64).gather(1, idx)                 # (n, k)
            x = torch.linalg.solve(f_qq, wq.unsqueeze(2))                 # (n, k, 1)
            d = torch.bmm(f_q, x).squeeze(2).neg_()
            d.scatter_(1, idx, -wq)                                       # exact zeros on Q
            out[rows] = d.to(w.dtype)
    return out


# --- gradients -----------------------------------------------------------------------------------

def _gradient_stream(ctx: SparsityContext, num_grads: int, spans: list[Span],
                     eligible: Mapping[str, torch.Tensor] | None, block_size: int,
                     counter: list[int]) -> Iterable[torch.Tensor]:
    """Yield, per training batch, the chunk's gradient (spans concatenated, zero padded, masked).

    The model is in eval mode and only the scope's parameters require gradients while this runs;
    both are restored afterwards, and every gradient is ``None`` again.
    """
    model = ctx.model
    params = ctx.parameters_in_scope()
    names = {s.name for s in spans}
    was_training = model.training
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    scope = set(params)
    B = block_size
    model.eval()
    model.zero_grad(set_to_none=True)
    try:
        for n, p in model.named_parameters():
            p.requires_grad_(n in scope)
        with torch.enable_grad():
            batches = ctx.loss_batches(num_grads)
            while counter[0] < num_grads:
                try:
                    loss = next(batches)
                except StopIteration:
                    break
                except RuntimeError as e:  # a generator that ran out of data inside
                    if "StopIteration" in str(e):
                        break
                    raise
                if loss.dim() != 0:
                    raise ValueError(f"loss_batches must yield scalar losses, got shape {tuple(loss.shape)}")
                loss.backward()
                parts = []
                with torch.no_grad():
                    for s in spans:
                        p = params[s.name]
                        lo, hi = s.b0 * B, min(s.b1 * B, s.numel)
                        if p.grad is None:
                            g = torch.zeros(hi - lo, dtype=torch.float32, device=p.device)
                        else:
                            g = p.grad.reshape(-1)[lo:hi].float()
                            if eligible is not None:
                                g = g * eligible[s.name].reshape(-1)[lo:hi].to(g.device)
                        pad = s.num_blocks * B - (hi - lo)
                        parts.append(torch.nn.functional.pad(g, (0, pad)) if pad else g)
                    flat = torch.cat(parts) if len(parts) > 1 else parts[0].clone()
                for n in names:
                    params[n].grad = None
                model.zero_grad(set_to_none=True)
                counter[0] += 1
                yield flat
    finally:
        model.zero_grad(set_to_none=True)
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)


# --- the scorer ------------------------------------------------------------------------------------

class ObertScorer(Scorer):
    """OBS saliency ``w^2 / (2 [F^-1]_ii)`` with block-diagonal inverse Fisher blocks.

    :meth:`score` builds the inverse blocks chunk by chunk (see :func:`plan_chunks`) and returns
    the scores; :meth:`obs_deltas` gives the OBS corrections for a new mask (reusing the blocks
    when the whole scope was one chunk, rebuilding them chunk by chunk otherwise). Weights are
    never modified here.
    """

    absolute = False

    def __init__(self, num_grads: int = 1024, damp: float = 1e-7, block_size: int = 1,
                 memory_budget_bytes: float = 4096 * 2**20, dtype: torch.dtype = torch.float32,
                 eligible: Mapping[str, torch.Tensor] | None = None, log: Callable[[str], None] | None = None):
        self.num_grads = int(num_grads)
        self.damp = float(damp)
        self.block_size = int(block_size)
        self.budget = float(memory_budget_bytes)
        self.dtype = dtype
        self.eligible = eligible
        self.log = log
        self._cached: list[torch.Tensor] | None = None  # inverse blocks, kept when one chunk
        self.chunks: list[list[Span]] = []
        self.info: dict[str, Any] = {}

    def _plan(self, ctx: SparsityContext) -> list[list[Span]]:
        numels = {n: p.numel() for n, p in ctx.parameters_in_scope().items()}
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        self.chunks = plan_chunks(numels, self.block_size, self.budget, itemsize)
        return self.chunks

    def _inverse(self, ctx: SparsityContext, spans: list[Span]) -> torch.Tensor:
        if ctx.loss_batches is None:
            raise ValueError("obert needs ctx.loss_batches (gradients on training batches), got None")
        counter = [0]
        nb = sum(s.num_blocks for s in spans)
        device = ctx.parameters_in_scope()[spans[0].name].device
        stream = _gradient_stream(ctx, self.num_grads, spans, self.eligible, self.block_size, counter)
        finv, seen = woodbury_inverse(stream, nb, self.block_size, self.num_grads, self.damp, self.dtype, device)
        if seen < self.num_grads:
            raise ValueError(f"obert: ctx.loss_batches gave {seen} of num_grads={self.num_grads} gradients; "
                             f"lower methods.obert.num_grads (to at most the batches of the training set)")
        self.info["backward_passes"] = self.info.get("backward_passes", 0) + seen
        return finv

    def score(self, ctx: SparsityContext) -> dict[str, torch.Tensor]:
        """Scores by scope name (fp32, the parameter's shape)."""
        t0 = time.perf_counter()
        params = ctx.parameters_in_scope()
        chunks = self._plan(ctx)
        B = self.block_size
        scores = {n: torch.empty(p.shape, dtype=torch.float32, device=p.device) for n, p in params.items()}
        clamped = 0
        tiny = torch.finfo(self.dtype).tiny
        self.info = {"chunks": len(chunks), "block_size": B, "num_grads": self.num_grads,
                     "fisher_bytes_per_chunk": max(sum(s.num_blocks for s in c) for c in chunks) * B * B *
                     torch.empty((), dtype=self.dtype).element_size()}
        cache = []
        for spans in chunks:
            finv = self._inverse(ctx, spans)
            diag = block_inverse_diagonal(finv)
            bad = diag <= 0
            if bool(bad.any()):  # round-off at tiny damp: treat as the smallest positive curvature
                clamped += int(bad.sum())
                diag = diag.clamp_min(tiny)
            off = 0
            for s in spans:
                lo, hi = s.b0 * B, min(s.b1 * B, s.numel)
                w = params[s.name].detach().reshape(-1)[lo:hi].to(self.dtype)
                rho = w.square().div_(diag[off:off + hi - lo].mul(2.0))
                scores[s.name].view(-1)[lo:hi] = rho.float()
                off += s.num_blocks * B
            if len(chunks) == 1:
                cache.append(finv)
            del finv, diag
        self._cached = cache if len(chunks) == 1 else None
        self.info["clamped_diagonal"] = clamped
        self.info["score_seconds"] = time.perf_counter() - t0
        if clamped and self.log:
            self.log(f"obert: {clamped} inverse-Fisher diagonal entries were <= 0 (round-off); clamped")
        return scores

    @torch.no_grad()
    def obs_deltas(self, ctx: SparsityContext, new_mask: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The OBS corrections (fp32, or the parameter's dtype if wider; by scope name) for pruning
        to ``new_mask`` from the current weights: ``-F^-1[:, Q] (F^-1[Q, Q])^-1 w_Q`` per block,
        Q = the weights kept by ``eligible`` (all, at round 1) and pruned by ``new_mask``. Only
        tensors with a correction appear."""
        t0 = time.perf_counter()
        params = ctx.parameters_in_scope()
        B = self.block_size
        chunks = self.chunks or self._plan(ctx)
        deltas: dict[str, torch.Tensor] = {}
        for i, spans in enumerate(chunks):
            finv = self._cached[0] if self._cached is not None else self._inverse(ctx, spans)
            ws, qs = [], []
            for s in spans:
                lo, hi = s.b0 * B, min(s.b1 * B, s.numel)
                pad = s.num_blocks * B - (hi - lo)
                w = params[s.name].detach().reshape(-1)[lo:hi].double()
                q = ~new_mask[s.name].reshape(-1)[lo:hi].to(w.device)
                if self.eligible is not None:
                    q &= self.eligible[s.name].reshape(-1)[lo:hi].to(w.device)
                ws.append(torch.nn.functional.pad(w, (0, pad)))
                qs.append(torch.nn.functional.pad(q, (0, pad), value=False))
            w = torch.cat(ws).view(-1, B)
            q = torch.cat(qs).view(-1, B)
            d = obs_block_update(finv, w, q).view(-1)
            off = 0
            for s in spans:
                lo, hi = s.b0 * B, min(s.b1 * B, s.numel)
                part = d[off:off + hi - lo]
                if bool(part.any()):
                    if s.name not in deltas:
                        p = params[s.name]
                        deltas[s.name] = torch.zeros(p.shape, dtype=torch.promote_types(p.dtype, torch.float32),
                                                     device=p.device)
                    deltas[s.name].view(-1)[lo:hi] = part
                off += s.num_blocks * B
            del finv
        self._cached = None
        self.info["update_seconds"] = time.perf_counter() - t0
        return deltas


# --- the method --------------------------------------------------------------------------------------

class OBert(MaskedMethod):
    """``obert``: iterative second-order pruning with learning-rate rewinding (and KD in the loop).

    Round k starts from round k-1's trained weights with ``ctx.prev_mask`` = round k-1's mask
    (none at round 1, which starts from the dense fine-tune), prunes among the survivors down to
    exactly ``ctx.target_sparsity = 1 - (1 - prune_fraction)**k`` by the OBS saliency, applies the
    OBS update to the survivors of every touched block (``obs_update``, B > 1), zeroes the pruned
    weights and their optimizer state, and trains with a fresh learning-rate schedule (no weight
    rewind).
    """

    def __init__(self, name: str, info, settings: Mapping[str, Any] | None = None):
        super().__init__(name, info, settings)
        if not isinstance(self.config, ObertSettings):  # built outside the registry (tests, benches)
            self.config = parse_settings(ObertSettings, name, self.settings)
        self.scorer: ObertScorer | None = None  # type: ignore[assignment]
        self.update_norm: float | None = None
        self._info: dict[str, Any] = {}  # the last pruning step's Fisher facts (kept across a resume)

    def make_scorer(self, ctx: SparsityContext) -> ObertScorer:
        c = self.config
        return ObertScorer(c.num_grads, c.damp, c.block_size, c.memory_budget_mb * 2**20,
                           _DTYPES[c.fisher_dtype], eligible=ctx.prev_mask, log=ctx.log)

    def _check_round(self, ctx: SparsityContext) -> float:
        s = validate_target(ctx.target_sparsity, self.name)
        k = int(ctx.round)
        if k < 1:
            raise ValueError(f"{self.name}: ctx.round={ctx.round!r} (rounds start at 1)")
        self.config.check_level(self.name, k, s)
        prev = ctx.prev_mask
        f = self.config.prune_fraction
        if prev is not None:
            if set(prev) != set(ctx.scope):
                raise ValueError(f"{self.name}: ctx.prev_mask covers {len(prev)} tensors, the scope "
                                 f"{len(ctx.scope)} (missing {sorted(set(ctx.scope) - set(prev))[:3]})")
            prev_expected = 1.0 - (1.0 - f) ** (k - 1)
            if abs(prev.sparsity() - prev_expected) > 1.0 / prev.numel() + 1e-9:
                raise ValueError(f"{self.name}: round {k - 1}'s mask has sparsity {prev.sparsity():.6g}, "
                                 f"expected {prev_expected:.6g} (is prev_mask from the right round?)")
        elif k > 1:
            raise ValueError(f"{self.name}: round {k} needs ctx.prev_mask (round {k - 1}'s mask), got None")
        return s

    def compute_mask(self, ctx: SparsityContext) -> Mask:
        """OBS scores among round k-1's survivors, exact global selection to the round's target.
        Pure with respect to the weights (the update is :meth:`on_train_begin`'s)."""
        s = self._check_round(ctx)
        self.scorer = self.make_scorer(ctx)
        scores = self.scorer.score(ctx)
        k = num_to_prune(s, sum(t.numel() for t in scores.values()))
        sel = select_global(scores, k, absolute=False, eligible=ctx.prev_mask)
        self.last_selection = sel
        return Mask(sel.mask)

    @torch.no_grad()
    def on_train_begin(self, ctx: SparsityContext) -> None:
        """Prune by OBS saliency, apply the OBS update to the survivors, apply the mask.

        A resumed job (``ctx.resuming``) skips the Fisher: ``load_state_dict`` restores the mask
        and the loop the weights and optimizer state right after."""
        self.target_sparsity = validate_target(ctx.target_sparsity, self.name)
        if getattr(ctx, "resuming", False):
            self._check_round(ctx)
            ctx.log(f"{self.name}: resuming; the pruning step's mask and weights come from the checkpoint")
            return
        self.mask = self.compute_mask(ctx)
        if self.config.obs_update and self.config.block_size > 1:
            deltas = self.scorer.obs_deltas(ctx, self.mask)
            params = ctx.parameters_in_scope()
            sq = 0.0
            for n, d in deltas.items():
                d = d * self.mask[n]  # survivors only; pruned weights go to 0 with the mask
                sq += float(d.double().square().sum())
                params[n].add_(d.to(params[n].dtype))
            self.update_norm = math.sqrt(sq)
        self.mask.apply_(ctx.model)
        self.mask.apply_to_optimizer_state_(ctx.optimizer, ctx.model)
        info = self._info = dict(self.scorer.info) if self.scorer else {}
        ctx.log(f"{self.name}: round {ctx.round} to {self.target_sparsity:.4f} (realized {self.mask.sparsity():.6f}); "
                f"B={self.config.block_size} m={self.config.num_grads} chunks={info.get('chunks')} "
                f"backward passes={info.get('backward_passes')} update norm={self.update_norm}")

    def state_dict(self) -> dict[str, Any]:
        """Adds the pruning step's facts (the Fisher is not kept: it is used once, at the start)."""
        out = super().state_dict()
        out.update(obert_info=dict(self._info), obert_update_norm=self.update_norm)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._info = dict(state.get("obert_info") or {})
        self.update_norm = state.get("obert_update_norm")

    def stats(self) -> dict[str, Any]:
        """Adds the Fisher facts of the last pruning step (block size, m, chunks, seconds)."""
        out = super().stats()
        out.update({f"obert_{k}": v for k, v in self._info.items()})
        out["obert_update_norm"] = self.update_norm
        return out
