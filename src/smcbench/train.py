"""The one training loop. It joins a task (data, model, loss, metric) and a sparse method (mask
hooks) without either knowing the other, and it never names a method: what differs between
methods is a :class:`~smcbench.sparsity.registry.MethodInfo` fact (``start_from``,
``rewinds_to_pretrained``, ``records_drift``, ``distill_from_dense``, ``init_mask_from``) or lives
in the method itself (its mask, schedule and state).

:func:`run_training` reads top to bottom: build the task, model and method; the optimizer and
schedule from the training settings; a :class:`Selector` (best validation at final sparsity);
resume from this job's own checkpoint if there is one; the loop; the report.

Selection on validation, test once: the checkpoint kept is the best *validation* evaluation among
those taken at the method's final sparsity (GMP's intermediate, denser checkpoints are never
selected); the test splits are evaluated once, for that checkpoint. ``training.report_best_on_test``
(default off) also evaluates the test splits at every eligible evaluation and reports the paper's
"best epoch on test" in the ``value_best_on_test`` column (empty otherwise).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import Checkpointer, restore_rng_state
from .io import sha256_file, write_csv_atomic
from .sparsity.base import SparsityContext
from .sparsity.mask import Mask, MaskError
from .sparsity.registry import build_method, method_info
from .tasks.base import write_json_atomic


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, bad inputs); the message names the run."""


@dataclass
class RunSpec:
    """Everything one training (or mask) job needs, parsed from its params JSON and paths."""

    params: dict
    data_dir: Path
    pretrained_dir: Path
    out_dir: Path
    seed: int
    start_weights: Path | None = None
    prev_mask: Path | None = None
    teacher_weights: Path | None = None
    save_model: bool = False
    log: Callable[[str], None] = print


# --- small utilities ----------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' requested but no GPU is visible (set device: auto or cpu)")
    return torch.device(name)


def git_revision(where: Path | None = None) -> str:
    """The code's git revision, ``-dirty`` appended when tracked files have uncommitted changes
    (``SMCBENCH_GIT_REVISION`` overrides, e.g. for an installed copy without ``.git``)."""
    rev = os.environ.get("SMCBENCH_GIT_REVISION")
    if rev:
        return rev
    here = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        rev = out.stdout.strip()
        if not rev:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
        return rev + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class MemoryMeter:
    """Peak memory of this job, not of the process it may have been forked from.

    CPU: the kernel's peak resident set size (``VmHWM``) is reset to the current RSS at the start
    of the job by writing ``5`` to ``/proc/self/clear_refs``, so a job forked from the warm job
    server (whose ``ru_maxrss`` is inherited) reports its own peak. The RSS at the start (the
    interpreter, torch and what the server had imported) is recorded next to it. Where the reset
    is not allowed, ``ru_maxrss`` is used and ``peak_mem_source`` says so.
    GPU: ``torch.cuda.max_memory_allocated`` after resetting the peak statistics.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.source = "getrusage"
        self.start_rss_mb = _proc_status_mb("VmRSS")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.source = "cuda.max_memory_allocated"
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            if _proc_status_mb("VmHWM") is not None:
                self.source = "VmHWM since job start"
        except OSError:
            pass

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.source.startswith("VmHWM"):
            return float(_proc_status_mb("VmHWM"))
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def report(self) -> dict[str, Any]:
        return {"peak_mem_mb": self.peak_mb(), "peak_mem_source": self.source, "rss_at_start_mb": self.start_rss_mb}


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


SCHEDULES = ("linear", "polynomial", "constant", "cosine", "step", "inverse_sqrt")


def lr_lambda(schedule: str, warmup: int, total: int, step_size: int = 0, gamma: float = 0.5) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimizer step t (warmup then decay).

    ``step``: multiply by ``gamma`` every ``step_size`` steps (the SVAMP/GTS recipe: StepLR of 20
    epochs, 0.5)."""
    if schedule not in SCHEDULES:
        raise TrainingError(f"unknown lr schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
    if schedule == "step" and step_size <= 0:
        raise TrainingError("schedule 'step' needs training.step_size_epochs (or step_size_steps) > 0")

    def f(t: int) -> float:
        if warmup > 0 and t < warmup:
            return (t + 1) / warmup
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return gamma ** (t // step_size)
        if schedule == "inverse_sqrt":  # fairseq's: 1 at the end of warmup, then sqrt(warmup / t)
            return math.sqrt(max(1, warmup) / max(1, t + 1))
        progress = min(1.0, (t - warmup) / max(1, total - warmup))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)  # linear == fairseq polynomial_decay with power 1, end_lr 0

    return f


def scope_sparsity(model: torch.nn.Module, scope: list[str]) -> tuple[float, list[dict]]:
    """Realized sparsity measured on the weights themselves: zeros / size over the scope."""
    named = dict(model.named_parameters())
    rows, zeros, total = [], 0, 0
    for order, name in enumerate(scope):
        p = named[name].detach()
        z = int(p.numel() - torch.count_nonzero(p))
        rows.append({"order": order, "name": name, "shape": "x".join(map(str, p.shape)), "numel": p.numel(),
                     "kept": p.numel() - z, "sparsity": z / p.numel() if p.numel() else 0.0})
        zeros += z
        total += p.numel()
    return (zeros / total if total else 0.0), rows


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Save the model's state with safetensors (tied tensors handled), atomically."""
    from safetensors.torch import save_model

    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))
    os.replace(tmp, path)


