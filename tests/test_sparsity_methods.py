"""Every method through the hooks of the training loop: exact sparsity, IMP, GMP, RigL, SNIP."""

from __future__ import annotations

import pytest
import torch

from smcbench.sparsity import METHODS, build_method, validate_target
from smcbench.sparsity.methods import gmp_prune_steps, gmp_sparsity, rigl_drop_fraction
from smcbench.sparsity.select import num_to_prune
from test_sparsity_fixtures import (make_ctx, mlp, mlp_data, mlp_loss, roberta_batch, roberta_loss,
                                    tiny_esm, tiny_mbart, tiny_roberta_mc, train, zeros_in_scope)

SPARSE = [m for m in METHODS if m != "dense"]


def _roberta_setup(seed=0):
    model = tiny_roberta_mc(seed)
    batches = [roberta_batch(100 + i, tokens=20) for i in range(4)]

    def loss_fn(step):
        return roberta_loss(model, *batches[step % len(batches)])

    def loss_batches(n):
        for i in range(n):
            yield roberta_loss(model, *batches[i % len(batches)])

    return model, loss_fn, loss_batches


def _esm_setup(seed=0):
    model = tiny_esm(seed)
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randint(4, 24, (4, 10), generator=g), torch.randint(0, 3, (4,), generator=g))
               for _ in range(4)]

    def loss(i):
        ids, y = batches[i % len(batches)]
        return model(input_ids=ids, labels=y).loss

    return model, loss, (lambda n: (loss(i) for i in range(n)))


def _mbart_setup(seed=0):
    model = tiny_mbart(seed)
    g = torch.Generator().manual_seed(6)
    batches = [torch.randint(3, 30, (2, 6), generator=g) for _ in range(4)]

    def loss(i):
        ids = batches[i % len(batches)]
        return model(input_ids=ids, labels=ids).loss

    return model, loss, (lambda n: (loss(i) for i in range(n)))


SETUPS = {"roberta": (_roberta_setup, "paper"), "esm": (_esm_setup, "attn_ffn"),
          "mbart": (_mbart_setup, "paper")}


def _ctx_for(name, model, loss_batches, s, scope="paper", total_steps=12):
    info = METHODS[name]
    ctx = make_ctx(model, scope, s=s, total_steps=total_steps, loss_batches=loss_batches,
                   rewind_state={n: p.detach().clone() for n, p in model.named_parameters()})
    if info.init_mask_from:  # what the pipeline's `mask` rule does once per (level, seed)
        ctx.prev_mask = build_method(info.init_mask_from, {}).compute_mask(ctx)
    return ctx


@pytest.mark.parametrize("arch", list(SETUPS))
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_realizes_the_target_exactly(name, arch):
    setup, scope = SETUPS[arch]
    model, loss_fn, loss_batches = setup()
    s = 0.0 if name == "dense" else (0.2 if METHODS[name].iterative else 0.36)
    ctx = _ctx_for(name, model, loss_batches, s, scope)
    settings = {"delta_t": 4} if name == "gmp" or "rigl" in name else {}
    if name == "obert":
        settings = {"num_grads": 4}
    method = build_method(name, settings)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n not in ctx.scope}
    mask = train(method, ctx, loss_fn)
    if name == "dense":
        assert mask is None
        return
    n = sum(dict(model.named_parameters())[k].numel() for k in ctx.scope)
    assert list(mask) == ctx.scope
    assert mask.num_pruned() == num_to_prune(s, n)
    params = dict(model.named_parameters())
    assert all(not params[k][~mask[k]].any() for k in ctx.scope)  # pruned weights are exactly 0
    st = method.stats()
    assert st["num_pruned"] == mask.num_pruned() and st["target_sparsity"] == s
    # parameters outside the scope were trained but never masked (no structural zeros appear)
    for k, p0 in before.items():
        assert int((params[k] == 0).sum()) <= int((p0 == 0).sum()) + 1, k


def test_attn_ffn_scope_on_esm_and_paper_scope_on_mbart():
    esm = tiny_esm()
    ctx = make_ctx(esm, "attn_ffn", s=0.5)
    mask = build_method("omp_after").compute_mask(ctx)
    assert all(k.startswith("esm.encoder.layer.") for k in mask)
    assert mask.num_pruned() == num_to_prune(0.5, mask.numel())

    mb = tiny_mbart()
    ids = torch.randint(3, 30, (2, 6), generator=torch.Generator().manual_seed(0))

    def loss_batches(n):
        for _ in range(n):
            yield mb(input_ids=ids, labels=ids).loss

    ctx = make_ctx(mb, "paper", s=0.2, loss_batches=loss_batches)
    mask = build_method("snip", {"num_batches": 2}).compute_mask(ctx)
    assert mask.numel() == sum(p.numel() for p in ctx.parameters_in_scope().values())
    assert mask.num_pruned() == num_to_prune(0.2, mask.numel())


