"""Masks: a named set of boolean tensors (True = weight kept), keyed by parameter name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import torch


class Mask(Mapping[str, torch.Tensor]):
    """A mapping ``parameter name -> bool tensor`` of the same shape (True = kept).

    Only parameters in the scope have an entry; everything else is dense. Applying a mask
    multiplies weights in place (no hooks, no reparametrization: the state_dict keys of the model
    never change).
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        self._t: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            if t.dtype != torch.bool:
                raise TypeError(f"mask for {name!r} must be bool, got {t.dtype}")
            self._t[name] = t
        self._cache: tuple | None = None  # (model id, params, masks) grouped for foreach ops

    # --- mapping protocol ------------------------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._t[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def ones_like(cls, params: Mapping[str, torch.Tensor]) -> "Mask":
        """A mask keeping every weight of ``params``."""
        return cls({n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()})

    @classmethod
    def from_weights(cls, params: Mapping[str, torch.Tensor]) -> "Mask":
        """The mask of the non-zero entries of ``params``."""
        return cls({n: p.detach() != 0 for n, p in params.items()})

    def to(self, device: torch.device | str) -> "Mask":
        """A copy of the mask on ``device``."""
        return Mask({n: t.to(device) for n, t in self._t.items()})

    def clone(self) -> "Mask":
        """An independent copy (methods that update masks in place, like RigL, clone first)."""
        return Mask({n: t.clone() for n, t in self._t.items()})

    # --- application -----------------------------------------------------------------------
    def _grouped(self, model: torch.nn.Module):
        """(params, masks) lists per (device, dtype), cached per model object.

        On CPU the cached masks are in the parameter's dtype: multiplying by a bool tensor takes a
        type-promotion path there that measured 3-5x slower than by a float tensor (the cost is
        one extra copy of the masked weights' size, on CPU only). On GPUs bool masks are used
        (1 byte per weight; the multiply is memory-bound either way).
        """
        key = id(model)
        if self._cache is None or self._cache[0] != key:
            named = dict(model.named_parameters())
            missing = [n for n in self._t if n not in named]
            if missing:
                raise KeyError(f"mask names not in the model: {missing[:5]}")
            groups: dict[tuple, tuple[list, list]] = {}
            for name, m in self._t.items():
                p = named[name]
                if m.shape != p.shape:
                    raise ValueError(f"mask shape {tuple(m.shape)} != parameter {name} {tuple(p.shape)}")
                if m.device != p.device:
                    m = self._t[name] = m.to(p.device)
                if p.device.type == "cpu":
                    m = m.to(p.dtype)
                ps, ms = groups.setdefault((p.device, p.dtype), ([], []))
                ps.append(p)
                ms.append(m)
            self._cache = (key, list(groups.values()))
        return self._cache[1]

    @torch.no_grad()
    def apply_(self, model: torch.nn.Module) -> None:
        """Zero the pruned weights of ``model`` in place (one fused multiply per dtype/device)."""
        for params, masks in self._grouped(model):
            torch._foreach_mul_(params, masks)

    @torch.no_grad()
    def apply_to_optimizer_state_(self, optimizer: torch.optim.Optimizer | None,
                                  model: torch.nn.Module) -> int:
        """Zero the optimizer state (Adam/AdamW ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``;
        SGD ``momentum_buffer``) of pruned weights. State not created yet is skipped.

        Returns the number of state tensors touched.
        """
        if optimizer is None:
            return 0
        named = dict(model.named_parameters())
        return sum(reset_optimizer_state_(optimizer, named[n], ~m) for n, m in self._t.items())

    @torch.no_grad()
    def apply_to_grads_(self, model: torch.nn.Module) -> None:
        """Zero the gradients of pruned weights, so optimizer moments of pruned weights stay 0."""
        for params, masks in self._grouped(model):
            pairs = [(p.grad, m) for p, m in zip(params, masks) if p.grad is not None]
            if pairs:
                torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])

    def invalidate_cache(self) -> None:
        """Call after changing mask tensors (in place or not): the application cache (grouped
        per dtype, float copies on CPU) is rebuilt on the next use. GMP and RigL do this."""
        self._cache = None

    # --- statistics ------------------------------------------------------------------------
    def numel(self) -> int:
        """Number of weights under the mask (the size of the scope)."""
        return sum(t.numel() for t in self._t.values())

    def num_pruned(self) -> int:
        """Number of pruned (False) entries."""
        return sum(int(t.numel() - t.count_nonzero()) for t in self._t.values())

    def sparsity(self) -> float:
        """Realized sparsity over the masked set: pruned / size."""
        total = self.numel()
        return self.num_pruned() / total if total else 0.0

    @torch.no_grad()
    def weight_sparsity(self, model: torch.nn.Module) -> float:
        """Sparsity *measured on the weights* over the masked set: exact zeros / size.

        At least :meth:`sparsity` once the mask is applied (a kept weight may also be 0).
        """
        named = dict(model.named_parameters())
        total = self.numel()
        zeros = sum(int(named[n].numel() - named[n].count_nonzero()) for n in self._t)
        return zeros / total if total else 0.0

    def layerwise(self) -> list[dict]:
        """Per tensor: name, shape, numel, kept, sparsity (in mask order = model order)."""
        rows = []
        for name, t in self._t.items():
            kept = int(t.count_nonzero())
            rows.append({"name": name, "shape": "x".join(map(str, t.shape)), "numel": t.numel(),
                         "kept": kept, "sparsity": 1.0 - kept / t.numel() if t.numel() else 0.0})
        return rows

    def is_subset_of(self, other: "Mask") -> bool:
        """True when every weight kept here is also kept in ``other`` (IMP nesting)."""
        if set(self._t) != set(other._t):
            return False
        return all(not bool((t & ~other._t[n].to(t.device)).any()) for n, t in self._t.items())

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
        """Write as safetensors (bool tensors), atomically (write then rename)."""
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        meta = {"format": "smcbench-mask", "names": json.dumps(list(self._t))}
        meta.update({k: str(v) for k, v in (metadata or {}).items()})
        save_file({n: t.detach().cpu().contiguous() for n, t in self._t.items()}, str(tmp), metadata=meta)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Mask":
        """Read a mask written by :meth:`save` (safetensors only; nothing is unpickled)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            names: Iterable[str] = json.loads(meta["names"]) if "names" in meta else f.keys()
            return cls({n: f.get_tensor(n) for n in names})


#: Optimizer state entries that are per-weight moments (zeroed for pruned / regrown weights).
OPTIMIZER_MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


@torch.no_grad()
def reset_optimizer_state_(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter,
                           where: torch.Tensor) -> int:
    """Zero the per-weight optimizer moments of ``param`` at the True entries of ``where``.

    Handles Adam/AdamW (``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``) and SGD momentum; a
    parameter whose state is not created yet (before the first ``step()``) is skipped. Returns
    the number of state tensors touched.
    """
    state = optimizer.state.get(param)
    if not state:
        return 0
    touched = 0
    for key in OPTIMIZER_MOMENT_KEYS:
        t = state.get(key)
        if isinstance(t, torch.Tensor) and t.shape == param.shape:
            t.masked_fill_(where.to(t.device), 0)
            touched += 1
    return touched