def load_weights(model: torch.nn.Module, path: Path, what: str = "weights") -> None:
    """Load weights saved by :func:`save_weights` (safetensors only; nothing is unpickled).

    Checked before anything is copied: the file exists and is readable safetensors, every tensor
    of the model is in it (a tied tensor under any one of its names), no tensor is extra, and
    each has the model's shape and dtype. Errors name the file, the tensor, expected and found."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise TrainingError(f"{what} {path} is empty (0 bytes)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            found = {}
            for k in f.keys():
                sl = f.get_slice(k)
                found[k] = (tuple(sl.get_shape()), str(sl.get_dtype()))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise TrainingError(f"{what} {path} is not a readable safetensors file ({e})") from None
    state = model.state_dict()
    groups: dict[int, list[str]] = {}
    for k, t in state.items():  # names sharing storage (tied weights) form one group
        groups.setdefault(t.untyped_storage().data_ptr() if t.numel() else id(t), []).append(k)
    missing = [names[0] for names in groups.values() if not any(n in found for n in names)]
    if missing:
        raise TrainingError(f"{what} {path} lacks {len(missing)} tensor(s) of the model, e.g. {sorted(missing)[:3]}")
    extra = sorted(k for k in found if k not in state)
    if extra:
        raise TrainingError(f"{what} {path} has {len(extra)} tensor(s) the model does not, e.g. {extra[:3]}")
    dtype_names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                   torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL", torch.int8: "I8"}
    for k, (shape, dtype) in found.items():
        t = state[k]
        if shape != tuple(t.shape):
            raise TrainingError(f"{what} {path}: tensor {k!r} has shape {shape}, the model expects {tuple(t.shape)}")
        want = dtype_names.get(t.dtype, str(t.dtype))
        if dtype != want:
            raise TrainingError(f"{what} {path}: tensor {k!r} has dtype {dtype}, the model expects {want}")
    load_model(model, str(path), strict=False)


def load_mask_for(path: Path, model: torch.nn.Module, scope: list[str], device: torch.device) -> Mask:
    """``--prev-mask``: read and check against the scope (names, shapes, dtype)."""
    named = dict(model.named_parameters())
    try:
        return Mask.load(path, device=device, expect={n: named[n] for n in scope}, what="--prev-mask")
    except MaskError as e:
        raise TrainingError(str(e)) from None


# --- what a resumable checkpoint belongs to ------------------------------------------------------
def _sha256_tree(path: Path, skip: tuple[Path, ...] = ()) -> str:
    """sha256 over the relative names and contents of every file under ``path`` (or of the file)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.exists():
        return "absent"
    h = hashlib.sha256()
    skip_resolved = tuple(s.resolve() for s in skip)
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or any(
                f.resolve().is_relative_to(s) for s in skip_resolved):
            continue
        h.update(f"{rel}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def code_version(method_name: str, family: str | None = None) -> str:
    """A digest of the source that defines this job's behaviour (the loop, the family, the method's
    class): :func:`smcbench.versions.job_version`, the same string the job's params carry."""
    from .versions import job_version

    return job_version(family, method_name)


def job_fingerprint(spec: RunSpec) -> dict[str, str]:
    """The parts a checkpoint must match to be resumed: the job's params and seed, the contents of
    every input (start weights, previous mask, teacher, prepared data, pre-trained model) and the
    code version. Computed only when a checkpoint is saved or found."""
    p = spec.params
    params = {k: v for k, v in p.items() if k != "config_hash"}
    skip = (spec.out_dir,)
    parts = {
        "params": hashlib.sha256(json.dumps([params, spec.seed], sort_keys=True, default=str).encode()).hexdigest(),
        "data": _sha256_tree(spec.data_dir, skip),
        "pretrained": _sha256_tree(spec.pretrained_dir, skip),
        "code": code_version(p["method"], p.get("family")),
    }
    for key in ("start_weights", "prev_mask", "teacher_weights"):
        path = getattr(spec, key)
        parts[key] = sha256_file(Path(path)) if path is not None and Path(path).is_file() else str(path)
    return parts


# --- building blocks shared by the train and mask steps ---------------------------------------
def build_task(spec: RunSpec, device: torch.device):
    from .tasks import task_class

    p = spec.params
    cls = task_class(p["family"])
    return cls(p["dataset"], p["task"], spec.data_dir, spec.pretrained_dir, spec.seed, device)


def resolve_run_scope(model: torch.nn.Module, scope: str) -> list[str]:
    from .sparsity.scopes import resolve_scope

    return resolve_scope(model, scope)


def make_loss_batches(task, model) -> Callable[[int], Any]:
    """Losses on the first n training batches (the seeded orders of epochs 0, 1, 2, ... in turn),
    for SNIP-like scores and Fisher estimates."""

    def loss_batches(n: int):
        epoch, it, got = 0, iter(task.train_batches(0)), 0
        while got < n:
            batch = next(it, None)
            if batch is None:
                epoch += 1
                it = iter(task.train_batches(epoch))
                batch = next(it, None)
                if batch is None:
                    return  # no training batches at all
            got += 1
            yield task.loss(model, batch)

    return loss_batches


def total_steps_of(training: dict, steps_per_epoch: int) -> int:
    if training.get("max_steps"):
        return int(training["max_steps"])
    return int(training.get("epochs", 1)) * steps_per_epoch


def copy_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().to("cpu", copy=True) for n, t in model.named_parameters()}


