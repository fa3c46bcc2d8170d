"""Masks: application, persistence through AdamW with weight decay, optimizer state, safetensors."""

from __future__ import annotations

import pytest
import torch

from smcbench.sparsity.mask import Mask, reset_optimizer_state_
from smcbench.sparsity.scopes import resolve_scope
from test_sparsity_fixtures import mlp, mlp_data, tiny_mbart


def _random_mask(params, seed=0, density=0.5):
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < density for n, p in params.items()})


def test_mask_survives_many_adamw_steps_with_weight_decay():
    model = mlp()
    names = resolve_scope(model, "paper")
    named = dict(model.named_parameters())
    mask = _random_mask({n: named[n] for n in names})
    mask.apply_(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-2, weight_decay=0.5)
    x, y = mlp_data()
    for _ in range(30):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        mask.apply_to_grads_(model)
        opt.step()
        opt.zero_grad(set_to_none=True)
        mask.apply_(model)
    for n in names:
        p = named[n]
        assert not p[~mask[n]].any(), n
        # gradients were masked, so Adam never saw a pruned weight: both moments are exactly 0
        st = opt.state[p]
        assert not st["exp_avg"][~mask[n]].any() and not st["exp_avg_sq"][~mask[n]].any()
        assert p[mask[n]].ne(0).float().mean() > 0.95  # kept weights still train
    assert mask.weight_sparsity(model) == pytest.approx(mask.sparsity(), abs=0.01)


def test_biases_and_norms_untouched_by_apply():
    model = mlp()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = resolve_scope(model, "paper")
    named = dict(model.named_parameters())
    Mask({n: torch.zeros_like(named[n], dtype=torch.bool) for n in names}).apply_(model)
    for n, p in model.named_parameters():
        if n in names:
            assert not p.any()
        else:
            assert torch.equal(p, before[n]), n


def test_optimizer_state_reset_handles_missing_state():
    p = torch.nn.Parameter(torch.ones(3, 3))
    opt = torch.optim.Adam([p], lr=0.1)
    where = torch.eye(3, dtype=torch.bool)
    assert reset_optimizer_state_(opt, p, where) == 0  # no state before the first step
    p.grad = torch.ones(3, 3)
    opt.step()
    assert reset_optimizer_state_(opt, p, where) == 2
    assert not opt.state[p]["exp_avg"][where].any() and opt.state[p]["exp_avg"][~where].all()
    assert not opt.state[p]["exp_avg_sq"][where].any()


def test_safetensors_round_trip_and_metadata(tmp_path):
    model = tiny_mbart()
    names = resolve_scope(model, "paper")
    named = dict(model.named_parameters())
    mask = _random_mask({n: named[n] for n in names}, seed=4, density=0.3)
    path = tmp_path / "mask.safetensors"
    mask.save(path, {"method": "omp_after"})
    loaded = Mask.load(path)
    assert list(loaded) == list(mask)  # model order preserved
    assert all(torch.equal(loaded[n], mask[n]) and loaded[n].dtype == torch.bool for n in mask)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["method"] == "omp_after"
    assert not (tmp_path / "mask.safetensors.tmp").exists()


def test_subset_and_stats():
    a = Mask({"w": torch.tensor([True, True, False, False])})
    b = Mask({"w": torch.tensor([True, False, False, False])})
    assert b.is_subset_of(a) and not a.is_subset_of(b)
    assert a.sparsity() == 0.5 and b.num_pruned() == 3
    assert a.layerwise() == [{"name": "w", "shape": "4", "numel": 4, "kept": 2, "sparsity": 0.5}]
    with pytest.raises(TypeError, match="bool"):
        Mask({"w": torch.ones(2)})


def test_in_place_mask_change_takes_effect_after_invalidate_cache():
    model = mlp()
    names = resolve_scope(model, "paper")
    named = dict(model.named_parameters())
    mask = Mask.ones_like({n: named[n] for n in names})
    mask.apply_(model)  # builds the application cache (float copies on CPU)
    mask[names[0]][0, :] = False
    mask.invalidate_cache()
    mask.apply_(model)
    assert not named[names[0]][0].any() and named[names[0]][1:].all()
