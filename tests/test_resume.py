"""Preemption-safe training: checkpoints round-trip exactly, saves are atomic, resume is bitwise.

The first tests drive :class:`smcbench.checkpoint.Checkpointer` with a small stand-alone loop
(dropout, Adam, LR schedule, a mask); the last ones interrupt the real training loop.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from smcbench.checkpoint import (PREEMPTED_EXIT_CODE, Checkpointer, Preempted, capture_rng_state,
                                 restore_rng_state)

TOTAL_STEPS = 24


def _build(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.3), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / (TOTAL_STEPS + 1))
    mask = {"0.weight": torch.rand(16, 6, generator=torch.Generator().manual_seed(1)) > 0.5}
    return model, opt, sched, mask


def _toy_train(run_dir, interrupt_at: int | None = None, every_minutes: float = 0.0):
    """A loop shaped like smcbench's: resume, step, enforce mask, maybe_save; returns the model."""
    model, opt, sched, mask = _build()
    ckpt = Checkpointer(run_dir, every_minutes=every_minutes, fingerprint="toy", log=lambda s: None)
    start, best = 0, {"best_loss": None, "best_step": -1}
    state = ckpt.load()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        mask = state["masks"]
        best = state["extra"]
        start = state["step"] + 1
        restore_rng_state(state["rng"])
    else:
        random.seed(5)
        np.random.seed(5)
    for step in range(start, TOTAL_STEPS):
        gen = torch.Generator().manual_seed(1000 + step)          # data order from (seed, step)
        x = torch.randn(8, 6, generator=gen) + float(np.random.rand()) + random.random()
        y = torch.randint(0, 3, (8,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)     # dropout draws from torch RNG
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model[0].weight.mul_(mask["0.weight"])
        if best["best_loss"] is None or loss.item() < best["best_loss"]:
            best = {"best_loss": loss.item(), "best_step": step}
        if step == interrupt_at:
            os.kill(os.getpid(), signal.SIGTERM)                  # what SLURM does before a kill
        ckpt.maybe_save(step, lambda: {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                       "scheduler": sched.state_dict(), "masks": mask, "extra": best})
    ckpt.clear()
    return model, best


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    ref, ref_best = _toy_train(tmp_path / "ref")
    run = tmp_path / "run"
    with pytest.raises(Preempted) as info:
        _toy_train(run, interrupt_at=9)
    assert info.value.code == PREEMPTED_EXIT_CODE and info.value.step == 9
    assert (run / ".checkpoint" / "state.json").exists()
    assert signal.getsignal(signal.SIGTERM) is before              # handlers given back
    resumed, best = _toy_train(run)
    assert _same_weights(ref, resumed)
    assert best == ref_best
    assert not (run / ".checkpoint").exists()                      # cleared after success


def test_round_trip_is_exact_and_pickle_free(tmp_path):
    model, opt, sched, mask = _build()
    loss = model(torch.randn(4, 6)).sum()
    loss.backward()
    opt.step()
    sched.step()
    tied = torch.arange(6.0)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "masks": mask,
             "extra": {"best": 0.5, "history": [1, 2.5, None], "__odd": True, "nested": (1, "a")},
             "tied": {"a": tied, "b": tied, "view": tied[2:]}}
    ckpt = Checkpointer(tmp_path, every_minutes=0, fingerprint="fp", log=lambda s: None)
    rng_before = capture_rng_state()
    ckpt.save(3, state)
    back = Checkpointer(tmp_path, fingerprint="fp", log=lambda s: None).load()
    ckpt.close()
    assert back["step"] == 3
    for k, v in model.state_dict().items():
        assert torch.equal(back["model"][k], v)
    o1, o2 = opt.state_dict(), back["optimizer"]
    assert set(o2["state"]) == set(o1["state"]) and all(isinstance(k, int) for k in o2["state"])
    for i in o1["state"]:
        for k, v in o1["state"][i].items():
            assert torch.equal(o2["state"][i][k], v)
    assert o2["param_groups"] == o1["param_groups"]
    assert back["scheduler"] == sched.state_dict()
    assert back["masks"]["0.weight"].dtype == torch.bool and torch.equal(back["masks"]["0.weight"], mask["0.weight"])
    assert back["extra"] == state["extra"]
    assert torch.equal(back["tied"]["view"], tied[2:])
    # RNG: restoring the saved state replays the same draws
    torch.rand(3), np.random.rand(), random.random()
    restore_rng_state(back["rng"])
    after = (torch.rand(3), np.random.rand(), random.random())
    restore_rng_state(rng_before)
    assert torch.equal(after[0], torch.rand(3)) and after[1] == np.random.rand() and after[2] == random.random()
    # the structure is plain JSON, the tensors plain safetensors: nothing to unpickle
    files = sorted(p.name for p in (tmp_path / ".checkpoint").iterdir())
    assert files[0] == "state.json" and len(files) == 2 and files[1].endswith(".safetensors")
    json.loads((tmp_path / ".checkpoint" / "state.json").read_text())


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, *_ = _build()
    ckpt = Checkpointer(tmp_path, every_minutes=0, fingerprint="fp", log=lambda s: None)
    ckpt.save(1, {"model": model.state_dict()})
    import safetensors.torch

    def explode(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(safetensors.torch, "save_file", explode)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(OSError):
        ckpt.save(2, {"model": model.state_dict()})
    monkeypatch.undo()
    back = ckpt.load()
    ckpt.close()
    assert back["step"] == 1
    assert not torch.equal(back["model"]["0.weight"], model[0].weight)
    assert [p.name for p in (tmp_path / ".checkpoint").iterdir() if ".tmp" in p.name] == []


def test_other_fingerprint_or_garbage_is_not_resumed(tmp_path):
    a = Checkpointer(tmp_path, fingerprint="settings-A", log=lambda s: None)
    a.save(4, {"x": torch.ones(2)})
    a.close()
    logs = []
    b = Checkpointer(tmp_path, fingerprint="settings-B", log=logs.append)
    assert b.load() is None and "made by another job (changed: settings)" in logs[-1]
    assert not (tmp_path / ".checkpoint").exists()
    b.save(5, {"x": torch.ones(2)})
    (tmp_path / ".checkpoint" / "state.json").write_text("{ truncated")
    assert b.load() is None and "unreadable" in logs[-1]
    b.close()


def test_periodic_save_and_disabled(tmp_path, monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    clock = [100.0]
    monkeypatch.setattr("smcbench.checkpoint.time.monotonic", lambda: clock[0])
    ckpt = Checkpointer(tmp_path / "on", every_minutes=2, log=lambda s: None)
    calls = []
    state_fn = lambda: calls.append(1) or {"x": torch.zeros(1)}  # noqa: E731
    assert not ckpt.maybe_save(0, state_fn) and calls == []       # not due: state not even built
    clock[0] += 121
    assert ckpt.maybe_save(1, state_fn) and calls == [1]
    assert not ckpt.maybe_save(2, state_fn)
    ckpt.clear()
    off = Checkpointer(tmp_path / "off", every_minutes=0.001, enabled=False)
    clock[0] += 1000
    assert not off.maybe_save(0, state_fn) and off.load() is None
    assert signal.getsignal(signal.SIGTERM) is before
    assert not (tmp_path / "off").exists()


def test_sigterm_ends_the_process_with_distinct_code(tmp_path):
    """Uncaught, Preempted exits with PREEMPTED_EXIT_CODE (what Snakemake/SLURM see)."""
    script = textwrap.dedent(f"""
        import os, signal, torch
        from smcbench.checkpoint import Checkpointer
        ckpt = Checkpointer({str(tmp_path)!r}, every_minutes=0, log=lambda s: None)
        for step in range(5):
            if step == 2:
                os.kill(os.getpid(), signal.SIGUSR1)
            ckpt.maybe_save(step, lambda: {{"w": torch.full((2,), float(step))}})
        raise SystemExit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == PREEMPTED_EXIT_CODE, proc.stderr
    state = Checkpointer(tmp_path, log=lambda s: None).load()
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((2,), 2.0))


# --- the real training loop: interrupt demo runs with SIGTERM, resume, compare ------------------
@pytest.fixture(scope="module")
def demo_run_inputs(tmp_path_factory):
    """A tiny prepared synthetic commonsense dataset, a briefly pre-trained tiny RoBERTa, and
    'dense' start weights (the pre-trained model with its seeded head, perturbed) for after-methods."""
    from conftest import tiny_commonsense_run
    from smcbench import config as C

    root = tmp_path_factory.mktemp("demo")
    cfg = tiny_commonsense_run(root, dict(n_train=96, n_test=32, validation_fraction=0.25),
                               dict(epochs=3, batch_size=16), pretrain_steps=4)
    cfg["methods"]["gmp"] = {"t0": 0.1, "t1": 0.6, "delta_t": 3}   # prunes before and after the kill
    for m in ("snip+rigl", "random_before+rigl"):
        cfg["methods"][m] = {"delta_t": 3, "alpha": 0.5, "alpha_min": 0.005}

    def params(method, k, **training):
        level = C.level_tag(k) if k else "s0"
        p = json.loads(C.train_params(cfg, "demo_cs_easy", "demo_roberta", method, "paper" if k else "-", level))
        p["task"]["training"].update(training)
        if method in ("gmp", "snip+rigl", "random_before+rigl"):  # the demo's per-dataset overrides aside
            p["method_settings"].update(cfg["methods"][method])
        return p

    return root, params


def _start_weights(root, params, path, seed=0, scale=0.05):
    """Pre-trained weights + seeded head, plus seeded noise: stands in for a dense fine-tune."""
    from smcbench.train import RunSpec, build_task, save_weights

    spec = RunSpec(params=params, data_dir=root / "data", pretrained_dir=root / "pre", out_dir=path.parent, seed=0)
    torch.manual_seed(0)
    model = build_task(spec, torch.device("cpu")).build_model()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, path)
    return path


def _run(root, params, out, monkeypatch=None, kill_at=None, logs=None, **spec_kw):
    from smcbench.checkpoint import Checkpointer as Ckpt
    from smcbench.train import RunSpec, run_training

    if kill_at is not None:
        original = Ckpt.maybe_save

        def maybe_save_with_kill(self, step, state_fn):
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self, step, state_fn)

        monkeypatch.setattr(Ckpt, "maybe_save", maybe_save_with_kill)
    spec = RunSpec(params=params, data_dir=root / "data", pretrained_dir=root / "pre", out_dir=out, seed=0,
                   log=(logs.append if logs is not None else lambda s: None), **spec_kw)
    return run_training(spec)


def _kill_and_resume(root, params, out, monkeypatch, kill_at, **spec_kw):
    with pytest.raises(Preempted) as info:
        _run(root, params, out, monkeypatch, kill_at=kill_at, **spec_kw)
    assert info.value.code == PREEMPTED_EXIT_CODE
    assert not (out / "metrics.json").exists()                   # no half-finished outputs
    assert (out / ".checkpoint" / "state.json").exists()
    monkeypatch.undo()
    monkeypatch.setenv("SMCBENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("SMCBENCH_CHECKPOINT_MINUTES", "0")
    logs = []
    metrics = _run(root, params, out, logs=logs, **spec_kw)
    return metrics, logs


def _last_mask_change(method: str, total: int, settings: dict) -> int:
    """The optimizer step count after which the method last changes its mask."""
    from smcbench.sparsity.methods import gmp_prune_steps

    if method == "gmp":
        return gmp_prune_steps(total, settings["t0"], settings["t1"], settings["delta_t"])[1]
    if method.endswith("+rigl"):
        d = settings["delta_t"]
        return max(t for t in range(d, total, d))
    return 0                                                       # one-shot and IMP: at the start


@pytest.fixture
def quiet_checkpoints(monkeypatch):
    monkeypatch.setenv("SMCBENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("SMCBENCH_CHECKPOINT_MINUTES", "0")       # save only on the signal
    torch.set_num_threads(1)


# one-shot (in-job before-training mask), IMP round 1 (rewinds), GMP, RigL (in-job snip mask)
@pytest.mark.parametrize("method,k", [("omp_before", 2), ("lth", 1), ("gmp", 2), ("snip+rigl", 2)])
def test_kill_after_last_mask_change_resumes_to_identical_results(demo_run_inputs, tmp_path, monkeypatch,
                                                                  quiet_checkpoints, method, k):
    from safetensors.torch import load_file
    from smcbench.sparsity.mask import Mask

    root, make_params = demo_run_inputs
    params = make_params(method, k, eval_every=10_000)             # evaluate only at the end
    kw = {"save_model": True}
    if method == "lth":
        kw["start_weights"] = _start_weights(root, params, tmp_path / "dense" / "model.safetensors")
    ref = _run(root, params, tmp_path / "ref", **kw)
    total = ref["selection"]["total_steps"]
    kill_at = _last_mask_change(method, total, params["method_settings"]) + 1
    assert 0 < kill_at < total - 1 and len(ref["history"]) == 1

    out = tmp_path / "killed"
    resumed, logs = _kill_and_resume(root, params, out, monkeypatch, kill_at, **kw)
    assert any(f"resuming from step {kill_at}" in line for line in logs), logs

    for key in ("rows", "history", "selection", "realized_sparsity", "mask_sparsity", "final_train_loss",
                "method_stats", "layerwise"):
        assert resumed[key] == ref[key], key
    a, b = Mask.load(tmp_path / "ref" / "mask.safetensors"), Mask.load(out / "mask.safetensors")
    assert list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a)
    wa, wb = load_file(tmp_path / "ref" / "model.safetensors"), load_file(out / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[n], wb[n]) for n in wa)
    for n, m in b.items():                                         # pruned weights exactly zero
        assert int(torch.count_nonzero(wb[n][~m])) == 0, n
    assert not (out / ".checkpoint").exists()


def test_training_killed_mid_epoch_with_evaluations_resumes_identically(demo_run_inputs, tmp_path, monkeypatch,
                                                                       quiet_checkpoints):
    """GMP with an evaluation every epoch (the selector's state crosses the kill too)."""
    root, make_params = demo_run_inputs
    params = make_params("gmp", 2)
    ref = _run(root, params, tmp_path / "ref")
    total = ref["selection"]["total_steps"]
    kill_at = total // 3 + 1
    resumed, _ = _kill_and_resume(root, params, tmp_path / "killed", monkeypatch, kill_at)
    assert len(ref["history"]) == 3
    for key in ("rows", "history", "selection", "realized_sparsity", "mask_sparsity", "final_train_loss"):
        assert resumed[key] == ref[key], key


def test_checkpoint_of_other_inputs_is_discarded(demo_run_inputs, tmp_path, monkeypatch, quiet_checkpoints):
    """Round-1 start weights replaced after a kill: the rerun starts fresh, says why, and equals a
    fresh run on the new weights."""
    root, make_params = demo_run_inputs
    params = make_params("lth", 1)
    start = _start_weights(root, params, tmp_path / "dense" / "model.safetensors", seed=0)
    out = tmp_path / "killed"
    with pytest.raises(Preempted):
        _run(root, params, out, monkeypatch, kill_at=5, start_weights=start)
    monkeypatch.undo()
    monkeypatch.setenv("SMCBENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("SMCBENCH_CHECKPOINT_MINUTES", "0")
    _start_weights(root, params, start, seed=1)                    # new contents, same path
    logs = []
    rerun = _run(root, params, out, logs=logs, start_weights=start)
    assert not any("resuming" in line for line in logs), logs
    assert any("discarding" in line and "changed: start_weights" in line for line in logs), logs
    fresh = _run(root, params, tmp_path / "fresh", start_weights=start)
    for key in ("rows", "history", "realized_sparsity", "final_train_loss"):
        assert rerun[key] == fresh[key], key


def test_fingerprint_covers_inputs_and_code(demo_run_inputs, tmp_path, monkeypatch):
    from smcbench import train

    root, make_params = demo_run_inputs
    params = make_params("omp_before", 1)
    spec = train.RunSpec(params=params, data_dir=root / "data", pretrained_dir=root / "pre", out_dir=tmp_path, seed=0)
    fp = train.job_fingerprint(spec)
    assert set(fp) >= {"params", "data", "pretrained", "code", "start_weights", "prev_mask", "teacher_weights"}
    assert train.job_fingerprint(spec) == fp
    spec2 = train.RunSpec(params={**params, "config_hash": "other"}, data_dir=root / "data",
                          pretrained_dir=root / "pre", out_dir=tmp_path, seed=0)
    assert train.job_fingerprint(spec2) == fp                     # the config hash is not an input
    spec3 = train.RunSpec(params=params, data_dir=root / "data", pretrained_dir=root / "pre", out_dir=tmp_path, seed=1)
    assert train.job_fingerprint(spec3)["params"] != fp["params"]
    monkeypatch.setattr(train, "code_version", lambda *a: "edited")
    assert train.job_fingerprint(spec)["code"] == "edited"


def test_before_masks_are_computed_in_job_and_shared(demo_run_inputs, tmp_path, quiet_checkpoints):
    """Without --prev-mask a before/during method computes its init mask in the job (seeded): the
    same as the mask step writes, and the same for snip and snip+rigl (no RigL update here)."""
    from smcbench.sparsity.mask import Mask
    from smcbench.train import RunSpec, compute_before_mask

    root, make_params = demo_run_inputs
    snip = make_params("snip", 2)
    rigl = make_params("snip+rigl", 2)
    rigl["method_settings"]["delta_t"] = 10_000                       # never updates: keeps the init mask
    _run(root, snip, tmp_path / "snip")
    _run(root, rigl, tmp_path / "rigl")
    mask_params = {k: v for k, v in snip.items() if k != "init_mask_from"}
    compute_before_mask(RunSpec(params=mask_params, data_dir=root / "data", pretrained_dir=root / "pre",
                                out_dir=tmp_path / "mask", seed=0, log=lambda s: None))
    a, b, c = (Mask.load(tmp_path / d / "mask.safetensors") for d in ("snip", "rigl", "mask"))
    assert list(a) == list(b) == list(c)
    assert all(torch.equal(a[n], b[n]) and torch.equal(a[n], c[n]) for n in a)
    via_file = _run(root, snip, tmp_path / "snip_file", prev_mask=tmp_path / "mask" / "mask.safetensors")
    in_job = json.loads((tmp_path / "snip" / "metrics.json").read_text())
    assert via_file["rows"] == in_job["rows"] and via_file["realized_sparsity"] == in_job["realized_sparsity"]


def test_git_revision_marks_a_dirty_tree(tmp_path, monkeypatch):
    from smcbench.train import git_revision

    monkeypatch.delenv("SMCBENCH_GIT_REVISION", raising=False)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    (tmp_path / "a.py").write_text("x = 1\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "a.py"], ["git", "commit", "-q", "-m", "a"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env, timeout=30)
    clean = git_revision(tmp_path)
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (tmp_path / "untracked.txt").write_text("not part of the code")
    assert git_revision(tmp_path) == clean
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_revision(tmp_path) == clean + "-dirty"
    monkeypatch.setenv("SMCBENCH_GIT_REVISION", "abc123")
    assert git_revision(tmp_path) == "abc123"


def test_peak_memory_is_the_jobs_own():
    """A peak reached before the job started (e.g. in the warm server before the fork, or an
    earlier job) is not reported: the meter resets the kernel's high-water mark at job start."""
    import resource

    from smcbench.train import MemoryMeter

    big = torch.ones(64 * 2**20 // 4 * 4)        # 256 MiB, touched
    del big
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    meter = MemoryMeter(torch.device("cpu"))
    rep = meter.report()
    if rep["peak_mem_source"] != "VmHWM since job start":
        pytest.skip("/proc/self/clear_refs not writable here")
    assert rep["peak_mem_mb"] < before - 100
    x = torch.ones(32 * 2**20)                   # 128 MiB during the job: counted
    assert meter.peak_mb() >= rep["rss_at_start_mb"] + 100
    del x


class _CountingTask:
    """A toy task that counts evaluations per split (no data files, no pre-trained model)."""

    primary_metric, higher_is_better = "accuracy", True

    def __init__(self):
        self.calls = {}

    def build_model(self):
        torch.manual_seed(0)
        return torch.nn.Linear(4, 2)

    def param_groups(self, model, lr, wd):
        return [{"params": list(model.parameters()), "lr": lr, "weight_decay": wd}]

    def steps_per_epoch(self):
        return 3

    def train_batches(self, epoch):
        g = torch.Generator().manual_seed(epoch)
        return iter([torch.randn(5, 4, generator=g) for _ in range(3)])

    def loss(self, model, batch):
        return model(batch).pow(2).mean()

    def evaluate(self, model, split):
        self.calls[split] = self.calls.get(split, 0) + 1
        return {"accuracy": float(model.weight.detach().abs().sum())}

    def eval_splits(self):
        return ["test"]

    def baseline(self, split):
        return {"accuracy": 0.0}

    def signature(self):
        return "toy"


@pytest.mark.parametrize("best_on_test", [False, True])
def test_test_split_is_evaluated_once_unless_asked(tmp_path, monkeypatch, quiet_checkpoints, best_on_test):
    from smcbench import train

    task = _CountingTask()
    monkeypatch.setattr(train, "build_task", lambda spec, device: task)
    monkeypatch.setattr(train, "resolve_run_scope", lambda model, scope: ["weight"])
    training = {"lr": 0.01, "epochs": 3, "schedule": "constant"}
    if best_on_test:
        training["report_best_on_test"] = True
    params = {"family": "toy", "dataset": "toyset", "method": "omp_before", "method_settings": {}, "scope": "paper",
              "level": 1, "target_sparsity": 0.25, "device": "cpu", "task": {"training": training}}
    m = train.run_training(train.RunSpec(params=params, data_dir=tmp_path, pretrained_dir=tmp_path,
                                         out_dir=tmp_path / "run", seed=0, log=lambda s: None))
    assert task.calls["validation"] == 3                      # once per epoch, reused for the report
    test_row = next(r for r in m["rows"] if r["split"] == "test")
    if best_on_test:
        assert task.calls["test"] == 3 + 1 and test_row["value_best_on_test"] is not None
    else:
        assert task.calls["test"] == 1 and test_row["value_best_on_test"] is None


def test_dense_drift_marks_fresh_heads(demo_run_inputs, tmp_path, quiet_checkpoints):
    import csv

    root, make_params = demo_run_inputs
    _run(root, make_params("dense", 0), tmp_path / "dense")
    rows = list(csv.DictReader(open(tmp_path / "dense" / "drift.csv")))
    fresh = {r["name"] for r in rows if r["from_pretrained"] == "False"}
    assert fresh and all("classifier" in n or "pooler" in n or "head" in n for n in fresh), fresh
    assert any(r["from_pretrained"] == "True" and "encoder.layer" in r["name"] for r in rows)


@pytest.mark.parametrize("bad", ["garbage"])  # the other bad files: tests/test_sparsity_inputs.py
def test_cli_train_with_a_bad_prev_mask_fails_with_a_message(demo_run_inputs, tmp_path, bad):
    """Through the command line: exit status 2, one clear line naming the file, no traceback."""
    root, make_params = demo_run_inputs
    mask = tmp_path / "mask.safetensors"
    if bad == "garbage":
        mask.write_bytes(b"<html>not a mask</html>")
    env = {**os.environ, "SMCBENCH_NO_PROGRESS": "1", "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    env.pop("SMCBENCH_SERVER", None)
    proc = subprocess.run([sys.executable, "-m", "smcbench", "train", "--params", json.dumps(make_params("snip", 1)),
                           "--data", str(root / "data"), "--pretrained", str(root / "pre"), "--seed", "0",
                           "--out", str(tmp_path / "run"), "--threads", "1", "--prev-mask", str(mask)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    want = "does not exist" if bad == "missing" else "is not a readable safetensors file"
    assert f"error: --prev-mask {mask} {want}" in proc.stderr, proc.stderr[-2000:]


def test_loss_batches_cycle_through_epochs():
    from smcbench.train import make_loss_batches

    task = _CountingTask()                       # 3 batches per epoch
    model = task.build_model()
    losses = list(make_loss_batches(task, model)(8))
    assert len(losses) == 8
    assert all(torch.isfinite(v) for v in losses)
    assert torch.equal(losses[6], task.loss(model, next(iter(task.train_batches(2)))))   # epoch 2's first batch
