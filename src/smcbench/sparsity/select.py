"""Exact selection: which weights to prune, with a deterministic tie-break.

Every method ends in the same question: given a score per weight over a set of tensors (the
scope), prune the ``K`` lowest. This module answers it *exactly*: the pruned count is ``K``, never
``K`` plus however many entries happen to tie with the threshold (the paper's SNIP kept
``score > threshold`` and realized 0.287 at a 0.2 target because one batch leaves most embedding
rows with a score of exactly 0).

How (:func:`select_global`):

1. Each score is mapped to a signed 32-bit *key* whose integer order is the float order (the IEEE
   bit pattern, with the magnitude bits flipped for negative values; ``-0.0`` maps to ``+0.0``).
   bf16/fp16 scores are widened to fp32 first (exact), fp64 scores are rounded to fp32.
2. Pass 1 counts the top 16 bits of every key (a 65,536-bin histogram), pass 2 the low 16 bits of
   the keys inside the bucket that holds the ``K``-th smallest key. Together they give the exact
   ``K``-th smallest key ``T`` and how many keys are below it. Tensors are streamed in chunks, so
   the extra memory is a few chunk-sized temporaries, never an ``N``-sized concatenation.
3. Pass 3 writes the masks: keys below ``T`` are pruned, keys above kept, and of the keys equal to
   ``T`` exactly as many as needed are pruned, **in flat-index order, tensors in the given order**
   (model order: input to output). The result is deterministic on every device.

For ``absolute`` selections of at least :data:`SAMPLE_MIN` scores, :func:`select_global` first
tries one streaming pass (``_select_sampled``): a strided sample guesses a narrow key window
around the ``K``-th; the pass writes the masks outside the window and keeps the few keys inside,
where the ``K``-th is found exactly (same tie-break). A missed guess falls back to passes 1-3.

Number to prune: ``K = floor(s * N + 0.5)`` (:func:`num_to_prune`), i.e. ``s * N`` rounded half
up, so the realized sparsity ``K / N`` is within ``0.5 / N`` of the target ``s``.

``eligible`` restricts the choice to currently kept weights (IMP, GMP): entries outside it are
pruned first, whatever their score, and never come back. :func:`select_layerwise` does the same
per tensor (RigL). :func:`select_global_reference` is a plain ``torch.kthvalue`` implementation of
the same contract, kept as a test oracle for small inputs.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Mapping

import torch

#: Elements per streamed chunk (4M: 16 MB of fp32 per temporary). Fewer, larger ops: with 2
#: threads on a busy CPU, 1M chunks (4x more parallel regions) made the select ~2x slower.
CHUNK = 1 << 22
_BINS = 1 << 16
_OFFSET = 1 << 15  # maps the signed top 16 bits (-32768..32767) to bins 0..65535
_INT32_MIN = -(1 << 31)  # the key of "already pruned" entries (no finite float maps to it)


def num_to_prune(target_sparsity: float, numel: int) -> int:
    """How many of ``numel`` weights a target sparsity prunes: ``floor(s * numel + 0.5)``.

    ``s * numel`` rounded half up, so the realized sparsity is within ``0.5 / numel`` of ``s``.
    Raises ValueError if ``s`` is outside [0, 1].
    """
    s = float(target_sparsity)
    if not 0.0 <= s <= 1.0 or math.isnan(s):
        raise ValueError(f"target sparsity {target_sparsity!r} is outside [0, 1]")
    return min(int(numel), max(0, int(math.floor(s * numel + 0.5))))


@dataclass
class Selection:
    """The result of a selection.

    Attributes:
        mask: name -> bool tensor (True = kept), in the order of the scores given.
        num_pruned: entries pruned (== the ``num_prune`` asked for).
        numel: entries considered.
        threshold: the score of the last pruned entry (the ``K``-th smallest eligible score);
            ``None`` when nothing new was pruned.
        ties_at_threshold: how many entries have exactly the threshold score.
        ties_pruned: how many of those were pruned by the tie-break.
    """

    mask: dict[str, torch.Tensor]
    num_pruned: int
    numel: int
    threshold: float | None = None
    ties_at_threshold: int = 0
    ties_pruned: int = 0
    per_tensor: list["Selection"] = field(default_factory=list, repr=False)

    @property
    def sparsity(self) -> float:
        """``num_pruned / numel`` (0 for an empty selection)."""
        return self.num_pruned / self.numel if self.numel else 0.0

    def stats(self) -> dict:
        """A small, JSON-ready summary (no tensors)."""
        return {"num_pruned": self.num_pruned, "numel": self.numel,
                "realized_sparsity": self.sparsity, "threshold": self.threshold,
                "ties_at_threshold": self.ties_at_threshold, "ties_pruned": self.ties_pruned}


# --- keys --------------------------------------------------------------------------------------

def _bits(chunk: torch.Tensor) -> torch.Tensor:
    """The fp32 bit pattern of a chunk (a view for fp32; bf16/fp16 are widened exactly)."""
    return (chunk if chunk.dtype == torch.float32 else chunk.to(torch.float32)).view(torch.int32)


def _keys(chunk: torch.Tensor, absolute: bool) -> torch.Tensor:
    """Order-preserving int32 keys of a 1-D chunk of scores (always a fresh tensor)."""
    bits = _bits(chunk)
    if absolute:
        return bits & 0x7FFFFFFF  # |x|: clear the sign bit; the pattern of x >= 0 is monotone
    # negative floats: larger magnitude = smaller value, so flip the magnitude bits; the +1 maps
    # -0.0 onto +0.0 (key 0) and keeps every other negative value strictly below 0
    return torch.where(bits < 0, (bits ^ 0x7FFFFFFF) + 1, bits)


def _key_to_float(key: int) -> float:
    bits = key if key >= 0 else ((key - 1) ^ 0x7FFFFFFF)
    return struct.unpack("<f", struct.pack("<i", bits))[0]


def _flat_chunks(name: str, scores: torch.Tensor, eligible: Mapping[str, torch.Tensor] | None):
    """Yield (start, score chunk, eligible chunk or None) over a tensor."""
    flat = scores.detach().reshape(-1)
    elig = None
    if eligible is not None:
        elig = eligible[name].reshape(-1)
        if elig.numel() != flat.numel():
            raise ValueError(f"eligible mask of {name!r} has {elig.numel()} entries, scores {flat.numel()}")
        if elig.device != flat.device:
            elig = elig.to(flat.device)
    for start in range(0, flat.numel(), CHUNK):
        yield start, flat[start:start + CHUNK], None if elig is None else elig[start:start + CHUNK]


def _chunk_keys(chunk: torch.Tensor, elig: torch.Tensor | None, absolute: bool) -> torch.Tensor:
    keys = _keys(chunk, absolute)
    if elig is not None:
        keys.masked_fill_(~elig, _INT32_MIN)  # already pruned: below every real score
    return keys


# --- selection ---------------------------------------------------------------------------------

# Histogram bins (key >> 16) + 32768 that can only hold NaN, and the +/-inf bins (which may).
_NEG_NAN_BINS = slice(1, 128)   # bin 0 also holds the "already pruned" sentinel
_POS_INF_BIN = 0x7F80 + _OFFSET
_POS_NAN_BINS = slice(_POS_INF_BIN + 1, _BINS)


def _check_nan(scores, names, hist: torch.Tensor, n_forced: int) -> None:
    suspicious = (int(hist[_NEG_NAN_BINS].sum()) > 0 or int(hist[0]) > n_forced
                  or int(hist[_POS_NAN_BINS].sum()) > 0 or int(hist[_POS_INF_BIN]) > 0)
    if suspicious:  # rare: find the tensor (and rule out a plain +inf)
        for n in names:
            if bool(torch.isnan(scores[n]).any()):
                raise ValueError(f"scores of {n!r} contain NaN; cannot rank them")


#: Below this many scores the two radix passes are used directly (no sample).
SAMPLE_MIN = 1 << 20
#: Sample size of the window guess (every stride-th score; two kthvalue calls on it).
SAMPLE_SIZE = 1 << 20
#: Half-width of the window around the sample's guess, in sample standard deviations of the rank.
SAMPLE_SIGMAS = 6.0
_INF_KEY = 0x7F800000  # the key of +inf (|x| keys above it are NaN)


def _select_sampled(scores: Mapping[str, torch.Tensor], names: list[str], k: int, numel: int,
                    eligible: Mapping[str, torch.Tensor] | None) -> Selection | None:
    """Exact selection by ``|score|`` in one streaming pass, or None (then the radix passes run).

    A seeded sample of the scores guesses a narrow key window [lo, hi] around the k-th smallest.
    One pass over the scores writes the masks of everything outside the window (above: kept;
    below: pruned), counts the keys below ``lo`` and records the position and key of the few
    entries inside. If the k-th key provably lies inside (below < k <= below + inside), it is found
    exactly among those, and only their mask entries are written afterwards, ties in flat-index
    order as everywhere. A bad guess (or a window with too many ties) costs time, never exactness.
    """
    parts = []
    stride = max(1, numel // SAMPLE_SIZE)
    stride += stride > 1 and stride % 2 == 0  # odd: never a multiple of a (power-of-two) row length
    for n in names:  # every stride-th score of each tensor (no random gathers)
        t = scores[n].detach().reshape(-1)
        keys = _bits(t[stride // 2::stride]) & 0x7FFFFFFF
        if eligible is not None:
            keys.masked_fill_(~eligible[n].reshape(-1).to(t.device)[stride // 2::stride], -1)
        parts.append(keys.cpu())
    sample = torch.cat(parts)
    m = sample.numel()
    p = k / numel
    half = SAMPLE_SIGMAS * math.sqrt(max(p * (1 - p), 1.0 / m) / m) * m + 2
    lo_i, hi_i = int(p * m - half), int(math.ceil(p * m + half))
    lo = int(torch.kthvalue(sample, lo_i + 1).values) if lo_i >= 0 else 0
    hi = int(torch.kthvalue(sample, hi_i + 1).values) if hi_i < m else _INF_KEY
    if eligible is not None and lo < 0:
        return None  # the window reaches into the already-pruned entries: radix
    limit = max(1 << 16, numel >> 6)  # most entries inside the window (1/64 of the scores)
    below = inside_n = 0
    finite = True
    inside: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    mask: dict[str, torch.Tensor] = {}
    kbuf = lt = None
    for n in names:
        out = torch.empty(scores[n].numel(), dtype=torch.bool, device=scores[n].device)
        mask[n] = out
        for start, chunk, elig in _flat_chunks(n, scores[n], eligible):
            c = chunk.numel()
            if kbuf is None or kbuf.numel() < c or kbuf.device != chunk.device:
                kbuf = torch.empty(c, dtype=torch.int32, device=chunk.device)
                lt = torch.empty(c, dtype=torch.bool, device=chunk.device)
            kb, ltb, keep = kbuf[:c], lt[:c], out[start:start + c]
            torch.bitwise_and(_bits(chunk), 0x7FFFFFFF, out=kb)
            if elig is not None:
                kb.masked_fill_(~elig, -1)  # already pruned: below every real key
            finite &= int(kb.max()) <= _INF_KEY  # |NaN| keys lie above +inf's: checked below
            torch.gt(kb, hi, out=keep)  # above the window: kept
            torch.ge(kb, lo, out=ltb)  # not below the window (below: pruned)
            below += c - int(torch.count_nonzero(ltb))
            pos = _true_positions(ltb.logical_xor_(keep))  # inside the window (keep implies >= lo)
            inside_n += pos.numel()
            if inside_n > limit:
                return None
            if pos.numel():
                inside.append((n, pos + start, kb[pos]))
    if not finite:
        _raise_nan(scores, names)
    if not below < k <= below + inside_n:
        return None
    window = torch.cat([kv for _, _, kv in inside]).to(torch.int64)
    kth = int(torch.kthvalue(window.cpu(), k - below).values)
    ties = int((window == kth).sum())
    quota = k - below - int((window < kth).sum())
    ties_pruned = quota
    for n, pos, kv in inside:  # in tensor order, positions ascending: flat-index tie order
        keep = kv > kth
        eq = (kv == kth).nonzero().squeeze(1)
        if quota and eq.numel():
            take = min(quota, eq.numel())
            keep[eq[take:]] = True
            quota -= take
        elif eq.numel():
            keep[eq] = True
        mask[n][pos] = keep
    mask = {n: mask[n].view(scores[n].shape) for n in names}
    return Selection(mask, k, numel, _key_to_float(kth), ties, ties_pruned)


def _true_positions(b: torch.Tensor) -> torch.Tensor:
    """``b.nonzero()`` for a sparse 1-D bool tensor (starting at an 8-byte aligned offset): scans
    it as int64 words (8 entries each) and looks only inside the non-zero words."""
    c = b.numel()
    c8 = c - c % 8
    words = b[:c8].view(torch.int64).nonzero().squeeze(1)
    cand = (words.unsqueeze(1) * 8 + torch.arange(8, device=b.device)).reshape(-1)
    pos = cand[b[cand]]
    if c8 < c:
        pos = torch.cat([pos, b[c8:].nonzero().squeeze(1) + c8])
    return pos


def _raise_nan(scores, names) -> None:
    for n in names:
        if bool(torch.isnan(scores[n]).any()):
            raise ValueError(f"scores of {n!r} contain NaN; cannot rank them")


def _kth_key(scores: Mapping[str, torch.Tensor], names: list[str], k: int, absolute: bool,
             eligible: Mapping[str, torch.Tensor] | None, n_forced: int = 0) -> tuple[int, int, int]:
    """Passes 1-2: the exact k-th smallest key (1-based), how many keys equal it, and how many of
    those fall within the k smallest."""
    device = scores[names[0]].device
    fast = absolute and eligible is None  # |x| keys straight from the bit pattern
    # pass 1: histogram of the top 16 bits of the keys
    hist = torch.zeros(_BINS, dtype=torch.int64, device=device)
    for n in names:
        for _, chunk, elig in _flat_chunks(n, scores[n], eligible):
            if fast:
                top = (_bits(chunk) >> 16).bitwise_and_(0x7FFF)  # keys >= 0: bins 32768..65535
                hist[_OFFSET:] += torch.bincount(top, minlength=_OFFSET).to(device)
            else:
                top = (_chunk_keys(chunk, elig, absolute) >> 16).add_(_OFFSET)
                hist += torch.bincount(top, minlength=_BINS).to(device)
    _check_nan(scores, names, hist, n_forced)
    cum = hist.cumsum(0)
    bucket = int(torch.searchsorted(cum, torch.tensor([k], device=device)).item())
    below = int(cum[bucket - 1].item()) if bucket > 0 else 0
    # pass 2: histogram of the low 16 bits of the keys inside that bucket
    hist2 = torch.zeros(_BINS, dtype=torch.int64, device=device)
    high = bucket - _OFFSET
    for n in names:
        for _, chunk, elig in _flat_chunks(n, scores[n], eligible):
            if fast:
                bits = _bits(chunk)
                inside = bits[(bits & 0x7FFF0000) == (high << 16)]
            else:
                keys = _chunk_keys(chunk, elig, absolute)
                inside = keys[(keys >> 16) == high]
            if inside.numel():
                hist2 += torch.bincount(inside & 0xFFFF, minlength=_BINS).to(device)
    cum2 = hist2.cumsum(0)
    low = int(torch.searchsorted(cum2, torch.tensor([k - below], device=device)).item())
    below += int(cum2[low - 1].item()) if low > 0 else 0
    kth = high * (1 << 16) + low
    ties = int(hist2[low].item())
    return kth, ties, k - below  # the last: how many of the ties to prune, 1..ties


def global_threshold(scores: Mapping[str, torch.Tensor], num_prune: int, *, absolute: bool = False,
                     eligible: Mapping[str, torch.Tensor] | None = None) -> dict:
    """Only the exact threshold of :func:`select_global` (passes 1-2, no mask is written).

    Returns ``{"threshold", "ties_at_threshold", "ties_pruned"}``; ``threshold`` is the
    ``num_prune``-th smallest score (as fp32), ``None`` when ``num_prune`` is 0.
    """
    names = list(scores)
    numel = sum(scores[n].numel() for n in names)
    k = int(num_prune)
    if not 0 <= k <= numel:
        raise ValueError(f"cannot prune {k} of {numel} entries")
    n_forced = 0 if eligible is None else sum(
        int(eligible[n].numel() - eligible[n].count_nonzero()) for n in names)
    if k <= n_forced:
        return {"threshold": None, "ties_at_threshold": 0, "ties_pruned": 0}
    kth, ties, quota = _kth_key(scores, names, k, absolute, eligible, n_forced)
    return {"threshold": None if kth == _INT32_MIN else _key_to_float(kth),
            "ties_at_threshold": ties, "ties_pruned": quota}


def select_global(scores: Mapping[str, torch.Tensor], num_prune: int, *, absolute: bool = False,
                  eligible: Mapping[str, torch.Tensor] | None = None) -> Selection:
    """Prune exactly the ``num_prune`` lowest scores over all tensors together.

    Args:
        scores: name -> score tensor (any float dtype, any device), in model order. A lazy
            mapping (computing each tensor on access) works: each tensor is read three times.
        num_prune: how many entries to prune in total (see :func:`num_to_prune`), counting the
            ineligible ones, which are always pruned.
        absolute: rank ``|score|`` instead of ``score`` without materializing it (pass the
            weights themselves for magnitude pruning).
        eligible: optional name -> bool tensor; False entries are pruned first and never kept
            (IMP/GMP: "prune among the currently kept only").

    Returns:
        a :class:`Selection` whose mask keeps exactly ``numel - num_prune`` entries. Ties at the
        threshold are pruned in flat-index order, tensors in the order of ``scores``.

    Raises:
        ValueError: if ``num_prune`` is outside [number of ineligible entries, numel], or a score
            is NaN.
    """
    names = list(scores)
    numel = sum(scores[n].numel() for n in names)
    n_forced = 0
    if eligible is not None:
        missing = [n for n in names if n not in eligible]
        if missing:
            raise ValueError(f"eligible mask lacks tensors {missing[:3]}")
        n_forced = sum(int(eligible[n].numel() - eligible[n].count_nonzero()) for n in names)
    k = int(num_prune)
    if not n_forced <= k <= numel:
        raise ValueError(f"cannot prune {k} of {numel} entries when {n_forced} are already pruned "
                         f"(need {n_forced} <= num_prune <= {numel})")
    if not names:
        return Selection({}, 0, 0)

    def _full(name: str, value: bool) -> torch.Tensor:
        t = scores[name]
        return torch.full(t.shape, value, dtype=torch.bool, device=t.device)

    if k == n_forced:  # nothing new to prune
        mask = {n: (eligible[n].to(scores[n].device).clone() if eligible is not None else _full(n, True))
                for n in names}
        return Selection(mask, k, numel)

    if absolute and numel >= SAMPLE_MIN:
        sel = _select_sampled(scores, names, k, numel, eligible)
        if sel is not None:
            return sel
    kth, ties, quota = _kth_key(scores, names, k, absolute, eligible, n_forced)
    ties_pruned = quota
    # pass 3: write the masks
    mask: dict[str, torch.Tensor] = {}
    for n in names:
        out = torch.empty(scores[n].numel(), dtype=torch.bool, device=scores[n].device)
        for start, chunk, elig in _flat_chunks(n, scores[n], eligible):
            keys = _chunk_keys(chunk, elig, absolute)
            keep = out[start:start + keys.numel()]
            if quota == 0:
                torch.ge(keys, kth, out=keep)
            else:
                torch.gt(keys, kth, out=keep)
                eq = (keys == kth).nonzero().squeeze(1)
                if eq.numel():
                    take = min(quota, eq.numel())
                    keep[eq[take:]] = True  # ties after the quota are kept
                    quota -= take
        mask[n] = out.view(scores[n].shape)
    return Selection(mask, k, numel, _key_to_float(kth), ties, ties_pruned)


def select_layerwise(scores: Mapping[str, torch.Tensor], num_prune: Mapping[str, int], *,
                     absolute: bool = False,
                     eligible: Mapping[str, torch.Tensor] | None = None) -> Selection:
    """:func:`select_global` applied to each tensor on its own (``num_prune[name]`` per tensor).

    The returned selection's ``per_tensor`` holds each tensor's own :class:`Selection`.
    """
    mask, parts, total, numel = {}, [], 0, 0
    for n, t in scores.items():
        sel = select_global({n: t}, num_prune[n], absolute=absolute,
                            eligible=None if eligible is None else {n: eligible[n]})
        mask[n] = sel.mask[n]
        parts.append(sel)
        total += sel.num_pruned
        numel += sel.numel
    return Selection(mask, total, numel, None, sum(p.ties_at_threshold for p in parts),
                     sum(p.ties_pruned for p in parts), per_tensor=parts)


def select_global_reference(scores: Mapping[str, torch.Tensor], num_prune: int, *,
                            absolute: bool = False,
                            eligible: Mapping[str, torch.Tensor] | None = None) -> Selection:
    """Test oracle for :func:`select_global`: concatenation + ``torch.kthvalue`` (N-sized copies).

    Same contract and the same tie-break; only for small inputs.
    """
    names = list(scores)
    parts = []
    for n in names:
        v = scores[n].detach().reshape(-1).to(torch.float64)
        v = v.abs() if absolute else v + 0.0  # + 0.0 turns -0.0 into +0.0
        if eligible is not None:
            v = v.masked_fill(~eligible[n].reshape(-1).to(v.device), -math.inf)
        parts.append(v.cpu())
    flat = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    numel, k = flat.numel(), int(num_prune)
    n_forced = int(torch.isneginf(flat).sum()) if eligible is not None else 0
    if not n_forced <= k <= numel:
        raise ValueError(f"cannot prune {k} of {numel} entries when {n_forced} are already pruned")
    keep = torch.ones(numel, dtype=torch.bool)
    threshold, ties, ties_pruned = None, 0, 0
    if eligible is not None:
        keep &= ~torch.isneginf(flat)
    if k > n_forced:
        t = float(torch.kthvalue(flat, k).values)
        below = int((flat < t).sum())
        eq = (flat == t).nonzero().squeeze(1)
        keep = flat > t
        keep[eq[k - below:]] = True
        threshold, ties, ties_pruned = float(torch.tensor(t, dtype=torch.float32)), eq.numel(), k - below
    mask, start = {}, 0
    for n in names:
        size = scores[n].numel()
        mask[n] = keep[start:start + size].view(scores[n].shape).to(scores[n].device)
        start += size
    return Selection(mask, k, numel, threshold, ties, ties_pruned)
