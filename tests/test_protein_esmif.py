"""ESM-IF1 path end to end with a small random-init GVP-Transformer saved in fair-esm's checkpoint
format: .pt → safetensors conversion, structures from PDB, a few training steps, evaluation.
Skipped unless the optional deps (fair-esm, biotite, torch-geometric) are installed."""

from __future__ import annotations

import argparse
import json
import os
import pickle

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import protein  # noqa: E402
from smcbench.tasks.protein import model as pm  # noqa: E402

try:
    pm.import_esm_inverse_folding()
except ImportError:
    pytest.skip("ESM-IF1 optional dependencies not installed (pip install -e '.[esmif]')", allow_module_level=True)

ARGS = dict(arch="invariant_gvp", encoder_embed_dim=32, decoder_embed_dim=32, encoder_layers=2, decoder_layers=1,
            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_embed_dim=64,
            decoder_ffn_embed_dim=64, gvp_num_encoder_layers=1, gvp_node_hidden_dim_scalar=16,
            gvp_node_hidden_dim_vector=4, gvp_edge_hidden_dim_scalar=8, gvp_edge_hidden_dim_vector=1,
            gvp_top_k_neighbors=6, gvp_dropout=0.1, dropout=0.1, attention_dropout=0.0,
            max_source_positions=1024, max_target_positions=1024)
THREE = {"A": "ALA", "K": "LYS", "E": "GLU", "I": "ILE", "S": "SER", "M": "MET"}


def _pdb_text(seq: str, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    ca = torch.cumsum(torch.randn(len(seq), 3, generator=g) * 2.2, 0)
    lines, serial = [], 1
    for i, (aa, x) in enumerate(zip(seq, ca.tolist()), 1):
        for atom, shift in (("N", -1.2), ("CA", 0.0), ("C", 1.3)):
            lines.append(f"ATOM  {serial:5d} {atom:<4s} {THREE[aa]:>3s} A{i:4d}    "
                         f"{x[0] + shift:8.3f}{x[1]:8.3f}{x[2]:8.3f}  1.00 90.00           {atom[0]}\n")
            serial += 1
    return "".join(lines)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("hp") / "HotProtein"
    d2 = root / "d2"
    (d2 / "d2_fasta_clean").mkdir(parents=True)
    names, labels = [], []
    for i in range(24):
        seq = "M" + ("KEIKE" if i % 2 else "SASAS") * 2 + "A" * (i % 4)
        name = f"prot{i}"
        (d2 / "d2_fasta_clean" / f"{name}.fasta").write_text(f">{name}\n{seq}\n")
        (d2 / "d2_clean" / name).mkdir(parents=True)
        (d2 / "d2_clean" / name / "unrelaxed_model_1_ptm.pdb").write_text(_pdb_text(seq, i))
        names.append(name)
        labels.append(i % 2)
    split = {"train_names": names[:18], "train_labels": labels[:18], "test_names": names[18:],
             "test_labels": labels[18:]}
    (d2 / "d2_0_classification.pkl").write_bytes(pickle.dumps(split))
    return root


def test_esm_if1_checkpoint_to_training(tmp_path, release):
    from esm.inverse_folding.gvp_transformer import GVPTransformerModel

    esm = pm.import_esm_inverse_folding()
    torch.manual_seed(0)
    full = GVPTransformerModel(argparse.Namespace(**ARGS), esm.Alphabet.from_architecture("invariant_gvp"))
    ckpt = tmp_path / "ckpt" / "esm_if1_gvp4_t16_142M_UR50.pt"
    ckpt.parent.mkdir()
    torch.save({"args": argparse.Namespace(**ARGS), "model": full.state_dict()}, ckpt)

    info = protein.make_pretrained("esm_if1", {"arch": "esm_if1"}, str(ckpt.parent), tmp_path / "pre")
    assert info["path"] == str((tmp_path / "pre").resolve()) and (tmp_path / "pre" / "encoder.safetensors").is_file()
    (tmp_path / "pre" / "pretrained.json").write_text(json.dumps(info))

    meta = protein.prepare("hotprotein_s2c5", str(release), tmp_path / "data", {"validation_fraction": 0.2})
    assert meta["structures"]["count"] == 24 and meta["dropped"] == {}
    settings = {"variant": "hp_s2c5", "model": {"name": "esm_if1", "arch": "esm_if1", "source": str(ckpt),
                                                 "settings": {"head_hidden": 16}},
                "training": {"lr": 1e-2, "backbone_lr": 1e-3, "batch_size": 4}}
    task = protein.TASK("hotprotein_s2c5", settings, tmp_path / "data", tmp_path / "pre", 0, "cpu")
    model = task.build_model()
    for n, p in model.encoder.state_dict().items():  # converted weights = the checkpoint's encoder
        assert torch.equal(p, full.encoder.state_dict()[n]), n
    opt = torch.optim.AdamW(task.param_groups(model, 1e-2, 0.0))
    q0 = model.encoder.layers[0].self_attn.q_proj.weight.detach().clone()
    model.train()
    for batch in task.train_batches(0):
        loss = task.loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert not torch.equal(q0, model.encoder.layers[0].self_attn.q_proj.weight)  # the encoder trains
    res = task.evaluate(model, "test")
    assert 0.0 <= res["accuracy"] <= 100.0 and task.baseline("test")["accuracy"] == 50.0
