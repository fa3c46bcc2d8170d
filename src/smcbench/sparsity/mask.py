"""Masks: a named set of boolean tensors (True = weight kept), keyed by parameter name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Mapping

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
        """Write bit-packed (8 weights per byte), atomically (write then rename).

        The file is safetensors: one uint8 tensor per parameter (``numpy.packbits`` of the
        flattened bool mask, big-endian bit order) and the metadata ``format`` =
        :data:`PACKED_FORMAT`, ``names`` (JSON list, model order) and ``shapes`` (JSON
        ``{name: shape}``)."""
        import numpy as np
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        meta = {"format": PACKED_FORMAT, "names": json.dumps(list(self._t)),
                "shapes": json.dumps({n: list(t.shape) for n, t in self._t.items()})}
        meta.update({k: str(v) for k, v in (metadata or {}).items()})
        packed = {n: torch.from_numpy(np.packbits(t.detach().cpu().reshape(-1).numpy()))
                  for n, t in self._t.items()}
        save_file(packed, str(tmp), metadata=meta)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
             expect: Mapping[str, torch.Tensor] | None = None, what: str = "mask") -> "Mask":
        """Read a mask written by :meth:`save` (bit-packed) or by older versions (one bool tensor
        per parameter). Safetensors only; nothing is unpickled.

        ``expect`` (name -> parameter, e.g. the scope's parameters) checks names and shapes: a
        mask for another model, a transposed tensor of the same size, or a missing/extra tensor
        is refused. Every problem raises :class:`MaskError` naming the file, the tensor, what was
        expected and what was found."""
        import numpy as np
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise MaskError(f"{what} {path} does not exist")
        if path.stat().st_size == 0:
            raise MaskError(f"{what} {path} is empty (0 bytes)")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                keys = list(f.keys())
                names: list[str] = json.loads(meta["names"]) if "names" in meta else keys
                raw = {n: f.get_tensor(n) for n in names if n in keys}
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise MaskError(f"{what} {path} is not a readable safetensors file ({e})") from None
        absent = [n for n in names if n not in raw]
        if absent:
            raise MaskError(f"{what} {path}: its metadata lists tensors the file lacks: {absent[:3]}")
        tensors: dict[str, torch.Tensor] = {}
        if meta.get("format") == PACKED_FORMAT:
            try:
                shapes = {n: tuple(int(d) for d in v) for n, v in json.loads(meta["shapes"]).items()}
            except (KeyError, ValueError, TypeError) as e:
                raise MaskError(f"{what} {path}: bit-packed mask without valid 'shapes' metadata ({e})") from None
            for n in names:
                t = raw[n]
                if n not in shapes:
                    raise MaskError(f"{what} {path}: no shape recorded for tensor {n!r}")
                numel = 1
                for d in shapes[n]:
                    numel *= d
                if t.dtype != torch.uint8 or t.dim() != 1 or t.numel() != (numel + 7) // 8:
                    raise MaskError(f"{what} {path}: tensor {n!r} should be {(numel + 7) // 8} packed bytes "
                                    f"(uint8) for shape {shapes[n]}, found {t.dtype} {tuple(t.shape)}")
                bits = np.unpackbits(t.numpy(), count=numel).view(np.bool_)  # 0/1 bytes: no copy
                tensors[n] = torch.from_numpy(bits).reshape(shapes[n])
        else:
            for n in names:
                t = raw[n]
                if t.dtype != torch.bool:
                    raise MaskError(f"{what} {path}: tensor {n!r} has dtype {t.dtype}, expected bool "
                                    f"(True = kept) or a bit-packed smcbench mask")
                tensors[n] = t
        if expect is not None:
            check_mask_fits(tensors, expect, f"{what} {path}")
        return cls({n: t.to(device) for n, t in tensors.items()})


#: ``format`` metadata of bit-packed mask files.
PACKED_FORMAT = "smcbench-mask-packed/1"


class MaskError(ValueError):
    """A mask file or tensor that cannot be used; the message names file, tensor, expected, found."""


def check_mask_fits(mask: Mapping[str, torch.Tensor], expect: Mapping[str, torch.Tensor], what: str = "mask") -> None:
    """Refuse a mask whose names or shapes differ from ``expect`` (name -> parameter)."""
    extra = [n for n in mask if n not in expect]
    if extra:
        raise MaskError(f"{what} names tensor(s) that are not in the pruning scope: {extra[:3]} "
                        f"(scope has {len(expect)} tensors, e.g. {list(expect)[:2]})")
    missing = [n for n in expect if n not in mask]
    if missing:
        raise MaskError(f"{what} lacks scope tensor(s) {missing[:3]} ({len(missing)} missing of {len(expect)})")
    for n, t in mask.items():
        want = tuple(expect[n].shape)
        if tuple(t.shape) != want:
            raise MaskError(f"{what}: tensor {n!r} has shape {tuple(t.shape)}, expected {want}")
        if t.dtype != torch.bool:
            raise MaskError(f"{what}: tensor {n!r} has dtype {t.dtype}, expected bool")


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
