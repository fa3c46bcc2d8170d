"""The training loop's knowledge-distillation hook (MethodInfo.distill_from_dense)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from smcbench.sparsity import registry
from smcbench.sparsity.registry import MethodInfo
from smcbench.sparsity.settings import DistillSettings
from smcbench.train import Distiller, TrainingError, kd_loss
from test_resume import _CountingTask


class _LogitTask(_CountingTask):
    def logits(self, model, batch):
        return model(batch)

    def loss(self, model, batch):
        return torch.nn.functional.cross_entropy(model(batch), torch.zeros(batch.shape[0], dtype=torch.long))


def test_kd_loss_formula_and_alpha_zero_is_the_task_loss():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    T = 2.0
    ps, pt = torch.softmax(s / T, -1), torch.softmax(t / T, -1)
    manual = (pt * (pt.log() - ps.log())).sum(-1).mean() * T * T
    assert torch.allclose(kd_loss(s, t, T), manual, atol=1e-6)
    assert float(kd_loss(s, s, T)) == pytest.approx(0.0, abs=1e-7)
    task, batch = _LogitTask(), torch.randn(5, 4, generator=g)
    student, teacher = task.build_model(), torch.nn.Linear(4, 2)
    assert torch.equal(Distiller(task, teacher, 0.0, T).loss(student, batch), task.loss(student, batch))
    mixed = Distiller(task, teacher, 0.25, T).loss(student, batch)
    want = 0.75 * task.loss(student, batch) + 0.25 * kd_loss(student(batch), teacher(batch), T)
    assert torch.allclose(mixed, want)


def test_a_task_without_logits_is_a_clear_error():
    with pytest.raises(TrainingError, match=r"needs the task's logits\(model, batch\) method; _CountingTask has none"):
        Distiller(_CountingTask(), torch.nn.Linear(4, 2), 0.5, 2.0)


@dataclass(frozen=True)
class _KDSettings(DistillSettings):
    pass


@pytest.fixture
def kd_method(monkeypatch):
    info = MethodInfo("smcbench.sparsity.methods:OneShotMagnitude", "after", "dense", settings=_KDSettings,
                      distill_from_dense=True)
    monkeypatch.setitem(registry.METHODS, "omp_kd", info)
    return "omp_kd"


def _run(tmp_path, monkeypatch, task, method, **spec_kw):
    from smcbench import train

    monkeypatch.setenv("SMCBENCH_NO_PROGRESS", "1")
    monkeypatch.setattr(train, "build_task", lambda spec, device: task)
    monkeypatch.setattr(train, "resolve_run_scope", lambda model, scope: ["weight"])
    params = {"family": "toy", "dataset": "toyset", "method": method, "method_settings": {"kd_alpha": 0.5},
              "scope": "paper", "level": 1, "target_sparsity": 0.25, "device": "cpu",
              "task": {"training": {"lr": 0.01, "epochs": 2, "schedule": "constant"}}}
    return train.run_training(train.RunSpec(params=params, data_dir=tmp_path, pretrained_dir=tmp_path,
                                            out_dir=tmp_path / "run", seed=0, log=lambda s: None, **spec_kw))


def test_loop_distills_from_the_teacher_weights(tmp_path, monkeypatch, kd_method):
    from smcbench.train import save_weights

    teacher = torch.nn.Linear(4, 2)
    save_weights(teacher, tmp_path / "dense.safetensors")
    start = tmp_path / "start.safetensors"
    save_weights(_LogitTask().build_model(), start)
    task = _LogitTask()
    seen = []
    original = task.logits
    task.logits = lambda model, batch: seen.append(model) or original(model, batch)
    m = _run(tmp_path, monkeypatch, task, kd_method, start_weights=start,
             teacher_weights=tmp_path / "dense.safetensors")
    assert math.isfinite(m["final_train_loss"]) and len(seen) == 2 * 2 * 3   # teacher + student per step
    loaded_teacher = seen[0]
    assert torch.equal(loaded_teacher.weight, teacher.weight) and not loaded_teacher.weight.requires_grad


def test_loop_without_teacher_weights_says_so(tmp_path, monkeypatch, kd_method):
    from smcbench.train import save_weights

    start = tmp_path / "start.safetensors"
    save_weights(_LogitTask().build_model(), start)
    with pytest.raises(TrainingError, match="distills from the dense fine-tune: pass --teacher-weights"):
        _run(tmp_path, monkeypatch, _LogitTask(), kd_method, start_weights=start)
