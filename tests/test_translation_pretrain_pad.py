"""The shared pre-training padding (tasks/pretrain.py): the list-based `pad` / `pad_with_mask`
give exactly what the former row-by-row version gave (values, shape, dtype), empty cases included."""

import random

import torch

from smcbench.tasks.pretrain import pad, pad_with_mask


def _reference_pad(seqs, value):
    width = max(1, max((len(s) for s in seqs), default=1))
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _reference_mask(seqs, value):
    ids = _reference_pad(seqs, value)
    attn = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        attn[i, : len(s)] = 1
    return ids, attn


def test_pad_matches_row_by_row_reference():
    rng = random.Random(0)
    cases = [[], [[]], [[], []], [[5]], [[0, 7, 8, 9, 2], [0, 6, 2]], [[3, 4], [], [1, 2, 3, 4, 5, 6]]]
    cases += [[[rng.randrange(200) for _ in range(rng.randrange(0, 30))] for _ in range(rng.randrange(1, 40))]
              for _ in range(50)]
    for seqs in cases:
        for value in (1, -100, 0):
            got, want = pad(seqs, value), _reference_pad(seqs, value)
            assert got.dtype == want.dtype == torch.long
            assert got.shape == want.shape
            assert torch.equal(got, want)
            gi, ga = pad_with_mask(seqs, value)
            wi, wa = _reference_mask(seqs, value)
            assert gi.shape == wi.shape and ga.shape == wa.shape and ga.dtype == wa.dtype
            assert torch.equal(gi, wi) and torch.equal(ga, wa)


def test_pad_accepts_tuples():
    assert torch.equal(pad([(1, 2), (3,)], 0), torch.tensor([[1, 2], [3, 0]]))
