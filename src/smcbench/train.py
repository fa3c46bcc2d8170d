"""The one training loop. It joins a task (data, model, loss, metric) and a sparse method (mask
hooks) without either knowing the other.

Selection on validation, report test: the checkpoint kept is the best *validation* evaluation among
those taken at the method's final sparsity (GMP's intermediate, denser checkpoints are never
selected); the paper's "best epoch on test" survives only as the ``value_best_on_test`` column.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import Checkpointer, restore_rng_state
from .sparsity.base import SparsityContext
from .sparsity.mask import Mask
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


def git_revision() -> str:
    rev = os.environ.get("SMCBENCH_GIT_REVISION")
    if rev:
        return rev
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    os.replace(tmp, path)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Save the model's state with safetensors (tied tensors handled), atomically."""
    from safetensors.torch import save_model

    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))
    os.replace(tmp, path)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load weights saved by :func:`save_weights` (safetensors only; nothing is unpickled)."""
    from safetensors.torch import load_model

    missing, unexpected = load_model(model, str(path), strict=False)
    if missing or unexpected:
        raise TrainingError(f"{path}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


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
    """Losses on the first n training batches (seeded order of epoch 0), for SNIP-like scores."""

    def loss_batches(n: int):
        it = iter(task.train_batches(0))
        for _ in range(n):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(task.train_batches(1))
                batch = next(it)
            yield task.loss(model, batch)

    return loss_batches


def total_steps_of(training: dict, steps_per_epoch: int) -> int:
    if training.get("max_steps"):
        return int(training["max_steps"])
    return int(training.get("epochs", 1)) * steps_per_epoch


# --- the mask step (before-training masks, computed once per level and seed) -------------------
def compute_before_mask(spec: RunSpec) -> dict:
    """Compute a before-training mask (``omp_before``, ``random_before``, ``snip``) and save it."""
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
    name = p["method"]
    info = method_info(name)
    training = p["task"].get("training", {})
    device = pick_device(p.get("device", "auto"))
    run_label = str(spec.out_dir)
    seed_everything(spec.seed)

    task = build_task(spec, device)
    model = task.build_model().to(device)
    scope_name = p["scope"]
    scope = resolve_run_scope(model, scope_name)

    # θ_pre: the pre-trained weights with the seeded head init; LTH rewinds to it, drift uses it.
    keep_pre = name == "dense" or name == "lth"
    pre_state = ({n: t.detach().to("cpu", copy=True) for n, t in model.named_parameters()}
                 if keep_pre else None)
    if info.start_from in ("dense", "previous_round"):
        if spec.start_weights is None:
            raise TrainingError(f"run {run_label}: method {name!r} starts from trained weights but none were given")
        load_weights(model, spec.start_weights)
    prev_mask = Mask.load(spec.prev_mask, device=device) if spec.prev_mask else None

    steps_per_epoch = task.steps_per_epoch()
    total_steps = total_steps_of(training, steps_per_epoch)
    method = build_method(name, p["method_settings"])
    ctx = SparsityContext(model=model, scope=scope, target_sparsity=p["target_sparsity"], seed=spec.seed,
                          total_steps=total_steps, loss_batches=make_loss_batches(task, model),
                          prev_mask=prev_mask, rewind_state=pre_state if name == "lth" else None,
                          round=int(p.get("level", 1)) or 1, settings=p["method_settings"], log=spec.log)
    method.on_train_begin(ctx)

    lr = float(training.get("lr", 1e-4))
    wd = float(training.get("weight_decay", 0.0))
    betas = tuple(training.get("betas", (0.9, 0.999)))
    groups = task.param_groups(model, lr, wd)
    # The fused AdamW is much cheaper on CPU when many moments are exactly zero (pruned weights):
    # a masked step costs ~1.05x a dense one with it, ~1.2x without (bench/README.md).
    adam_kwargs = dict(lr=lr, betas=betas, eps=float(training.get("eps", 1e-8)), weight_decay=wd)
    try:
        optimizer = torch.optim.AdamW(groups, fused=True, **adam_kwargs)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype the fused kernel does not cover
        optimizer = torch.optim.AdamW(groups, **adam_kwargs)
    ctx.optimizer = optimizer
    warmup = int(training.get("warmup_steps", round(float(training.get("warmup_ratio", 0.0)) * total_steps)))
    step_size = int(training.get("step_size_steps", 0)) or int(training.get("step_size_epochs", 0)) * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(training.get("schedule", "linear"), warmup, total_steps, step_size,
                             float(training.get("step_gamma", 0.5))))
    clip = float(training.get("clip_norm", 0.0))
    eval_every = int(training.get("eval_every", 0)) or steps_per_epoch
    best_on_test = bool(training.get("report_best_on_test", True))
    use_amp = device.type == "cuda" and training.get("amp", "bf16") in ("bf16", "fp16")
    amp_dtype = torch.bfloat16 if training.get("amp", "bf16") == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    target = float(p["target_sparsity"])

    best = {"value": -math.inf, "step": -1, "state": None, "mask": None}
    compat = {}  # split -> best test value over eval points (paper's selection, reported separately)
    history = []

    def evaluate_and_select(step: int) -> None:
        model.eval()
        val = task.evaluate(model, "validation")
        # A task may select on a cheaper validation metric (translation: neg_loss instead of BLEU);
        # the selection metric is always "higher is better" unless it is the primary one.
        sel = getattr(task, "selection_metric", task.primary_metric)
        if sel not in val:
            raise TrainingError(f"run {run_label}: validation metrics {sorted(val)} lack the selection metric {sel!r}")
        score = val[sel] if (task.higher_is_better or sel != task.primary_metric) else -val[sel]
        # Only checkpoints at the method's final sparsity compete (GMP reaches s at t1).
        cur_mask = method.mask
        at_final = cur_mask is None or name == "dense" or cur_mask.sparsity() >= target - 1.0 / max(1, cur_mask.numel()) - 1e-9
        history.append({"step": step, "validation": val, "eligible": at_final})
        if at_final and score > best["value"]:
            best.update(value=score, step=step,
                        state={n: t.detach().to("cpu", copy=True) for n, t in model.state_dict().items()},
                        mask=None if cur_mask is None else {n: t.detach().clone() for n, t in cur_mask.items()})
        if best_on_test and at_final:
            for split in task.eval_splits():
                res = task.evaluate(model, split)
                for metric, v in res.items():
                    key = (split, metric)
                    compat[key] = max(compat.get(key, -math.inf), v) if task.higher_is_better else min(compat.get(key, math.inf), v)
        model.train()

    from tqdm import tqdm

    model.train()
    step = 0
    # Preemption safety: resume from the last checkpoint of this exact job (same params, seed,
    # inputs); save every few minutes and on SIGTERM/SIGUSR1 (see checkpoint.py).
    ckpt = Checkpointer.from_env(spec.out_dir, json.dumps([p, spec.seed, str(spec.start_weights), str(spec.prev_mask)],
                                                          sort_keys=True, default=str), spec.log)
    epoch, batch_in_epoch, last_loss = 0, 0, float("nan")

    def resume_state() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "mask": dict(method.mask) if method.mask is not None else None,
                "method_history": getattr(method, "history", None), "best": best, "compat": compat,
                "history": history, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "last_loss": last_loss}

    resumed = ckpt.load()
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        if scaler is not None:
            scaler.load_state_dict(resumed["scaler"])
        for n, t in (resumed["mask"] or {}).items():
            method.mask[n].copy_(t)
        if resumed["method_history"] is not None:
            method.history = resumed["method_history"]
        best.update(resumed["best"])
        compat.update(resumed["compat"])
        history[:] = resumed["history"]
        step, epoch, batch_in_epoch, last_loss = (resumed["step"], resumed["epoch"], resumed["batch_in_epoch"],
                                                  resumed["last_loss"])
        restore_rng_state(resumed["rng"])
    bar = tqdm(total=total_steps, initial=step, desc=f"{p['dataset']}/{name}/{scope_name}/s={target:.3f}", mininterval=2.0,
               disable=bool(os.environ.get("SMCBENCH_NO_PROGRESS")), leave=False)
    while step < total_steps:
        batches = task.train_batches(epoch)
        for _ in range(batch_in_epoch):  # resumed mid-epoch: skip the batches already trained on
            next(batches, None)
        for batch in batches:
            if step >= total_steps:
                break
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = task.loss(model, batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"run {run_label}: loss is {loss.item()} at step {step} (lr {scheduler.get_last_lr()[0]:.3g}); "
                                    "lower the learning rate or check the data")
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            method.on_before_optimizer_step(ctx, step)
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            method.on_after_optimizer_step(ctx, step)
            step += 1
            last_loss = loss.item() if step % 50 == 0 or step == total_steps else last_loss
            bar.update(1)
            if step % eval_every == 0 or step == total_steps:
                evaluate_and_select(step)
            batch_in_epoch += 1
            ckpt.maybe_save(step, resume_state)
        epoch += 1
        batch_in_epoch = 0
    bar.close()
    final_mask = method.on_train_end(ctx)
    if best["state"] is None:  # no eligible evaluation (should not happen: the last step is evaluated)
        evaluate_and_select(step)
    model.load_state_dict(best["state"])
    if best["mask"] is not None:
        final_mask = Mask({n: t for n, t in best["mask"].items()})
    model.eval()

    # --- report -------------------------------------------------------------------------------
    realized, layerwise = scope_sparsity(model, scope)
    rows = []
    splits = ["validation"] + task.eval_splits()
    for split in splits:
        res = dict(task.evaluate(model, split))
        n = res.pop("n", None)  # a task may report its number of examples alongside its metrics
        base = task.baseline(split) if split != "validation" else {}
        for metric, v in res.items():
            rows.append({"split": split, "metric": metric, "value": v, "n": n,
                         "value_best_on_test": compat.get((split, metric)) if split != "validation" else None,
                         "baseline": base.get(metric)})
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    if final_mask is not None:
        final_mask.save(spec.out_dir / "mask.safetensors", {"method": name, "scope": scope_name,
                                                             "target_sparsity": str(target)})
    write_csv(spec.out_dir / "layerwise.csv", layerwise)
    if pre_state is not None and name == "dense":
        drift = []
        for order, (n, t) in enumerate(model.named_parameters()):
            if n not in scope:
                continue
            ref = pre_state[n].float()
            drift.append({"order": order, "name": n, "numel": t.numel(),
                          "rel_drift": float((t.detach().cpu().float() - ref).norm() / ref.norm().clamp_min(1e-12))})
        write_csv(spec.out_dir / "drift.csv", drift)
    if spec.save_model:
        save_weights(model, spec.out_dir / "model.safetensors")
    metrics = {
        "dataset": p["dataset"], "family": p["family"], "method": name, "scope": scope_name,
        "level": p.get("level", 0), "target_sparsity": target, "realized_sparsity": realized,
        "mask_sparsity": final_mask.sparsity() if final_mask is not None else 0.0,
        "scope_size": sum(r["numel"] for r in layerwise), "seed": spec.seed,
        "primary_metric": task.primary_metric, "signature": task.signature(),
        "selection": {"rule": "best validation at final sparsity", "step": best["step"],
                      "eval_every": eval_every, "total_steps": total_steps},
        "rows": rows, "history": history, "final_train_loss": last_loss,
        "wall_time_s": time.time() - t_start, "peak_mem_mb": peak_memory_mb(device),
        "git_revision": git_revision(), "device": str(device), "config_hash": p.get("config_hash", ""),
    }
    if hasattr(method, "stats"):
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
