"""oBERT: Woodbury inverse blocks, OBS scores and update, chunking, the iterative recipe."""

from __future__ import annotations

import pytest
import torch

from smcbench.sparsity.base import SparsityContext
from smcbench.sparsity.mask import Mask
from smcbench.sparsity.obert import (OBert, ObertScorer, block_inverse_diagonal, obs_block_update, plan_chunks,
                                     woodbury_inverse)
from smcbench.sparsity.obert_settings import ObertSettings
from smcbench.sparsity.registry import MethodInfo
from smcbench.sparsity.select import num_to_prune
from smcbench.sparsity.settings import SettingsError, parse_settings
from test_sparsity_fixtures import make_ctx, roberta_batch, roberta_loss, tiny_roberta_mc

INFO = MethodInfo("smcbench.sparsity.obert:OBert", "after", "previous_round", iterative=True,
                  settings="smcbench.sparsity.obert_settings:ObertSettings")


class Linear(torch.nn.Module):
    """Weights whose gradient on "batch" j is exactly ``G[name][j]``: loss_j = sum(G_j * W)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.ParameterDict({n: torch.nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64))
                                         for n, s in shapes.items()})


def linear_setup(shapes, m, seed=0):
    model = Linear(shapes, seed)
    g = torch.Generator().manual_seed(seed + 100)
    grads = {n: torch.randn(m, *s, generator=g, dtype=torch.float64) for n, s in shapes.items()}
    names = [f"w.{n}" for n in shapes]

    def loss_batches(k):
        for j in range(min(k, m)):  # a training set of m batches
            yield sum((grads[n][j] * model.w[n]).sum() for n in shapes)

    return model, grads, names, loss_batches


def ctx_for(model, names, loss_batches, s, **kw):
    return SparsityContext(model=model, scope=names, target_sparsity=s, seed=1, total_steps=0,
                           loss_batches=loss_batches, log=lambda msg: None, **kw)


def fisher_blocks(g: torch.Tensor, B: int, damp: float) -> torch.Tensor:
    """The direct (dense, small) B x B Fisher blocks of gradients g (m, d), d divisible by B."""
    m, d = g.shape
    gb = g.reshape(m, d // B, B)
    return damp * torch.eye(B, dtype=g.dtype) + torch.einsum("mbi,mbj->bij", gb, gb) / m


# --- the inverse ---------------------------------------------------------------------------------

@pytest.mark.parametrize("B", [1, 2, 4, 8])
def test_woodbury_inverse_equals_direct_inverse(B):
    torch.manual_seed(0)
    m, d, damp = 12, 24, 1e-3
    g = torch.randn(m, d, dtype=torch.float64)
    finv, seen = woodbury_inverse(iter(g), d // B, B, m, damp, torch.float64)
    assert seen == m and finv.shape == (d // B, B, B)
    direct = torch.linalg.inv(fisher_blocks(g, B, damp))
    torch.testing.assert_close(finv, direct, rtol=1e-9, atol=1e-9)


def test_woodbury_inverse_in_fp32_with_the_paper_damp():
    torch.manual_seed(1)
    m, d, B, damp = 64, 32, 4, 1e-7  # m > B: the Fisher blocks are well conditioned despite tiny damp
    g = torch.randn(m, d, dtype=torch.float64) * 1e-2
    finv, _ = woodbury_inverse(iter(g.float()), d // B, B, m, damp, torch.float32)
    direct = torch.linalg.inv(fisher_blocks(g, B, damp))
    torch.testing.assert_close(finv.double(), direct, rtol=2e-2, atol=direct.abs().max().item() * 1e-3)


# --- scores --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_block_size_one_is_the_diagonal_formula(dtype):
    m, damp = 16, 1e-7
    model, grads, names, lb = linear_setup({"a": (5, 6), "b": (7,)}, m)
    scores = ObertScorer(m, damp, 1, dtype=dtype).score(ctx_for(model, names, lb, 0.5))
    for n in ("a", "b"):
        want = model.w[n].detach() ** 2 * (damp + grads[n].pow(2).mean(0)) / 2
        torch.testing.assert_close(scores[f"w.{n}"].double(), want, rtol=1e-5, atol=0)


def test_scores_use_the_block_inverse_diagonal():
    m, damp, B = 10, 1e-2, 4
    model, grads, names, lb = linear_setup({"a": (3, 4)}, m)
    scores = ObertScorer(m, damp, B, dtype=torch.float64).score(ctx_for(model, names, lb, 0.5))["w.a"]
    diag = block_inverse_diagonal(torch.linalg.inv(fisher_blocks(grads["a"].reshape(m, -1), B, damp)))
    want = model.w["a"].detach().reshape(-1) ** 2 / (2 * diag)
    torch.testing.assert_close(scores.double().reshape(-1), want, rtol=1e-6, atol=0)


# --- the OBS update --------------------------------------------------------------------------------

def _spd(B, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(B, B, generator=g, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(B, dtype=torch.float64)


@pytest.mark.parametrize("pruned", [[2], [0, 3], [1, 2, 4], [0, 1, 2, 3, 4, 5]])
def test_obs_update_is_the_closed_form_minimizer_of_the_quadratic(pruned):
    """min_d 1/2 d^T F d subject to w_Q + d_Q = 0: d_R = F_RR^-1 F_RQ w_Q, cost 1/2 w_Q^T (F^-1_QQ)^-1 w_Q."""
    B = 6
    F = _spd(B, 3)
    w = torch.randn(B, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    q = torch.zeros(B, dtype=torch.bool)
    q[pruned] = True
    d = obs_block_update(torch.linalg.inv(F).unsqueeze(0), w.unsqueeze(0), q.unsqueeze(0))[0]
    Q, R = q.nonzero().squeeze(1), (~q).nonzero().squeeze(1)
    assert torch.equal(d[Q], -w[Q])
    if R.numel():
        want_R = torch.linalg.solve(F[R][:, R], F[R][:, Q] @ w[Q])
        torch.testing.assert_close(d[R], want_R, rtol=1e-10, atol=1e-12)
    finv = torch.linalg.inv(F)
    cost = 0.5 * d @ F @ d
    want_cost = 0.5 * w[Q] @ torch.linalg.solve(finv[Q][:, Q], w[Q])
    torch.testing.assert_close(cost, want_cost, rtol=1e-10, atol=1e-12)
    # no other feasible step is cheaper
    g = torch.Generator().manual_seed(9)
    for _ in range(20):
        other = d + torch.randn(B, generator=g, dtype=torch.float64) * (~q)
        assert 0.5 * other @ F @ other >= cost - 1e-12


def test_single_weight_obs_step_and_its_cost_is_the_score():
    B, q = 5, 3
    F = _spd(B, 7)
    finv = torch.linalg.inv(F)
    w = torch.randn(B, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    prune = torch.zeros(1, B, dtype=torch.bool)
    prune[0, q] = True
    d = obs_block_update(finv.unsqueeze(0), w.unsqueeze(0), prune)[0]
    torch.testing.assert_close(d, -w[q] * finv[:, q] / finv[q, q], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(0.5 * d @ F @ d, w[q] ** 2 / (2 * finv[q, q]), rtol=1e-10, atol=0)


def test_empty_blocks_are_untouched():
    finv = torch.linalg.inv(_spd(3, 1)).expand(4, 3, 3)
    w = torch.randn(4, 3, dtype=torch.float64)
    q = torch.zeros(4, 3, dtype=torch.bool)
    q[2, 1] = True
    d = obs_block_update(finv, w, q)
    assert not d[[0, 1, 3]].any() and d[2].abs().sum() > 0


def test_method_update_on_a_quadratic_model_equals_the_closed_form():
    """End to end: OBert prunes a model whose gradients are known; survivors move by F_RR^-1 F_RQ w_Q
    with F the block of the empirical Fisher, pruned weights are 0, the count is exact."""
    m, damp, B, s = 20, 1e-3, 4, 0.5
    model, grads, names, lb = linear_setup({"a": (4, 6)}, m, seed=3)
    w0 = model.w["a"].detach().clone().reshape(-1)
    method = OBert("obert", INFO, {"num_grads": m, "damp": damp, "block_size": B, "fisher_dtype": "float64",
                                   "prune_fraction": s})
    ctx = ctx_for(model, names, lb, s)
    method.on_train_begin(ctx)
    keep = method.mask["w.a"].reshape(-1)
    assert int((~keep).sum()) == num_to_prune(s, 24)
    F = fisher_blocks(grads["a"].reshape(m, -1), B, damp)
    w1 = model.w["a"].detach().reshape(-1)
    moved = 0
    for b in range(24 // B):
        sl = slice(b * B, (b + 1) * B)
        q, w_b = ~keep[sl], w0[sl]
        Q, R = q.nonzero().squeeze(1), (~q).nonzero().squeeze(1)
        want = w_b.clone()
        want[Q] = 0
        if Q.numel() and R.numel():
            want[R] += torch.linalg.solve(F[b][R][:, R], F[b][R][:, Q] @ w_b[Q])
            moved += 1
        torch.testing.assert_close(w1[sl], want, rtol=1e-7, atol=1e-8)  # Woodbury from I / damp: ~1e-9 round-off
    assert moved > 0
    assert method.stats()["obert_update_norm"] > 0


# --- chunks ------------------------------------------------------------------------------------------

def test_plan_chunks_respects_the_budget_and_covers_every_block():
    chunks = plan_chunks({"a": 10, "b": 7, "c": 1}, 4, 2 * 64)  # 2 blocks of 4x4 fp32 per chunk
    assert all(sum(s.num_blocks for s in c) <= 2 for c in chunks)
    covered = {}
    for c in chunks:
        for s in c:
            covered.setdefault(s.name, []).append((s.b0, s.b1))
    assert covered == {"a": [(0, 2), (2, 3)], "b": [(0, 1), (1, 2)], "c": [(0, 1)]}  # chunks pack across tensors
    assert len(chunks) == 3
    with pytest.raises(ValueError, match="no 4x4"):
        plan_chunks({"a": 10}, 4, 63)


@pytest.mark.parametrize("B", [1, 3])
def test_chunked_equals_unchunked(B):
    m, s = 9, 0.6
    shapes = {"a": (5, 7), "b": (11,), "c": (3, 3)}
    results = []
    for budget_mb in (64.0, B * B * 8 * 2 / 2**20):  # all at once vs two blocks per chunk
        model, _, names, lb = linear_setup(shapes, m, seed=5)
        method = OBert("obert", INFO, {"num_grads": m, "damp": 1e-2, "block_size": B, "fisher_dtype": "float64",
                                       "memory_budget_mb": budget_mb, "prune_fraction": s})
        method.on_train_begin(ctx_for(model, names, lb, s))
        results.append((method.mask, {n: p.detach().clone() for n, p in model.named_parameters()},
                        method.stats()))
    (m1, w1, st1), (m2, w2, st2) = results
    assert st1["obert_chunks"] == 1 and st2["obert_chunks"] > 3
    assert st2["obert_backward_passes"] == m * st2["obert_chunks"] * (2 if B > 1 else 1)
    assert all(torch.equal(m1[n], m2[n]) for n in m1)
    for n in w1:
        torch.testing.assert_close(w1[n], w2[n], rtol=1e-12, atol=1e-12)


# --- the recipe on a transformer -------------------------------------------------------------------

def _roberta(seed=0):
    model = tiny_roberta_mc(seed)
    batches = [roberta_batch(200 + i, tokens=30) for i in range(6)]

    def loss_batches(n):
        for i in range(n):
            yield roberta_loss(model, *batches[i % len(batches)])

    return model, loss_batches


@pytest.mark.parametrize("B", [1, 4])
def test_iterative_rounds_are_exact_nested_and_keep_the_model_state(B):
    model, lb = _roberta()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.train()
    prev = None
    settings = {"num_grads": 6, "block_size": B, "damp": 1e-4}
    for k in (1, 2, 3):
        s = 1 - 0.8 ** k
        ctx = make_ctx(model, "no_embeddings", s=s, loss_batches=lb, prev_mask=prev, round=k)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model(**{"input_ids": roberta_batch(1)[0]}).logits.sum().backward()
        opt.step()  # optimizer state exists: pruning must zero the moments of pruned weights
        opt.zero_grad(set_to_none=True)
        ctx.optimizer = opt
        method = OBert("obert", INFO, settings)
        method.on_train_begin(ctx)
        mask = method.mask
        n = mask.numel()
        assert mask.num_pruned() == num_to_prune(s, n)
        assert method.stats()["realized_sparsity"] == mask.num_pruned() / n
        params = dict(model.named_parameters())
        for name in ctx.scope:
            assert not params[name][~mask[name]].any()
            assert not opt.state[params[name]]["exp_avg"][~mask[name]].any()
        if prev is not None:
            assert mask.is_subset_of(prev)
        assert model.training and all(p.grad is None for p in model.parameters())
        assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
        prev = mask.clone()


def test_embeddings_and_heads_are_never_touched():
    model, lb = _roberta(1)
    ctx = make_ctx(model, "no_embeddings", s=0.2, loss_batches=lb, round=1)
    outside = {n: p.detach().clone() for n, p in model.named_parameters() if n not in ctx.scope}
    OBert("obert", INFO, {"num_grads": 4, "block_size": 4}).on_train_begin(ctx)
    for n, p in model.named_parameters():
        if n in outside:
            assert torch.equal(p.detach(), outside[n]), n


def test_rounds_and_targets_must_agree():
    model, lb = _roberta()
    m = OBert("obert", INFO, {"num_grads": 2})
    with pytest.raises(ValueError, match="prune_fraction"):
        m.on_train_begin(make_ctx(model, "no_embeddings", s=0.5, loss_batches=lb, round=1))
    with pytest.raises(ValueError, match="needs ctx.prev_mask"):
        m.on_train_begin(make_ctx(model, "no_embeddings", s=0.36, loss_batches=lb, round=2))
    with pytest.raises(ValueError, match="loss_batches"):
        m.on_train_begin(make_ctx(model, "no_embeddings", s=0.2, loss_batches=None, round=1))


def test_too_few_gradients_is_an_error_naming_the_setting():
    model, grads, names, lb = linear_setup({"a": (3, 3)}, 4)
    with pytest.raises(ValueError, match="num_grads"):
        ObertScorer(num_grads=5, damp=1e-3).score(ctx_for(model, names, lb, 0.5))


def test_previously_pruned_weights_are_decoupled():
    """Gradients are masked by round k-1's mask: the pruned coordinates keep F^-1 = I / damp and
    receive no OBS correction."""
    m, damp, B = 8, 1e-2, 4
    model, _, names, lb = linear_setup({"a": (4, 4)}, m)
    prev = torch.ones(4, 4, dtype=torch.bool)
    prev[0, 1] = prev[2, 2] = False
    with torch.no_grad():
        model.w["a"].mul_(prev)
    scorer = ObertScorer(m, damp, B, dtype=torch.float64, eligible={"w.a": prev})
    scorer.score(ctx_for(model, names, lb, 0.5))
    finv = scorer._cached[0]
    for i in (1, 10):
        row = finv.reshape(-1, B)[i]  # row i % B of block i // B
        want = torch.zeros(B, dtype=torch.float64)
        want[i % B] = 1 / damp
        torch.testing.assert_close(row, want)


# --- settings --------------------------------------------------------------------------------------

def test_settings_defaults_and_refusals():
    s = parse_settings(ObertSettings, "obert", {})
    assert (s.block_size, s.num_grads, s.damp, s.prune_fraction) == (1, 1024, 1e-7, 0.2)
    assert (s.kd_alpha, s.kd_temperature) == (0.5, 2.0)
    for bad, msg in [({"block_size": 0}, "block_size"), ({"fisher_dtype": "float16"}, "fisher_dtype"),
                     ({"num_grads": 0}, "num_grads"), ({"damp": 0}, "damp"), ({"kd_alpha": 1.5}, "kd_alpha"),
                     ({"kd_temperature": 0}, "kd_temperature"),
                     ({"block_size": 64, "memory_budget_mb": 0.001}, "memory_budget_mb"),
                     ({"blocksize": 4}, "block_size")]:
        with pytest.raises(SettingsError, match=msg):
            parse_settings(ObertSettings, "obert", bad)
    with pytest.raises(SettingsError, match="block_size"):
        OBert("obert", INFO, {"block_size": -1})


def test_mask_is_a_mask_and_compute_mask_is_pure():
    model, lb = _roberta(2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = OBert("obert", INFO, {"num_grads": 3, "block_size": 4}).compute_mask(
        make_ctx(model, "no_embeddings", s=0.2, loss_batches=lb, round=1))
    assert isinstance(mask, Mask)
    assert all(torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())


def test_obs_update_in_small_batches_equals_one_batch(monkeypatch):
    import smcbench.sparsity.obert as ob

    g = torch.Generator().manual_seed(11)
    a = torch.randn(40, 5, 5, generator=g, dtype=torch.float64)
    finv = a @ a.transpose(1, 2) + torch.eye(5, dtype=torch.float64)
    w = torch.randn(40, 5, generator=g, dtype=torch.float64)
    q = torch.rand(40, 5, generator=g) < 0.3
    whole = obs_block_update(finv, w, q)
    monkeypatch.setattr(ob, "_UPDATE_BATCH_BYTES", 3 * 8 * 25)  # 3 blocks at a time
    torch.testing.assert_close(obs_block_update(finv, w, q), whole, rtol=0, atol=0)


def test_state_dict_round_trip_keeps_mask_and_facts():
    m, s = 6, 0.5
    model, _, names, lb = linear_setup({"a": (4, 8)}, m)
    method = OBert("obert", INFO, {"num_grads": m, "block_size": 4, "damp": 1e-2, "prune_fraction": s})
    method.on_train_begin(ctx_for(model, names, lb, s))
    state = method.state_dict()
    other = OBert("obert", INFO, {"num_grads": m, "block_size": 4, "damp": 1e-2, "prune_fraction": s})
    other.load_state_dict(state)
    assert torch.equal(other.mask["w.a"], method.mask["w.a"])
    assert other.stats() == method.stats()


# --- distillation (the loop's hook, with obert's settings) -----------------------------------------

class _Task:
    """A classification task as the loop sees it: ``loss`` and the optional ``logits``."""

    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.x, self.y = torch.randn(12, 5, generator=g), torch.randint(0, 4, (12,), generator=g)
        self.teacher_calls = 0

    def logits(self, model, batch):
        if getattr(model, "is_teacher", False):
            self.teacher_calls += 1
        return model(self.x)

    def loss(self, model, batch):
        return torch.nn.functional.cross_entropy(model(self.x), self.y)


def _student_teacher():
    torch.manual_seed(0)
    student, teacher = torch.nn.Linear(5, 4), torch.nn.Linear(5, 4)
    teacher.is_teacher = True
    return student, teacher


def test_kd_loss_is_the_task_loss_at_alpha_zero():
    from smcbench.train import Distiller

    task = _Task()
    student, teacher = _student_teacher()
    cfg = parse_settings(ObertSettings, "obert", {"kd_alpha": 0.0, "kd_temperature": 3.0})
    loss = Distiller(task, teacher, cfg.kd_alpha, cfg.kd_temperature).loss(student, None)
    assert torch.equal(loss, task.loss(student, None))
    assert task.teacher_calls == 0  # no teacher forward pass at alpha = 0


def test_kd_loss_mixes_task_and_tempered_kl_with_obert_defaults():
    from smcbench.train import Distiller

    task = _Task()
    student, teacher = _student_teacher()
    cfg = parse_settings(ObertSettings, "obert", {})
    a, T = cfg.kd_alpha, cfg.kd_temperature
    loss = Distiller(task, teacher, a, T).loss(student, None)
    with torch.no_grad():
        p_t = torch.softmax(teacher(task.x) / T, -1)
        log_p_s = torch.log_softmax(student(task.x) / T, -1)
        kl = (p_t * (p_t.log() - log_p_s)).sum(-1).mean()
        want = (1 - a) * task.loss(student, None) + a * T * T * kl
    torch.testing.assert_close(loss.detach(), want, rtol=1e-5, atol=1e-6)
    # a student equal to its teacher pays only the task part
    same = Distiller(task, student, 1.0, T).loss(student, None)
    assert abs(float(same.detach())) < 1e-6


def test_a_resumed_job_skips_the_fisher_and_restores_the_state():
    m, s = 6, 0.5
    model, _, names, lb = linear_setup({"a": (4, 8)}, m)
    settings = {"num_grads": m, "block_size": 4, "damp": 1e-2, "prune_fraction": s}
    first = OBert("obert", INFO, settings)
    first.on_train_begin(ctx_for(model, names, lb, s))
    calls = []

    def counting(n):
        calls.append(n)
        return lb(n)

    again = OBert("obert", INFO, settings)
    again.on_train_begin(ctx_for(model, names, counting, s, resuming=True))
    again.load_state_dict(first.state_dict())
    assert calls == [] and torch.equal(again.mask["w.a"], first.mask["w.a"])
