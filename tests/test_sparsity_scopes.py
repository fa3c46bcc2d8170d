"""Scopes on the real architecture classes: exact name lists, no biases/norms, tied weights once."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from smcbench.sparsity.scopes import describe_scope, resolve_scope
from test_sparsity_fixtures import mlp, tiny_esm, tiny_mbart, tiny_roberta_mc


def _layer_names(prefix: str, layers: int) -> list[str]:
    out = []
    for i in range(layers):
        p = f"{prefix}.{i}"
        out += [f"{p}.attention.self.query.weight", f"{p}.attention.self.key.weight",
                f"{p}.attention.self.value.weight", f"{p}.attention.output.dense.weight",
                f"{p}.intermediate.dense.weight", f"{p}.output.dense.weight"]
    return out


@pytest.fixture(scope="module")
def roberta():
    return tiny_roberta_mc()


@pytest.fixture(scope="module")
def esm():
    return tiny_esm()


@pytest.fixture(scope="module")
def mbart():
    return tiny_mbart()


def test_roberta_scopes(roberta):
    layers = _layer_names("roberta.encoder.layer", 2)
    emb = ["roberta.embeddings.word_embeddings.weight", "roberta.embeddings.token_type_embeddings.weight",
           "roberta.embeddings.position_embeddings.weight"]
    heads = ["roberta.pooler.dense.weight", "classifier.weight"]
    assert resolve_scope(roberta, "attn_ffn") == layers
    assert resolve_scope(roberta, "paper") == emb + layers + heads
    assert resolve_scope(roberta, "no_embeddings") == layers + heads
    assert resolve_scope(roberta, "no_heads") == emb + layers
    assert resolve_scope(roberta, "no_embeddings_heads") == layers
    assert resolve_scope(roberta, "modules:Q+K") == [n for n in layers if ".query." in n or ".key." in n]
    assert resolve_scope(roberta, "modules:K+V") == [n for n in layers if ".key." in n or ".value." in n]
    assert resolve_scope(roberta, "modules:FFN") == [n for n in layers if "intermediate" in n or
                                                     (".output.dense" in n and "attention" not in n)]
    assert resolve_scope(roberta, "modules:O") == [n for n in layers if "attention.output.dense" in n]
    assert resolve_scope(roberta, "modules:Q+K+V+O+FFN") == layers


def test_esm_attn_ffn_is_exactly_the_layer_linears(esm):
    assert resolve_scope(esm, "attn_ffn") == _layer_names("esm.encoder.layer", 2)
    paper = resolve_scope(esm, "paper")
    assert paper[0] == "esm.embeddings.word_embeddings.weight"
    assert paper[-2:] == ["classifier.dense.weight", "classifier.out_proj.weight"]
    no_heads = resolve_scope(esm, "no_heads")
    assert not any(n.startswith("classifier") or "contact_head" in n for n in no_heads)


def test_biases_and_norms_never_in_any_scope(roberta, esm, mbart):
    for model in (roberta, esm, mbart, mlp()):
        params = dict(model.named_parameters())
        for scope in ("paper", "no_embeddings", "no_heads"):
            for n in resolve_scope(model, scope):
                assert params[n].dim() >= 2
                assert "bias" not in n and "norm" not in n.lower(), n


def test_mbart_tied_shared_weight_listed_once(mbart):
    assert mbart.lm_head.weight is mbart.model.shared.weight  # tied in this config
    paper = resolve_scope(mbart, "paper")
    ptrs = [dict(mbart.named_parameters())[n].data_ptr() for n in paper]
    assert len(ptrs) == len(set(ptrs))
    assert paper[0] == "model.shared.weight"
    assert not any(n.startswith("lm_head") or "embed_tokens" in n for n in paper)
    # the shared matrix is an embedding and (through lm_head) a head
    assert "model.shared.weight" not in resolve_scope(mbart, "no_embeddings")
    assert "model.shared.weight" not in resolve_scope(mbart, "no_heads")
    attn = resolve_scope(mbart, "attn_ffn")
    assert len(attn) == 6 + 10  # encoder: q,k,v,o,fc1,fc2; decoder: + cross-attention q,k,v,o
    assert all(n.split(".")[-2] in {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"} for n in attn)
    assert sum(".encoder_attn." in n for n in attn) == 4


def test_storage_sharing_params_deduplicated():
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 10, bias=False)
            self.head.weight = torch.nn.Parameter(self.embed.weight.data)  # same storage, new object

    names = resolve_scope(Tied(), "paper")
    assert names == ["embed.weight"]


def test_lstm_weights_count_under_paper_not_attn_ffn():
    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(20, 8)
            self.lstm = torch.nn.LSTM(8, 8, num_layers=2)
            self.out = torch.nn.Linear(8, 2)

    m = Enc()
    paper = resolve_scope(m, "paper")
    assert paper == ["embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l1",
                     "lstm.weight_hh_l1", "out.weight"]
    assert resolve_scope(m, "no_embeddings") == paper[1:]
    with pytest.raises(ValueError, match="matches no parameter"):
        resolve_scope(m, "attn_ffn")


def test_nn_multihead_attention_in_proj_counts_as_qkv():
    layer = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1,
                                        enable_nested_tensor=False)
    assert resolve_scope(layer, "attn_ffn") == [
        "layers.0.self_attn.in_proj_weight", "layers.0.self_attn.out_proj.weight",
        "layers.0.linear1.weight", "layers.0.linear2.weight"]
    assert "layers.0.self_attn.in_proj_weight" in resolve_scope(layer, "modules:Q+K+V")
    assert "layers.0.self_attn.in_proj_weight" not in resolve_scope(layer, "modules:Q+K+O")


def test_bad_scope_names_raise_with_choices(roberta):
    with pytest.raises(ValueError, match="unknown scope 'everything'.*paper"):
        resolve_scope(roberta, "everything")
    with pytest.raises(ValueError, match=r"bad module kind.*'X'.*Q, K, V, O, FFN"):
        resolve_scope(roberta, "modules:Q+X")
    with pytest.raises(ValueError, match="matches no parameter"):
        resolve_scope(mlp(), "attn_ffn")


def test_custom_head_patterns(esm):
    names = resolve_scope(esm, "no_heads", head_patterns=[r"^classifier\."])
    assert "esm.contact_head.regression.weight" in names
    assert not any(n.startswith("classifier.") for n in names)


def test_describe_scope_rows(roberta):
    names = resolve_scope(roberta, "attn_ffn")
    rows = describe_scope(roberta, names)
    assert [r["name"] for r in rows] == names
    assert rows[0] == {"name": names[0], "shape": "16x16", "numel": 256, "kind": "Q"}
    assert rows[4]["kind"] == "FFN" and rows[4]["shape"] == "32x16"
    with pytest.raises(ValueError, match="not in the model"):
        describe_scope(roberta, ["nope.weight"])


def test_scope_names_import_without_torch():
    code = ("import sys; from smcbench.sparsity.scope_names import SCOPES, validate_scope_name; "
            "validate_scope_name('modules:Q+V'); assert 'paper' in SCOPES; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
