"""The demo's short pre-training, shared by every family: padding, BERT-style masking and one
optimizer loop. Each family supplies only what differs, a function giving the loss of a step.

Example (a masked-LM step)::

    from smcbench.tasks.pretrain import mlm_mask, pretrain

    def step_loss(step, g):
        idx = torch.randint(0, len(data), (8,), generator=g)
        inputs, labels = mlm_mask(data[idx], attn[idx], vocab_size, g, 0.15)
        return model(input_ids=inputs, attention_mask=attn[idx], labels=labels).loss

    summary = pretrain(model.parameters(), step_loss, PretrainSettings(steps=500, lr=4e-3, seed=0))

The loop: AdamW (betas 0.9/0.98, weight decay 0.01), linear warm-up over 10 % of the steps then
linear decay to ``min_lr_ratio`` of the peak, gradient clipping at 1.0, seeded generator, one
thread by default (a model this small gains nothing from intra-op threads and slows down on a
busy machine), and the global torch RNG left untouched for the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch


@dataclass(frozen=True)
class PretrainSettings:
    steps: int = 500
    lr: float = 3e-3
    seed: int = 0
    warmup_fraction: float = 0.1
    min_lr_ratio: float = 0.0
    clip_norm: float = 1.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    threads: int = 1
    log_every: int = 0          # 0: no progress lines


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    """Right-pad integer sequences into a (N, max_len) long tensor."""
    width = max(1, max((len(s) for s in seqs), default=1))
    if not seqs:
        return torch.full((0, width), value, dtype=torch.long)
    # one tensor from padded Python lists: a torch.tensor per row cost ~20 us each (1.6 s of the
    # translation pre-training's 800 steps)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def pad_with_mask(seqs: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of right-padded sequences."""
    ids = pad(seqs, value)
    width = ids.shape[1]
    attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], dtype=torch.long) \
        if seqs else torch.zeros_like(ids)
    return ids, attn


def mlm_mask(x: torch.Tensor, attn: torch.Tensor, vocab_size: int, g: torch.Generator, prob: float,
             mask_id: int = 4, n_special: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a batch: ``prob`` of the real tokens (ids ≥ ``n_special``, inside the
    attention mask) become targets; of those 80 % turn into ``mask_id``, 10 % a random real token,
    10 % stay. Returns (inputs, labels) with labels -100 where nothing is predicted."""
    special = (x < n_special) | (attn == 0)
    pick = (torch.rand(x.shape, generator=g) < prob) & ~special
    labels = torch.where(pick, x, torch.full_like(x, -100))
    r = torch.rand(x.shape, generator=g)
    inputs = x.clone()
    inputs[pick & (r < 0.8)] = mask_id
    rand_words = torch.randint(n_special, vocab_size, x.shape, generator=g)
    swap = pick & (r >= 0.8) & (r < 0.9)
    inputs[swap] = rand_words[swap]
    return inputs, labels


def pretrain(params: Iterable[torch.nn.Parameter], step_loss: Callable[[int, torch.Generator], torch.Tensor],
             settings: PretrainSettings, log: Callable[[str], None] | None = None) -> dict:
    """Run ``settings.steps`` optimizer steps on ``step_loss(step, generator)``; return a summary
    (``pretrain_steps``, ``loss_first``, ``loss_last`` = mean of the last 10 %, ``seconds``,
    ``cpu_seconds``)."""
    params = [p for p in params if p.requires_grad]
    steps = int(settings.steps)
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay,
                            betas=tuple(settings.betas))
    warmup = max(1, int(steps * settings.warmup_fraction))
    floor = float(settings.min_lr_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min((t + 1) / warmup, max(floor, (steps - t) / max(1, steps - warmup))))
    g = torch.Generator().manual_seed(int(settings.seed))
    threads = torch.get_num_threads()
    torch.set_num_threads(int(settings.threads))
    t0, c0 = time.perf_counter(), time.process_time()
    losses: list[float] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(settings.seed))
            for step in range(steps):
                loss = step_loss(step, g)
                loss.backward()
                if settings.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, settings.clip_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.item()))
                if log and settings.log_every and (step + 1) % settings.log_every == 0:
                    tail = losses[-20:]
                    log(f"pretrain step {step + 1}/{steps} loss {sum(tail) / len(tail):.3f}")
    finally:
        torch.set_num_threads(threads)
    tail = losses[-max(1, len(losses) // 10):]
    return {"pretrain_steps": steps, "loss_first": round(losses[0], 4) if losses else None,
            "loss_last": round(sum(tail) / len(tail), 4) if losses else None,
            "seconds": round(time.perf_counter() - t0, 2),
            "cpu_seconds": round(time.process_time() - c0, 2)}