def test_snip_ties_from_untouched_embedding_rows_do_not_overshoot():
    model, _, loss_batches = _roberta_setup()  # batches use token ids < 20 of 64
    ctx = make_ctx(model, "paper", s=0.2, loss_batches=loss_batches)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    method = build_method("snip", {"num_batches": 1})
    mask = method.compute_mask(ctx)
    emb = "roberta.embeddings.word_embeddings.weight"
    zero_rows = 64 - 20
    st = method.stats()
    # a strict `score > threshold` rule would prune every tied zero; we prune exactly K
    assert st["threshold"] == 0.0 and st["ties_at_threshold"] >= zero_rows * 16
    assert st["ties_pruned"] < st["ties_at_threshold"]
    assert mask.num_pruned() == num_to_prune(0.2, mask.numel())
    assert not mask[emb][20:].all()
    # weights unchanged, gradients cleared
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) and p.grad is None


def test_seeded_determinism_bitwise():
    model = mlp()
    masks = [build_method("random_before").compute_mask(make_ctx(model, s=0.5, seed=7)) for _ in range(2)]
    other = build_method("random_before").compute_mask(make_ctx(model, s=0.5, seed=8))
    assert all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
    assert any(not torch.equal(masks[0][n], other[n]) for n in other)

    model, _, loss_batches = _roberta_setup()
    snips = [build_method("snip").compute_mask(make_ctx(model, s=0.36, loss_batches=loss_batches))
             for _ in range(2)]
    assert all(torch.equal(snips[0][n], snips[1][n]) for n in snips[0])


def _imp_round(name, model, x, y, k, prev, rewind_state, steps=15):
    s = 1 - 0.8 ** k
    ctx = make_ctx(model, s=s, total_steps=steps, prev_mask=prev, rewind_state=rewind_state, round=k)
    method = build_method(name, {"prune_fraction": 0.2})
    method.on_train_begin(ctx)
    began = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = train(method, ctx, lambda step: mlp_loss(model, x, y), begin=False)
    return mask, began


@pytest.mark.parametrize("name", ["lth", "imp_lrr"])
def test_imp_rounds_nest_rewind_and_hit_one_minus_point8_pow_k(name):
    model = mlp()
    x, y = mlp_data()
    pre = {n: p.detach().clone() for n, p in model.named_parameters()}
    dense = build_method("dense")
    train(dense, make_ctx(model, s=0.0, total_steps=15), lambda step: mlp_loss(model, x, y))
    prev = None
    for k in (1, 2, 3):
        trained = {n: p.detach().clone() for n, p in model.named_parameters()}
        mask, began = _imp_round(name, model, x, y, k, prev, pre)
        assert mask.num_pruned() == num_to_prune(1 - 0.8 ** k, mask.numel())
        if prev is not None:
            assert mask.is_subset_of(prev)  # round k's survivors are round k-1's survivors
        for n in mask:
            want = (pre if name == "lth" else trained)[n] * mask[n]
            assert torch.equal(began[n], want), (k, n)
        if name == "lth":  # everything rewinds, incl. biases and the head init
            assert torch.equal(began["0.bias"], pre["0.bias"])
        prev = mask


def test_imp_rejects_inconsistent_round_and_missing_state():
    model = mlp()
    with pytest.raises(ValueError, match="level and round disagree"):
        build_method("lth").compute_mask(make_ctx(model, s=0.36, round=1))
    with pytest.raises(ValueError, match="needs ctx.prev_mask"):
        build_method("lth").compute_mask(make_ctx(model, s=0.36, round=2))
    with pytest.raises(ValueError, match="rewind_state"):
        build_method("lth").on_train_begin(make_ctx(model, s=0.2, round=1))
    wrong_prev = build_method("omp_after").compute_mask(make_ctx(model, s=0.5))
    with pytest.raises(ValueError, match="right round"):
        build_method("imp_lrr").compute_mask(make_ctx(model, s=0.36, round=2, prev_mask=wrong_prev))


def test_gmp_schedule_reaches_target_exactly():
    assert gmp_sparsity(40, 0.5, 5, 40) == 0.5 and gmp_sparsity(5, 0.5, 5, 40) == 0.0
    assert gmp_prune_steps(50, 0.1, 0.8, 7) == (5, 40, [7, 14, 21, 28, 35, 40])
    assert gmp_prune_steps(50, 0.1, 0.8, 1000) == (5, 40, [40])  # delta_t larger than the window
    for delta_t in (7, 1000):
        model = mlp()
        x, y = mlp_data()
        ctx = make_ctx(model, s=0.6, total_steps=50)
        method = build_method("gmp", {"t0": 0.1, "t1": 0.8, "delta_t": delta_t})
        method.on_train_begin(ctx)
        seen = []
        real_after = method.on_after_optimizer_step

        def spy(c, step):
            real_after(c, step)
            seen.append(method.mask.num_pruned())

        method.on_after_optimizer_step = spy
        mask = train(method, ctx, lambda step: mlp_loss(model, x, y), begin=False)
        k = num_to_prune(0.6, mask.numel())
        assert seen[39] == k and seen[38] < k  # exactly s at t1 = step 40, not before
        assert seen[:5] == [0] * 5  # nothing before t0
        assert seen == sorted(seen) and seen[-1] == k
        assert zeros_in_scope(model, ctx.scope) >= k


