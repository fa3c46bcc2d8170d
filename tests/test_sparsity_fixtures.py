"""Shared builders for the sparsity-engine tests (tiny models of the real classes, a training
loop that calls the method hooks exactly like ``train.py``), plus sanity tests of the builders."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F

# Tiny models: one intra-op thread is fastest, and avoids OpenMP spin-waiting against the other
# pytest-xdist worker (measured: a tiny RoBERTa step took 2 s with 2 threads on a loaded 2-core box,
# 10-20 ms with 1).
torch.set_num_threads(1)

from smcbench.sparsity.base import SparsityContext
from smcbench.sparsity.scopes import resolve_scope


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.LayerNorm(32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))


def tiny_roberta_mc(seed: int = 0):
    from transformers import RobertaConfig, RobertaForMultipleChoice

    torch.manual_seed(seed)
    cfg = RobertaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=40, type_vocab_size=1,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return RobertaForMultipleChoice(cfg)


def tiny_esm(seed: int = 0):
    from transformers import EsmConfig, EsmForSequenceClassification

    torch.manual_seed(seed)
    cfg = EsmConfig(vocab_size=33, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=40, position_embedding_type="rotary",
                    pad_token_id=1, mask_token_id=32, num_labels=3)
    return EsmForSequenceClassification(cfg)


def tiny_mbart(seed: int = 0):
    from transformers import MBartConfig, MBartForConditionalGeneration

    torch.manual_seed(seed)
    cfg = MBartConfig(vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                      decoder_ffn_dim=32, max_position_embeddings=40, dropout=0.0)
    return MBartForConditionalGeneration(cfg)


def mlp_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)


def mlp_loss(model, x, y):
    return F.cross_entropy(model(x), y)


def roberta_batch(seed: int, tokens: int = 64, batch: int = 4, choices: int = 2, length: int = 8):
    """Multiple-choice inputs whose ids come from the first ``tokens`` ids of the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, max(tokens, 4), (batch, choices, length), generator=g)
    ids[..., 0] = 0  # <s>
    labels = torch.randint(0, choices, (batch,), generator=g)
    return ids, labels


def roberta_loss(model, ids, labels):
    return model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss


def make_ctx(model, scope="paper", s=0.36, seed=1, total_steps=40, loss_batches=None, **kw):
    names = resolve_scope(model, scope) if isinstance(scope, str) else list(scope)
    return SparsityContext(model=model, scope=names, target_sparsity=s, seed=seed, total_steps=total_steps,
                           loss_batches=loss_batches, log=lambda m: None, **kw)


def train(method, ctx, loss_fn, steps=None, lr=1e-2, weight_decay=0.1, begin=True):
    """The hook sequence of ``train.py``: begin, (backward, before, step, zero_grad, after)*, end."""
    model = ctx.model
    if begin:
        method.on_train_begin(ctx)
    opt = ctx.optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    ctx.optimizer = opt
    for step in range(ctx.total_steps if steps is None else steps):
        loss = loss_fn(step)
        loss.backward()
        method.on_before_optimizer_step(ctx, step)
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.on_after_optimizer_step(ctx, step)
    return method.on_train_end(ctx)


def zeros_in_scope(model, names) -> int:
    params = dict(model.named_parameters())
    return sum(int(params[n].numel() - params[n].count_nonzero()) for n in names)


# --- sanity of the builders -------------------------------------------------------------------

def test_tiny_models_build_and_run():
    rob = tiny_roberta_mc()
    ids, labels = roberta_batch(0)
    assert torch.isfinite(roberta_loss(rob, ids, labels))
    esm = tiny_esm()
    out = esm(input_ids=torch.randint(4, 30, (2, 10)))
    assert out.logits.shape == (2, 3)
    mb = tiny_mbart()
    ids = torch.randint(3, 60, (2, 7))
    assert torch.isfinite(mb(input_ids=ids, labels=ids).loss)
