"""Protein sources in the layouts their publishers ship, through download → prepare / pretrained:
FLIP's splits.zip served over HTTP, a HotProtein release archive, fair-esm's ESM-1b ``.pt`` and
TAPE's ``bert-base-pytorch_model.bin`` (+ config). Tiny random-init checkpoints; offline."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench import download  # noqa: E402
from smcbench.tasks import protein  # noqa: E402
from smcbench.tasks.protein import model as pm  # noqa: E402
from smcbench.tasks.base import read_jsonl  # noqa: E402

TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}




def _fetch(url: str, tmp_path: Path) -> str:
    """The download step as the pipeline runs it; returns the local path it records."""
    record = download.run(url, tmp_path / "dl" / f"{abs(hash(url))}.json", tmp_path / "cache")
    return download.local_source(tmp_path / "dl" / f"{abs(hash(url))}.json") if record else ""


# --- FLIP Meltome: the configured URL is splits.zip itself ------------------------------------
def test_meltome_splits_zip_over_http(served, tmp_path):
    www, base = served
    rows = "sequence,target,set,validation\n" + "".join(
        f"MKV{'AL' * i},{40 + 1.5 * i},{'test' if i % 4 == 0 else 'train'},{'True' if i % 7 == 3 else ''}\n"
        for i in range(24))
    (www / "splits").mkdir()
    with zipfile.ZipFile(www / "splits" / "splits.zip", "w") as zf:
        zf.writestr("splits/mixed_split.csv", rows)
        zf.writestr("splits/human.csv", rows)
    local = _fetch(f"{base}/splits/splits.zip", tmp_path)
    assert Path(local).is_file() and zipfile.is_zipfile(local)  # the download step records the zip file
    meta = protein.prepare("meltome", local, tmp_path / "o",
                           {"variant": "meltome", "split": "human", "validation_from": "flip"})
    assert meta["zip_member"] == "splits/human.csv"
    assert meta["counts"] == {"train": 15, "validation": 3, "test": 6}
    assert all(40 <= r["target"] < 80 for r in read_jsonl(tmp_path / "o" / "test.jsonl"))


def test_hotprotein_release_archive_over_http(served, tmp_path):
    www, base = served
    root = tmp_path / "rel" / "HotProtein" / "d1"
    (root / "d1_fasta_clean").mkdir(parents=True)
    names = [f"Q{i:04d}" for i in range(20)]
    for i, n in enumerate(names):
        (root / "d1_fasta_clean" / f"{n}.fasta").write_text(f">{n}\nMKT{'AV'[i % 2] * (i + 1)}\n")
    split = {"train_names": names[:16], "train_labels": [i % 2 for i in range(16)],
             "test_names": names[16:], "test_labels": [0, 1, 0, 1]}
    (root / "d1_0_classification.pkl").write_bytes(pickle.dumps(split))
    shutil.make_archive(str(www / "HotProtein"), "zip", root_dir=tmp_path / "rel", base_dir="HotProtein")
    local = _fetch(f"{base}/HotProtein.zip", tmp_path)
    meta = protein.prepare("hotprotein_s2c2", local, tmp_path / "o", {"validation_fraction": 0.25})
    assert meta["counts"] == {"train": 12, "validation": 4, "test": 4}


# --- fair-esm ESM-1b checkpoint -------------------------------------------------------------
def _fair_esm_state(hf) -> dict[str, torch.Tensor]:
    """The state dict of fair-esm's ESM-1b for the weights of an HF ``EsmModel`` (the inverse of
    the conversion), under the checkpoint's own ``encoder.sentence_encoder.`` names, plus LM-head
    and contact-head tensors the conversion must ignore."""
    sd = hf.state_dict()
    out = {"embed_tokens.weight": sd["embeddings.word_embeddings.weight"],
           "embed_positions.weight": sd["embeddings.position_embeddings.weight"],
           "emb_layer_norm_before.weight": sd["embeddings.layer_norm.weight"],
           "emb_layer_norm_before.bias": sd["embeddings.layer_norm.bias"],
           "emb_layer_norm_after.weight": sd["encoder.emb_layer_norm_after.weight"],
           "emb_layer_norm_after.bias": sd["encoder.emb_layer_norm_after.bias"],
           "lm_head.weight": sd["embeddings.word_embeddings.weight"], "lm_head.bias": torch.zeros(33),
           "contact_head.regression.weight": torch.zeros(1, 4)}
    names = {"self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
             "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
             "self_attn_layer_norm": "attention.LayerNorm", "fc1": "intermediate.dense", "fc2": "output.dense",
             "final_layer_norm": "LayerNorm"}
    for i in range(hf.config.num_hidden_layers):
        for a, b in names.items():
            for p in ("weight", "bias"):
                out[f"layers.{i}.{a}.{p}"] = sd[f"encoder.layer.{i}.{b}.{p}"]
    return {f"encoder.sentence_encoder.{k}" if not k.startswith("lm_head") else f"encoder.{k}": v.clone()
            for k, v in out.items()}


def _tiny_hf_esm():
    from transformers import EsmModel

    torch.manual_seed(0)
    cfg = pm.tiny_esm_config(TINY, 40)
    model = EsmModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[cfg.mask_token_id] = 0.0  # fair-esm zeroes <mask> at load
    return model


def test_fair_esm_checkpoint_over_http_converts_and_matches(served, tmp_path):
    www, base = served
    hf = _tiny_hf_esm()
    args = argparse.Namespace(arch="roberta_large", encoder_attention_heads=2, encoder_layers=2,
                              encoder_embed_dim=16, encoder_ffn_embed_dim=32, max_positions=40)
    torch.save({"model": _fair_esm_state(hf), "args": args, "version": 1}, www / "esm1b_t33_650M_UR50S.pt")
    local = _fetch(f"{base}/esm1b_t33_650M_UR50S.pt", tmp_path)
    info = protein.make_pretrained("esm1b", {"arch": "esm"}, local, tmp_path / "pre")
    assert info["converted_from"].endswith(".pt") and (tmp_path / "pre" / "model.safetensors").is_file()
    assert (tmp_path / "pre" / "vocab.txt").read_text().split()[:4] == ["<cls>", "<pad>", "<eos>", "<unk>"]
    loaded = pm.load_esm_backbone(Path(info["path"]))
    ids = torch.tensor([[0, 5, 6, 7, 32, 8, 2, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        a = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        b = loaded(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(a, b, atol=1e-6)


def test_fair_esm_other_arch_and_pickled_code_are_refused(tmp_path):
    torch.save({"model": {}, "args": argparse.Namespace(arch="esm2")}, tmp_path / "esm2.pt")
    with pytest.raises(ValueError, match="is not ESM-1b"):
        protein.make_pretrained("esm1b", {"arch": "esm"}, str(tmp_path / "esm2.pt"), tmp_path / "o")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil" ).mkdir()
    with open(tmp_path / "evil" / "model.pt", "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        protein.make_pretrained("esm1b", {"arch": "esm"}, str(tmp_path / "evil"), tmp_path / "o")


@pytest.mark.skipif(__import__("importlib").util.find_spec("esm") is None, reason="fair-esm not installed")
def test_fair_esm_reference_forward_matches_converted(tmp_path):
    """With fair-esm installed: its own ESM-1b module and the converted HF model agree."""
    import esm

    alphabet = esm.Alphabet.from_architecture("ESM-1b")
    args = argparse.Namespace(arch="roberta_large", layers=2, embed_dim=16, ffn_embed_dim=32, attention_heads=2,
                              max_positions=40, emb_layer_norm_before=True, final_bias=True, dropout=0.0,
                              attention_dropout=0.0, activation_dropout=0.0, token_dropout=True)
    torch.manual_seed(1)
    ref = esm.ProteinBertModel(args, alphabet).eval()
    state = {("encoder." + k if k.startswith("lm_head") else "encoder.sentence_encoder." + k): v
             for k, v in ref.state_dict().items()}
    ckpt_args = argparse.Namespace(arch="roberta_large", encoder_attention_heads=2, token_dropout=True)
    torch.save({"model": state, "args": ckpt_args}, tmp_path / "esm1b.pt")
    info = protein.make_pretrained("esm1b", {"arch": "esm"}, str(tmp_path / "esm1b.pt"), tmp_path / "pre")
    hf = pm.load_esm_backbone(Path(info["path"])).eval()
    with torch.no_grad():
        ref.embed_tokens.weight[alphabet.mask_idx].zero_()
        tokens = torch.tensor([[0, 5, 6, 7, 8, 9, 2, 1, 1]])
        a = ref(tokens, repr_layers=[2])["representations"][2]
        b = hf(input_ids=tokens, attention_mask=(tokens != 1).long()).last_hidden_state
    keep = tokens[0] != 1
    assert torch.allclose(a[0, keep], b[0, keep], atol=1e-5)


# --- TAPE ----------------------------------------------------------------------------------
def _tape_files(folder: Path, with_config: bool = True):
    """TAPE's model bucket layout: bert-base-pytorch_model.bin (ProteinBertForMaskedLM state:
    ``bert.*`` + ``mlm.*``) and bert-base-config.json (ProteinBertConfig)."""
    bert = pm.tiny_tape_backbone(TINY, seed=3).eval()
    state = {f"bert.{k}": v for k, v in bert.state_dict().items() if "position_ids" not in k}
    state["mlm.transform.dense.weight"] = torch.zeros(16, 16)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "bert-base-pytorch_model.bin")
    if with_config:
        cfg = dict(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                   hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                   max_position_embeddings=1100, type_vocab_size=1, initializer_range=0.02, layer_norm_eps=1e-12,
                   output_attentions=False, output_hidden_states=False, torchscript=False)
        (folder / "bert-base-config.json").write_text(json.dumps(cfg))
    return bert


def test_tape_bucket_layout_over_http(served, tmp_path):
    www, base = served
    bert = _tape_files(www / "tape")
    local = _fetch(f"{base}/tape/bert-base-pytorch_model.bin", tmp_path)  # one URL = the weights file
    # the weights alone: sizes from the tensors, heads from the model settings
    info = protein.make_pretrained("tape", {"arch": "tape", "settings": {"num_attention_heads": 2}}, local,
                                   tmp_path / "pre")
    loaded = pm.load_tape_backbone(Path(info["path"])).eval()
    ids = torch.tensor([[2, 5, 9, 12, 3, 0]])
    with torch.no_grad():
        a = bert(input_ids=ids, attention_mask=(ids != 0).long()).pooler_output
        b = loaded(input_ids=ids, attention_mask=(ids != 0).long()).pooler_output
    assert torch.allclose(a, b, atol=1e-6)
    # the folder with its config (heads read from bert-base-config.json)
    info2 = protein.make_pretrained("tape", {"arch": "tape"}, str(www / "tape"), tmp_path / "pre2")
    assert json.loads((Path(info2["path"]) / "config.json").read_text())["num_attention_heads"] == 2


def test_tape_wrong_checkpoint_names_the_file(tmp_path):
    torch.save({"encoder.layer.0.foo": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin: no \(bert\.\)embeddings"):
        protein.make_pretrained("tape", {"arch": "tape"}, str(tmp_path), tmp_path / "o")