def test_gmp_prunes_at_end_if_training_stopped_early():
    model = mlp()
    x, y = mlp_data()
    ctx = make_ctx(model, s=0.5, total_steps=100)
    method = build_method("gmp", {"delta_t": 10})
    mask = train(method, ctx, lambda step: mlp_loss(model, x, y), steps=20)
    assert mask.num_pruned() == num_to_prune(0.5, mask.numel())


def test_rigl_constant_sparsity_real_regrowth_and_adam_reset():
    model = mlp()
    x, y = mlp_data()
    ctx = make_ctx(model, s=0.5, total_steps=40)
    ctx.prev_mask = build_method("random_before").compute_mask(ctx)
    method = build_method("random_before+rigl", {"delta_t": 5, "alpha": 0.5, "alpha_min": 0.005})
    method.on_train_begin(ctx)
    assert method.mask is not ctx.prev_mask  # the given mask is never modified in place
    per_layer = {n: int(m.count_nonzero()) for n, m in method.mask.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    ctx.optimizer = opt
    params = ctx.parameters_in_scope()
    checked = 0
    for step in range(40):
        mlp_loss(model, x, y).backward()
        old = {n: m.clone() for n, m in method.mask.items()}
        method.on_before_optimizer_step(ctx, step)
        if (step + 1) % 5 == 0 and step > 0:
            for n, p in params.items():
                new = method.mask[n]
                grown, dropped = new & ~old[n], old[n] & ~new
                assert int(grown.sum()) == int(dropped.sum())
                changed = grown | dropped
                st = opt.state[p]
                assert not st["exp_avg"][changed].any() and not st["exp_avg_sq"][changed].any()
                assert not p[changed].any()  # dropped zeroed, grown start at 0
                assert not p.grad[~new].any()  # gradients masked with the new mask
                checked += int(grown.sum())
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.on_after_optimizer_step(ctx, step)
        assert {n: int(m.count_nonzero()) for n, m in method.mask.items()} == per_layer
    mask = method.on_train_end(ctx)
    assert checked > 0 and method.stats()["rigl_regrown"] == checked  # real regrowth happened
    assert not mask.is_subset_of(ctx.prev_mask)
    assert mask.num_pruned() == ctx.prev_mask.num_pruned()
    assert all(not params[n][~mask[n]].any() for n in mask)
    assert rigl_drop_fraction(0, 100, 0.5, 0.005) == 0.5
    assert rigl_drop_fraction(100, 100, 0.5, 0.005) == pytest.approx(0.005)


def test_before_methods_check_the_given_mask():
    model = mlp()
    ctx = make_ctx(model, s=0.36)
    ctx.prev_mask = build_method("omp_before").compute_mask(make_ctx(model, s=0.2))
    with pytest.raises(ValueError, match="needs exactly"):
        build_method("omp_before").on_train_begin(ctx)


def test_validate_target_and_registry_errors():
    assert validate_target(0.2) == 0.2
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match=str(bad)):
            validate_target(bad, "omp_after")
    assert validate_target(0, "dense") == 0.0
    with pytest.raises(ValueError, match="unknown method 'SNIP'.*snip"):
        build_method("SNIP")
    with pytest.raises(ValueError, match=r"methods.gmp.delta_t=0"):
        build_method("gmp", {"delta_t": 0})
    with pytest.raises(ValueError, match="num_batches"):
        build_method("snip", {"num_batches": 0}).compute_mask(make_ctx(mlp(), s=0.2, loss_batches=lambda n: iter(())))


def test_rigl_skips_an_update_on_non_finite_gradients():
    model = mlp()
    x, y = mlp_data()
    ctx = make_ctx(model, s=0.5, total_steps=40)
    method = build_method("omp_before+rigl", {"delta_t": 1})
    method.on_train_begin(ctx)
    before = {n: m.clone() for n, m in method.mask.items()}
    mlp_loss(model, x, y).backward()
    next(iter(ctx.parameters_in_scope().values())).grad[0, 0] = float("inf")
    method.on_before_optimizer_step(ctx, 0)
    assert method.history[-1].get("skipped") and all(torch.equal(before[n], method.mask[n]) for n in before)