# --- the parts of a training run ---------------------------------------------------------------
def build_optimizer(task, model: torch.nn.Module, training: dict) -> torch.optim.Optimizer:
    """AdamW over the task's parameter groups. The fused kernel is much cheaper on CPU when many
    moments are exactly zero (pruned weights): a masked step costs ~1.05x a dense one with it,
    ~1.2x without (bench/README.md)."""
    lr = float(training.get("lr", 1e-4))
    wd = float(training.get("weight_decay", 0.0))
    groups = task.param_groups(model, lr, wd)
    kwargs = dict(lr=lr, betas=tuple(training.get("betas", (0.9, 0.999))), eps=float(training.get("eps", 1e-8)),
                  weight_decay=wd)
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype the fused kernel does not cover
        return torch.optim.AdamW(groups, **kwargs)


def build_scheduler(optimizer, training: dict, total_steps: int, steps_per_epoch: int):
    """Warmup (``warmup_steps`` or ``warmup_ratio``) then the ``schedule`` decay."""
    warmup = int(training.get("warmup_steps", round(float(training.get("warmup_ratio", 0.0)) * total_steps)))
    step_size = int(training.get("step_size_steps", 0)) or int(training.get("step_size_epochs", 0)) * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(training.get("schedule", "linear"), warmup, total_steps, step_size,
                             float(training.get("step_gamma", 0.5))))


class Precision:
    """Mixed precision on GPUs (``training.amp``: bf16 default, fp16 with a loss scaler, or off);
    plain fp32 on CPU."""

    def __init__(self, device: torch.device, training: dict):
        amp = training.get("amp", "bf16")
        self.device_type = device.type
        self.enabled = device.type == "cuda" and amp in ("bf16", "fp16")
        self.dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.enabled and self.dtype == torch.float16 else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    def backward(self, loss: torch.Tensor, optimizer) -> None:
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state is not None:
            self.scaler.load_state_dict(state)


