"""Exact global selection: radix select == kthvalue oracle, exact counts under massive ties."""

from __future__ import annotations

import pytest
import torch

from smcbench.sparsity import select as sel_mod
from smcbench.sparsity.select import (num_to_prune, select_global, select_global_reference,
                                      select_layerwise)


def _pruned(mask) -> int:
    return sum(int((~m).sum()) for m in mask.values())


def _scores(dtype, seed=0, signed=True):
    g = torch.Generator().manual_seed(seed)
    s = {"emb": torch.randn(40, 16, generator=g), "w1": torch.randn(16, 16, generator=g) * 0.01,
         "zeros": torch.zeros(8, 8), "w2": torch.randn(3, 16, generator=g) * 3}
    if not signed:
        s = {n: t.abs() for n, t in s.items()}
    return {n: t.to(dtype) for n, t in s.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("absolute", [True, False])
def test_radix_matches_kthvalue_oracle(dtype, absolute):
    scores = _scores(dtype)
    numel = sum(t.numel() for t in scores.values())
    for k in [1, 50, 64, 65, 300, numel // 2, numel - 1, numel]:
        a = select_global(scores, k, absolute=absolute)
        b = select_global_reference(scores, k, absolute=absolute)
        assert _pruned(a.mask) == k
        for n in scores:
            assert torch.equal(a.mask[n], b.mask[n]), (n, k)
        assert a.threshold == b.threshold
        assert a.ties_at_threshold == b.ties_at_threshold and a.ties_pruned == b.ties_pruned


def test_streaming_chunks_give_the_same_answer(monkeypatch):
    scores = _scores(torch.float32, seed=3)
    k = 400
    whole = select_global(scores, k, absolute=True)
    monkeypatch.setattr(sel_mod, "CHUNK", 37)  # many chunks, boundaries inside tensors
    chunked = select_global(scores, k, absolute=True)
    assert all(torch.equal(whole.mask[n], chunked.mask[n]) for n in scores)


def test_bf16_massive_ties_exact_count_and_flat_index_tiebreak():
    # 20,000 weights with only 5 distinct bf16 magnitudes: thousands sit on the threshold
    g = torch.Generator().manual_seed(0)
    levels = torch.tensor([0.0, 0.01, 0.02, 0.03, 0.04], dtype=torch.bfloat16)
    scores = {f"t{i}": levels[torch.randint(0, 5, (50, 100), generator=g)] for i in range(4)}
    for k in [1, 3999, 4000, 7777, 12345, 19999]:
        a = select_global(scores, k, absolute=True)
        b = select_global_reference(scores, k, absolute=True)
        assert _pruned(a.mask) == k
        assert all(torch.equal(a.mask[n], b.mask[n]) for n in scores)
        assert a.ties_at_threshold > 1000
        # tie-break: among entries equal to the threshold, the pruned ones come first in flat
        # index order across tensors in the given order
        flat_scores = torch.cat([t.reshape(-1) for t in scores.values()]).float()
        flat_keep = torch.cat([m.reshape(-1) for m in a.mask.values()])
        tied = (flat_scores == a.threshold).nonzero().squeeze(1)
        kept_tied = flat_keep[tied]
        assert int((~kept_tied).sum()) == a.ties_pruned
        assert not kept_tied[: a.ties_pruned].any() and kept_tied[a.ties_pruned:].all()


def test_negative_scores_and_signed_zero():
    scores = {"a": torch.tensor([-0.0, 0.0, -1.0, 2.0, -3.0, 0.5])}
    m = select_global(scores, 3)  # the three lowest: -3, -1, then the first zero (-0.0 == +0.0)
    assert m.mask["a"].tolist() == [False, True, False, True, False, True]
    assert m.threshold == 0.0


def test_eligible_entries_stay_pruned_and_count():
    scores = _scores(torch.float32, seed=1, signed=False)
    eligible = {n: torch.ones_like(t, dtype=torch.bool) for n, t in scores.items()}
    eligible["w2"][:] = False  # prune the largest tensor's weights regardless of score
    forced = eligible["w2"].numel()
    a = select_global(scores, forced + 100, eligible=eligible)
    assert not a.mask["w2"].any()
    assert _pruned(a.mask) == forced + 100
    b = select_global_reference(scores, forced + 100, eligible=eligible)
    assert all(torch.equal(a.mask[n], b.mask[n]) for n in scores)
    # asking for fewer than the already pruned is an error naming the numbers
    with pytest.raises(ValueError, match="already pruned"):
        select_global(scores, forced - 1, eligible=eligible)
    # exactly the forced count: the eligible mask itself
    c = select_global(scores, forced, eligible=eligible)
    assert all(torch.equal(c.mask[n], eligible[n]) for n in scores)


def test_num_to_prune_rounds_half_up_and_validates():
    assert num_to_prune(0.2, 10) == 2
    assert num_to_prune(0.25, 10) == 3  # 2.5 -> 3 (half up, not banker's rounding)
    assert num_to_prune(0.0, 7) == 0 and num_to_prune(1.0, 7) == 7
    assert num_to_prune(1 - 0.8 ** 3, 1000) == 488
    with pytest.raises(ValueError, match="outside"):
        num_to_prune(1.5, 10)


@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("bad", [float("nan"), -float("nan")])
def test_nan_scores_are_rejected_with_the_tensor_name(absolute, bad):
    with pytest.raises(ValueError, match="'bad'"):
        select_global({"ok": torch.ones(4), "bad": torch.tensor([1.0, bad])}, 2, absolute=absolute)
    eligible = {"ok": torch.tensor([False, True, True, True]), "bad": torch.ones(2, dtype=torch.bool)}
    with pytest.raises(ValueError, match="'bad'"):
        select_global({"ok": torch.ones(4), "bad": torch.tensor([1.0, bad])}, 2, eligible=eligible)


def test_infinities_are_ranked_not_rejected():
    scores = {"a": torch.tensor([float("inf"), -float("inf"), 0.0, 1.0])}
    assert select_global(scores, 1).mask["a"].tolist() == [True, False, True, True]
    m = select_global(scores, 2, absolute=True).mask["a"].tolist()
    assert m == [True, True, False, False]


def test_layerwise_exact_per_tensor():
    scores = _scores(torch.float32, seed=2)
    want = {n: num_to_prune(0.5, t.numel()) for n, t in scores.items()}
    s = select_layerwise(scores, want, absolute=True)
    for n, t in scores.items():
        assert int((~s.mask[n]).sum()) == want[n]
        ref = select_global_reference({n: t}, want[n], absolute=True)
        assert torch.equal(ref.mask[n], s.mask[n])


def test_global_threshold_alone_matches_the_selection():
    scores = _scores(torch.bfloat16, seed=5)
    full = select_global(scores, 700, absolute=True)
    only = sel_mod.global_threshold(scores, 700, absolute=True)
    assert only == {"threshold": full.threshold, "ties_at_threshold": full.ties_at_threshold,
                    "ties_pruned": full.ties_pruned}
    assert sel_mod.global_threshold(scores, 0)["threshold"] is None


# --- the sampled one-pass path (large |score| selections) ----------------------------------------
@pytest.fixture
def sampled(monkeypatch):
    """Small inputs take the sampled path too (window from a small sample, small chunks)."""
    monkeypatch.setattr(sel_mod, "SAMPLE_MIN", 1)
    monkeypatch.setattr(sel_mod, "SAMPLE_SIZE", 200)
    monkeypatch.setattr(sel_mod, "CHUNK", 301)
    return monkeypatch


def _check_against_oracle(scores, k, eligible=None):
    a = select_global(scores, k, absolute=True, eligible=eligible)
    b = select_global_reference(scores, k, absolute=True, eligible=eligible)
    assert _pruned(a.mask) == k
    assert all(torch.equal(a.mask[n], b.mask[n]) for n in scores), k
    assert (a.threshold, a.ties_at_threshold, a.ties_pruned) == (b.threshold, b.ties_at_threshold, b.ties_pruned)
    return a


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sampled_path_matches_the_oracle(sampled, dtype):
    scores = _scores(dtype, seed=4)
    numel = sum(t.numel() for t in scores.values())
    for k in [1, 64, 65, 300, numel // 2, int(0.9 * numel), numel - 1, numel]:
        _check_against_oracle(scores, k)


def test_sampled_path_with_massive_ties_and_eligible(sampled):
    g = torch.Generator().manual_seed(0)
    levels = torch.tensor([0.0, 0.01, 0.02, 0.03, 0.04], dtype=torch.bfloat16)
    scores = {f"t{i}": levels[torch.randint(0, 5, (50, 100), generator=g)] for i in range(4)}
    for k in [1, 3999, 7777, 19999]:
        _check_against_oracle(scores, k)
    w = _scores(torch.float32, seed=5)
    eligible = {n: torch.rand(t.shape, generator=g) > 0.3 for n, t in w.items()}
    forced = sum(int((~e).sum()) for e in eligible.values())
    numel = sum(t.numel() for t in w.values())
    for k in [forced + 1, forced + 100, (forced + numel) // 2, numel]:
        _check_against_oracle(w, k, eligible)


def test_sampled_path_falls_back_when_the_window_misses(sampled):
    sampled.setattr(sel_mod, "SAMPLE_SIGMAS", 0.0)   # a window of about 2 sample ranks: often misses
    sampled.setattr(sel_mod, "SAMPLE_SIZE", 64)
    calls = []
    original = sel_mod._kth_key
    sampled.setattr(sel_mod, "_kth_key", lambda *a, **k: calls.append(1) or original(*a, **k))
    scores = _scores(torch.float32, seed=6)
    numel = sum(t.numel() for t in scores.values())
    for k in range(1, numel, 97):
        _check_against_oracle(scores, k)
    assert calls  # some fell back to the radix passes, with the same answer


@pytest.mark.parametrize("bad", [float("nan"), -float("nan")])
def test_sampled_path_rejects_nan(sampled, bad):
    scores = _scores(torch.float32, seed=7)
    scores["w1"][3, 4] = bad
    with pytest.raises(ValueError, match="'w1' contain NaN"):
        select_global(scores, 100, absolute=True)
