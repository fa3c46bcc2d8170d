"""Settings of ``obert`` (no torch: planning imports this to check a config).

Kept apart from :mod:`smcbench.sparsity.obert`, which imports torch, so the registry can name the
class as ``"smcbench.sparsity.obert_settings:ObertSettings"`` and validate ``methods.obert`` at
planning time.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import DistillSettings, IMPSettings, SettingsError

__all__ = ["ObertSettings", "FISHER_DTYPES"]

#: dtypes the inverse Fisher blocks may be held in (fp64 doubles the memory, for small checks).
FISHER_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class ObertSettings(IMPSettings, DistillSettings):
    """oBERT (Kurtic et al. 2022) as the paper's Appendix C recipe: iterative rounds of
    second-order pruning with learning-rate rewinding and distillation from the dense fine-tune.

    Attributes:
        prune_fraction: each round prunes this fraction of the remaining weights (round k's target
            is ``1 - (1 - prune_fraction)**k``, the IMP levels).
        num_grads: m, the number of training-batch gradients in the empirical Fisher
            ``F = damp * I + (1/m) * sum g g^T``.
        damp: the dampening ``lambda`` of the Fisher (sparseml's and the paper's code: 1e-7).
        block_size: B, consecutive weights (of one flattened tensor) per Fisher block; 1 is the
            diagonal Fisher, the paper's code's choice.
        memory_budget_mb: the most memory (MiB) the inverse Fisher blocks may take at once; with
            ``4 * B`` bytes per weight (fp32) a larger scope is processed in chunks of blocks, each
            chunk recomputing the ``num_grads`` gradients.
        obs_update: apply the OBS correction to the surviving weights of each block (no effect at
            B = 1, where a block holds one weight).
        fisher_dtype: ``float32`` (default) or ``float64`` for the inverse Fisher blocks.
        kd_alpha: knowledge-distillation weight: loss = (1 - kd_alpha) * task + kd_alpha * T^2 * KL
            (teacher = the dense fine-tune; the training loop's distillation, see ``DistillSettings``).
        kd_temperature: the distillation temperature T.
    """

    num_grads: int = 1024
    damp: float = 1e-7
    block_size: int = 1
    memory_budget_mb: float = 4096.0
    obs_update: bool = True
    fisher_dtype: str = "float32"

    def check(self, method: str) -> None:
        IMPSettings.check(self, method)
        DistillSettings.check(self, method)
        self._range(method, "num_grads", 1, None)
        self._range(method, "damp", 0.0, None, lo_open=True)
        self._range(method, "block_size", 1, None)
        self._range(method, "memory_budget_mb", 0.0, None, lo_open=True)
        if self.fisher_dtype not in FISHER_DTYPES:
            raise SettingsError(f"methods.{method}.fisher_dtype={self.fisher_dtype!r} (valid: "
                                f"{', '.join(FISHER_DTYPES)})")
        itemsize = 8 if self.fisher_dtype == "float64" else 4
        one_block = self.block_size * self.block_size * itemsize
        if one_block > self.memory_budget_mb * 2**20:
            raise SettingsError(f"methods.{method}.memory_budget_mb={self.memory_budget_mb} is smaller than one "
                                f"{self.block_size}x{self.block_size} {self.fisher_dtype} Fisher block "
                                f"({one_block / 2**20:.3g} MiB)")