class Distiller:
    """Knowledge distillation from the dense fine-tune (``MethodInfo.distill_from_dense``).

    loss = (1 - α) · task loss + α · T² · KL(teacher ‖ student) on temperature-T softmaxes, with
    α = ``kd_alpha`` and T = ``kd_temperature`` from the method's settings. Needs the task's
    optional ``logits(model, batch) -> Tensor``: one row of class (or vocabulary) logits per
    prediction, shape ``(..., C)`` (flattened to ``(N, C)``; the KL is averaged over the rows).
    """

    def __init__(self, task, teacher: torch.nn.Module, alpha: float, temperature: float):
        if not callable(getattr(task, "logits", None)):
            raise TrainingError(f"knowledge distillation needs the task's logits(model, batch) method; "
                                f"{type(task).__name__} has none")
        self.task, self.teacher, self.alpha, self.temperature = task, teacher, float(alpha), float(temperature)

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        task_loss = self.task.loss(model, batch)
        if self.alpha == 0.0:
            return task_loss
        with torch.no_grad():
            t_logits = self.task.logits(self.teacher, batch)
        s_logits = self.task.logits(model, batch)
        return (1.0 - self.alpha) * task_loss + self.alpha * kd_loss(s_logits, t_logits, self.temperature)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the prediction rows."""
    T = float(temperature)
    c = student_logits.shape[-1]
    s = torch.log_softmax(student_logits.reshape(-1, c).float() / T, dim=-1)
    t = torch.log_softmax(teacher_logits.reshape(-1, c).float() / T, dim=-1)
    return torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean") * (T * T)


#: ``Selector.best["state"]`` when the best evaluation is the last step's: the live model itself.
LIVE = "live model"


@dataclass
class Selector:
    """Model selection: the best validation evaluation among those at the method's final sparsity.

    Keeps a CPU copy of the best weights and mask. With ``best_on_test`` it also evaluates the test
    splits at every eligible evaluation (the paper's "best epoch on test", reported separately)."""

    task: Any
    target: float
    best_on_test: bool = False
    label: str = ""
    total_steps: int | None = None
    best: dict = field(default_factory=lambda: {"value": -math.inf, "step": -1, "state": None, "mask": None,
                                                "validation": None})
    compat: dict = field(default_factory=dict)  # (split, metric) -> best test value over eval points
    history: list = field(default_factory=list)

    def at_final_sparsity(self, mask: Mask | None) -> bool:
        return mask is None or mask.sparsity() >= self.target - 1.0 / max(1, mask.numel()) - 1e-9

    def evaluate(self, model: torch.nn.Module, mask: Mask | None, step: int) -> None:
        task = self.task
        model.eval()
        val = task.evaluate(model, "validation")
        # A task may select on a cheaper validation metric (translation: neg_loss instead of BLEU);
        # the selection metric is always "higher is better" unless it is the primary one.
        sel = getattr(task, "selection_metric", task.primary_metric)
        if sel not in val:
            raise TrainingError(f"run {self.label}: validation metrics {sorted(val)} lack the selection metric {sel!r}")
        score = val[sel] if (task.higher_is_better or sel != task.primary_metric) else -val[sel]
        eligible = self.at_final_sparsity(mask)
        self.history.append({"step": step, "validation": val, "eligible": eligible})
        if eligible and score > self.best["value"]:
            # at the last step the live model is the final state: no CPU copy (a model's size)
            live = self.total_steps is not None and step >= self.total_steps
            self.best.update(value=score, step=step, validation=dict(val),
                             state=LIVE if live else {n: t.detach().to("cpu", copy=True)
                                                      for n, t in model.state_dict().items()},
                             mask=None if mask is None else {n: t.detach().to("cpu", copy=True) for n, t in mask.items()})
        if self.best_on_test and eligible:
            better = max if task.higher_is_better else min
            for split in task.eval_splits():
                for metric, v in task.evaluate(model, split).items():
                    key = (split, metric)
                    self.compat[key] = v if key not in self.compat else better(self.compat[key], v)
        model.train()

    def state_dict(self) -> dict:
        return {"best": self.best, "compat": self.compat, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.best.update(state["best"])
        self.compat.update(state["compat"])
        self.history[:] = state["history"]


# --- the mask step (kept while the workflow still has a separate ``mask`` rule) ----------------
def compute_before_mask(spec: RunSpec) -> dict:
    """Compute a before-training mask (``omp_before``, ``random_before``, ``snip``) and save it.

    The same computation a training job does in-job when no ``--prev-mask`` is given: seeded,
    on the freshly built model, so every method that starts from this init gets the same mask."""
    p = spec.params
    device = pick_device(p.get("device", "auto"))
    seed_everything(spec.seed)
    task = build_task(spec, device)
    model = task.build_model().to(device)
    scope = resolve_run_scope(model, p["scope"])
    method = build_method(p["method"], p["method_settings"])
    ctx = SparsityContext(model=model, scope=scope, target_sparsity=p["target_sparsity"], seed=spec.seed,
                          total_steps=0, loss_batches=make_loss_batches(task, model),
                          settings=p["method_settings"], log=spec.log)
    mask = method.compute_mask(ctx)
    if mask is None:
        raise TrainingError(f"method {p['method']!r} computed no mask")
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    mask.save(spec.out_dir / "mask.safetensors", {"method": p["method"], "scope": p["scope"],
                                                   "target_sparsity": str(p["target_sparsity"])})
    info = {"method": p["method"], "scope": p["scope"], "target_sparsity": p["target_sparsity"],
            "realized_sparsity": mask.sparsity(), "num_weights": mask.numel()}
    write_json_atomic(spec.out_dir / "mask.json", info)
    spec.log(f"mask {p['method']} target {p['target_sparsity']:.4f} realized {mask.sparsity():.6f}")
    return info


# --- the training step ---------------------------------------------------------------------
def run_training(spec: RunSpec) -> dict:
    """Train one run end to end and write its outputs into ``spec.out_dir``; returns metrics."""
    t_start = time.time()
    p = spec.params
    name, info = p["method"], method_info(p["method"])
    training = p["task"].get("training", {})
    device = pick_device(p.get("device", "auto"))
    memory = MemoryMeter(device)
    run_label = str(spec.out_dir)
    target = float(p["target_sparsity"])
    if info.distill_from_dense and spec.teacher_weights is None:
        raise TrainingError(f"run {run_label}: method {name!r} distills from the dense fine-tune: "
                            "pass --teacher-weights")
    seed_everything(spec.seed)

    # --- task, model, starting weights, method ----------------------------------------------
    task = build_task(spec, device)
    model = task.build_model().to(device)
    scope_name = p["scope"]
    scope = resolve_run_scope(model, scope_name)
    # θ_pre: the pre-trained weights with the seeded head init (rewind target, drift reference)
    pre_state = copy_parameters(model) if info.keeps_pretrained else None
    # which of them are fresh inits (drift.csv); now, while memory is far below the training peak
    fresh = fresh_tensors(task, pre_state, scope) if info.records_drift else None
    if info.start_from != "pretrained":
        if spec.start_weights is None:
            raise TrainingError(f"run {run_label}: method {name!r} starts from trained weights but none were given")
        load_weights(model, spec.start_weights, "--start-weights")
    prev_mask = load_mask_for(spec.prev_mask, model, scope, device) if spec.prev_mask else None
    steps_per_epoch = task.steps_per_epoch()
    total_steps = total_steps_of(training, steps_per_epoch)
    method = build_method(name, p["method_settings"])
    ctx = SparsityContext(model=model, scope=scope, target_sparsity=target, seed=spec.seed,
                          total_steps=total_steps, loss_batches=make_loss_batches(task, model),
                          prev_mask=prev_mask, rewind_state=pre_state if info.rewinds_to_pretrained else None,
                          round=int(p.get("level", 1)) or 1, settings=p["method_settings"], log=spec.log)
    # a checkpoint of this very job (same params, inputs and code) is resumed below; the method
    # may skip expensive work in on_train_begin that load_state_dict overwrites (ctx.resuming)
    ckpt = Checkpointer.from_env(spec.out_dir, lambda: job_fingerprint(spec), spec.log)
    resumed = ckpt.load()
    ckpt.prepare_fingerprint()  # hash the inputs in the background, ready for the first save
    ctx.resuming = resumed is not None
    t_mask = time.perf_counter()
    method.on_train_begin(ctx)  # before-training masks are computed here when no --prev-mask is given
    mask_seconds = time.perf_counter() - t_mask

    # --- optimizer, schedule, precision, loss, selection ------------------------------------
    optimizer = build_optimizer(task, model, training)
    ctx.optimizer = optimizer
    scheduler = build_scheduler(optimizer, training, total_steps, steps_per_epoch)
    precision = Precision(device, training)
    clip = float(training.get("clip_norm", 0.0))
    eval_every = int(training.get("eval_every", 0)) or steps_per_epoch
    selector = Selector(task, target, bool(training.get("report_best_on_test", False)), run_label, total_steps)
    loss_fn = task.loss
    if info.distill_from_dense:
        kd = method.config
        if not hasattr(kd, "kd_alpha") or not hasattr(kd, "kd_temperature"):
            raise TrainingError(f"method {name!r} sets distill_from_dense but its settings class "
                                f"{type(kd).__name__} lacks kd_alpha/kd_temperature (subclass DistillSettings)")
        teacher = task.build_model().to(device)
        load_weights(teacher, spec.teacher_weights, "--teacher-weights")
        teacher.eval().requires_grad_(False)
        loss_fn = Distiller(task, teacher, kd.kd_alpha, kd.kd_temperature).loss

    # --- resume from this job's own checkpoint ------------------------------------------------
    pos = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "last_loss": float("nan"), "step_seconds": 0.0}

    def resume_state() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "precision": precision.state_dict(),
                "method": method.state_dict(), "selector": selector.state_dict(), "position": dict(pos)}

    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        precision.load_state_dict(resumed["precision"])
        method.load_state_dict(resumed["method"])
        selector.load_state_dict(resumed["selector"])
        pos.update(resumed["position"])
        restore_rng_state(resumed["rng"])  # last: building the parts above may draw numbers

    # --- the loop ---------------------------------------------------------------------------
    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=pos["step"], desc=f"{p['dataset']}/{name}/{scope_name}/s={target:.3f}",
               mininterval=2.0, disable=bool(os.environ.get("SMCBENCH_NO_PROGRESS")), leave=False)
    model.train()
    while pos["step"] < total_steps:
        batches = task.train_batches(pos["epoch"])
        for _ in range(pos["batch_in_epoch"]):  # resumed mid-epoch: skip the batches already trained on
            next(batches, None)
        for batch in batches:
            if pos["step"] >= total_steps:
                break
            step = pos["step"]
            t_step = time.perf_counter()
            with precision.autocast():
                loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"run {run_label}: loss is {loss.item()} at step {step} "
                                    f"(lr {scheduler.get_last_lr()[0]:.3g}); lower the learning rate or check the data")
            precision.backward(loss, optimizer)
            method.on_before_optimizer_step(ctx, step)
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            precision.step(optimizer)
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            method.on_after_optimizer_step(ctx, step)
            pos["step_seconds"] += time.perf_counter() - t_step
            pos["step"] = step = step + 1
            if step % 50 == 0 or step == total_steps:
                pos["last_loss"] = loss.item()
            bar.update(1)
            if step % eval_every == 0 or step == total_steps:
                selector.evaluate(model, method.mask, step)
            pos["batch_in_epoch"] += 1
            ckpt.maybe_save(step, resume_state)
        pos["epoch"] += 1
        pos["batch_in_epoch"] = 0
    bar.close()
    final_mask = method.on_train_end(ctx)
    if selector.best["state"] is None:  # no eligible evaluation (e.g. zero steps)
        selector.evaluate(model, final_mask, pos["step"])
    if selector.best["state"] != LIVE:
        model.load_state_dict(selector.best["state"])
        selector.best["state"] = None  # the copy is the live model now
    if selector.best["mask"] is not None:
        final_mask = Mask(selector.best["mask"])
    model.eval()

    # --- report: the selected checkpoint, test evaluated once ---------------------------------
    realized, layerwise = scope_sparsity(model, scope)
    rows = []
    for split in ["validation"] + task.eval_splits():
        res = dict(selector.best["validation"] if split == "validation" and selector.best["validation"]
                   else task.evaluate(model, split))
        n = res.pop("n", None)  # a task may report its number of examples alongside its metrics
        base = task.baseline(split) if split != "validation" else {}
        for metric, v in res.items():
            rows.append({"split": split, "metric": metric, "value": v, "n": n,
                         "value_best_on_test": selector.compat.get((split, metric)) if split != "validation" else None,
                         "baseline": base.get(metric)})
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    if final_mask is not None:
        final_mask.save(spec.out_dir / "mask.safetensors", {"method": name, "scope": scope_name,
                                                             "target_sparsity": str(target)})
    if info.records_drift:
        write_csv_atomic(spec.out_dir / "drift.csv", drift_rows(model, scope, pre_state, fresh))
    if spec.save_model:
        save_weights(model, spec.out_dir / "model.safetensors")
    metrics = {
        "dataset": p["dataset"], "family": p["family"], "method": name, "scope": scope_name,
        "level": p.get("level", 0), "target_sparsity": target, "realized_sparsity": realized,
        "mask_sparsity": final_mask.sparsity() if final_mask is not None else 0.0,
        "scope_size": sum(r["numel"] for r in layerwise), "seed": spec.seed,
        "primary_metric": task.primary_metric, "signature": task.signature(),
        "selection": {"rule": "best validation at final sparsity", "step": selector.best["step"],
                      "eval_every": eval_every, "total_steps": total_steps,
                      "report_best_on_test": selector.best_on_test},
        "rows": rows, "history": selector.history, "final_train_loss": pos["last_loss"],
        "wall_time_s": time.time() - t_start, **memory.report(),
        # the training steps alone (forward, backward, optimizer, mask hooks; no evaluation or
        # checkpoint saves), summed over attempts when resumed
        "step_seconds": pos["step_seconds"] / max(1, total_steps), "mask_wall_time_s": mask_seconds,
        "n_parameters": sum(t.numel() for t in model.parameters()),
        "git_revision": git_revision(), "device": str(device), "config_hash": p.get("config_hash", ""),
        # realized sparsity per tensor (input → output order); the results step gathers every run's
        # rows into results/<suite>/layerwise.csv, so no per-run file for Snakemake to track
        "layerwise": layerwise,
    }
    try:
        metrics["method_stats"] = method.stats()
    except Exception as e:  # stats are informative only
        metrics["method_stats"] = {"error": repr(e)}
    write_json_atomic(spec.out_dir / "metrics.json", metrics)
    ckpt.clear()
    primary = next((r["value"] for r in rows if r["split"] != "validation" and r["metric"] == task.primary_metric), None)
    spec.log(f"done {run_label}: {task.primary_metric}={primary} realized_sparsity={realized:.4f} "
             f"target={target:.4f} steps={total_steps} in {metrics['wall_time_s']:.1f}s")
    return metrics


def fresh_tensors(task, pre_state: dict[str, torch.Tensor], scope: list[str]) -> set[str] | None:
    """Scope tensors whose starting value is a fresh (seeded) init rather than the pre-trained
    checkpoint's: the model is built once more with another seed and the tensors that differ are
    the fresh ones (heads, pooler, task decoders). None when the task cannot be rebuilt so."""
    seed = getattr(task, "seed", None)
    if seed is None:
        return None
    try:
        task.seed = seed + 1
        with torch.random.fork_rng(devices=[]):
            other = dict(task.build_model().named_parameters())
    except Exception:  # informative only: the column is left out
        return None
    finally:
        task.seed = seed
    return {n for n in scope if n in other and not torch.equal(other[n].detach().cpu(), pre_state[n])}


def drift_rows(model: torch.nn.Module, scope: list[str], pre_state: dict[str, torch.Tensor],
               fresh: set[str] | None = None) -> list[dict]:
    """Relative distance of each scope tensor from its starting value, in model order;
    ``from_pretrained`` (when ``fresh`` is known): the start came from the pre-trained checkpoint."""
    rows = []
    for order, (n, t) in enumerate(model.named_parameters()):
        if n not in scope:
            continue
        ref = pre_state[n].float()
        row = {"order": order, "name": n, "numel": t.numel(),
               "rel_drift": float((t.detach().cpu().float() - ref).norm() / ref.norm().clamp_min(1e-12))}
        if fresh is not None:
            row["from_pretrained"] = n not in fresh
        rows.append(row)
    return rows
