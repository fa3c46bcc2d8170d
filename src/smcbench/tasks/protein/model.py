"""Protein models: ESM-1b (HF ``EsmModel``), the TAPE transformer (HF ``BertModel``) and ESM-IF1
(fair-esm, optional), each with SMC-Bench's thermostability head; plus the tiny demo ESM.

Parameter names stay the backbone library's own (``esm.encoder.layer.N.attention.self.query``…,
``bert.encoder.layer.N…``, ``encoder.layers.N.self_attn.q_proj``…) so scopes and masks written
for the real checkpoints apply unchanged. The head is ``classifier.{dense,layer_norm,out_proj}``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: The ESM-1b alphabet (fair-esm ``Alphabet.from_architecture("ESM-1b")``): 4 specials, 25 residue
#: codes, gap symbols, one filler so the size is a multiple of 8, then <mask> (id 32).
ESM_VOCAB = (["<cls>", "<pad>", "<eos>", "<unk>"] + list("LAGVSERTIDPKQNFYMHWCXBUZO")
             + [".", "-", "<null_1>", "<mask>"])

#: TAPE's IUPAC vocabulary (``TAPETokenizer(vocab="iupac")``), ids 0..29.
TAPE_VOCAB = ["<pad>", "<mask>", "<cls>", "<sep>", "<unk>"] + list("ABCDEFGHIKLMNOPQRSTUVWXYZ")


class ThermoHead(nn.Module):
    """SMC-Bench's classification head: Linear → LayerNorm → ReLU → Linear (ESM-1b: 1280→512→C;
    ESM-IF1: 512→128→C). ``layer_norm=False`` gives TAPE's Linear → ReLU → Dropout → Linear."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, layer_norm: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        self.dense = nn.Linear(in_dim, hidden)
        self.layer_norm = nn.LayerNorm(hidden) if layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(torch.relu(self.layer_norm(self.dense(x)))))


def _seeded_head(seed: int, *args, **kwargs) -> ThermoHead:
    # Heads are initialized from the run seed without touching the global RNG, so building the
    # model twice (LTH rewinding) gives bitwise-identical heads.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ThermoHead(*args, **kwargs)


class EsmThermoClassifier(nn.Module):
    """ESM (HF ``EsmModel``) + mean over residue positions + :class:`ThermoHead`.

    Pooling follows SMC-Bench: the last layer's states averaged over tokens that are neither
    padding nor ``<cls>`` (``<eos>`` is included, as the paper's ``tokens >= 2`` mask does).
    """

    def __init__(self, esm: nn.Module, num_classes: int, head_hidden: int, seed: int, cls_id: int = 0):
        super().__init__()
        self.esm = esm
        self.cls_id = cls_id
        # The contact head is unused here; frozen so no optimizer or scorer sees a gradless tensor.
        if getattr(esm, "contact_head", None) is not None:
            esm.contact_head.requires_grad_(False)
        self.classifier = _seeded_head(seed, esm.config.hidden_size, head_hidden, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.esm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        keep = (attention_mask.bool() & (input_ids != self.cls_id)).unsqueeze(-1).to(states.dtype)
        pooled = (states * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.classifier(pooled)


class TapeThermoClassifier(nn.Module):
    """TAPE transformer (HF ``BertModel``, TAPE vocab) + pooled output + MLP head (TAPE's
    ``SimpleMLP`` 768→512→C, without its weight norm so weight names stay ``.weight``)."""

    def __init__(self, bert: nn.Module, num_classes: int, head_hidden: int, seed: int, dropout: float = 0.1):
        super().__init__()
        self.bert = bert
        self.classifier = _seeded_head(seed, bert.config.hidden_size, head_hidden, num_classes,
                                       layer_norm=False, dropout=dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return self.classifier(out.pooler_output)


# --- ESM -----------------------------------------------------------------------------------
def tiny_esm_config(settings: dict[str, Any], max_residues: int):
    """An ``EsmConfig`` with ESM-1b's layout (absolute positions, pre-LN with
    ``emb_layer_norm_before``, token dropout, 33-token alphabet) at demo sizes from ``settings``."""
    from transformers import EsmConfig

    hidden = int(settings.get("hidden_size", 32))
    return EsmConfig(
        vocab_size=len(ESM_VOCAB), hidden_size=hidden,
        num_hidden_layers=int(settings.get("num_hidden_layers", 2)),
        num_attention_heads=int(settings.get("num_attention_heads", 2)),
        intermediate_size=int(settings.get("intermediate_size", 2 * hidden)),
        # HF ESM positions start at padding_idx + 1, so L residues + <cls>/<eos> need L + 4 rows.
        max_position_embeddings=int(settings.get("max_residues", max_residues)) + 4,
        position_embedding_type="absolute",
        pad_token_id=ESM_VOCAB.index("<pad>"), mask_token_id=ESM_VOCAB.index("<mask>"),
        token_dropout=True, emb_layer_norm_before=True, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5,
    )


def write_esm_vocab(out_dir: Path) -> Path:
    """Write ESM's ``vocab.txt`` (one token per line, id = line number) and return its path."""
    path = Path(out_dir) / "vocab.txt"
    path.write_text("\n".join(ESM_VOCAB) + "\n", encoding="utf-8")
    return path


def load_esm_backbone(path: Path, attn_implementation: str | None = None) -> nn.Module:
    """``EsmModel`` from a local folder (a Hub snapshot of ``facebook/esm1b_t33_650M_UR50S``, a
    user's path, or the demo's pre-trained folder). Works from ``EsmForMaskedLM`` checkpoints too
    (the ``esm.`` prefix is stripped by ``from_pretrained``)."""
    from transformers import EsmModel
    from transformers.utils import logging as hf_logging

    fast = _load_small_esm(Path(path), attn_implementation)
    if fast is not None:
        return fast
    kwargs = {"add_pooling_layer": False}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "LM head weights not used" is expected, not news
    try:
        return EsmModel.from_pretrained(str(path), **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)


def _load_small_esm(path: Path, attn_implementation: str | None) -> nn.Module | None:
    """Load a small single-file safetensors ESM (the demo's) without ``from_pretrained``'s fixed
    cost (~0.1 s, a fifth of a demo run). Returns None (→ the regular path) unless every weight
    of the model is found under its HF name; big checkpoints always take the regular path."""
    from safetensors.torch import load_file
    from transformers import EsmConfig, EsmModel

    st = path / "model.safetensors"
    if not st.is_file() or st.stat().st_size > 64 * 2**20 or not (path / "config.json").is_file():
        return None
    config = EsmConfig.from_pretrained(str(path))
    if attn_implementation:
        config._attn_implementation = attn_implementation
    model = EsmModel(config, add_pooling_layer=False)
    state = {}
    for key, value in load_file(str(st)).items():
        key = key[len("esm."):] if key.startswith("esm.") else key
        # transformers 5 writes some LayerNorm parameters under their legacy gamma/beta names
        if key.endswith(".gamma") or key.endswith(".beta"):
            key = key.rsplit(".", 1)[0] + (".weight" if key.endswith(".gamma") else ".bias")
        state[key] = value
    expected = model.state_dict()
    if any(k not in state or state[k].shape != v.shape for k, v in expected.items()):
        return None
    model.load_state_dict({k: state[k] for k in expected}, strict=True)
    model.eval()  # from_pretrained returns eval mode too
    return model


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_lo: int, vocab_hi: int,
                generator: torch.Generator, rate: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style masking (of the chosen 15%: 80% <mask>, 10% random residue, 10% unchanged)."""
    labels = input_ids.clone()
    chosen = (torch.rand(input_ids.shape, generator=generator) < rate) & ~special
    labels[~chosen] = -100
    inputs = input_ids.clone()
    u = torch.rand(input_ids.shape, generator=generator)
    inputs[chosen & (u < 0.8)] = mask_id
    rand_pos = chosen & (u >= 0.8) & (u < 0.9)
    inputs[rand_pos] = torch.randint(vocab_lo, vocab_hi, (int(rand_pos.sum()),), generator=generator)
    return inputs, labels


def encode_batch(seqs: list[str], vocab: dict[str, int], cls_id: int, eos_id: int, pad_id: int,
                 unk_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``<cls> residues <eos>`` ids, right-padded, and the attention mask."""
    n = max(len(s) for s in seqs) + 2
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = [cls_id] + [vocab.get(c, unk_id) for c in s] + [eos_id]
        ids[i, :len(row)] = torch.tensor(row)
    return ids, (ids != pad_id).long()


def pretrain_tiny_esm(sequences: list[str], settings: dict[str, Any], out_dir: Path, seed: int,
                      log=print) -> dict[str, Any]:
    """Masked-LM pre-training of a tiny ``EsmForMaskedLM`` on ``sequences`` through the shared demo
    loop (:func:`smcbench.tasks.pretrain.pretrain`; ESM's own masking, since its residue ids are not
    the lowest); saves the model (safetensors) and an ``EsmTokenizer`` into ``out_dir``.
    ``mlm_loss_first`` is the first step's loss, ``mlm_loss_last`` the mean of the last 10 %."""
    from transformers import EsmForMaskedLM, EsmTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_res = max(len(s) for s in sequences)
    config = tiny_esm_config(settings, max_res)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EsmForMaskedLM(config)
    vocab = {t: i for i, t in enumerate(ESM_VOCAB)}
    cls_id, pad_id, eos_id, unk_id, mask_id = (vocab[t] for t in ("<cls>", "<pad>", "<eos>", "<unk>", "<mask>"))
    residue_lo, residue_hi = vocab["L"], vocab["O"] + 1
    steps = int(settings.get("pretrain_steps", 200))
    bs = int(settings.get("pretrain_batch_size", 32))
    from ..pretrain import PretrainSettings, pretrain

    def step_loss(step: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(sequences), (bs,), generator=gen).tolist()
        ids, att = encode_batch([sequences[i] for i in idx], vocab, cls_id, eos_id, pad_id, unk_id)
        special = (ids == cls_id) | (ids == eos_id) | (ids == pad_id)
        # ESM's residues are not the lowest ids (specials 0-3, then residues, gaps, <mask> 32): own masking
        inputs, labels = mask_tokens(ids, special, mask_id, residue_lo, residue_hi, gen)
        return model(input_ids=inputs, attention_mask=att, labels=labels).loss

    model.train()
    summary = pretrain(model.parameters(), step_loss,
                       # constant after warm-up: a decay to zero leaves the tiny ESM too weak a start
                       # for the demo's order task (dense then misses it within the demo's budget)
                       PretrainSettings(steps=steps, lr=float(settings.get("pretrain_lr", 2e-3)), seed=seed,
                                        betas=(0.9, 0.999), min_lr_ratio=1.0))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    write_esm_vocab(out_dir)
    EsmTokenizer(vocab_file=str(out_dir / "vocab.txt")).save_pretrained(str(out_dir))
    head, tail = summary["loss_first"], summary["loss_last"]
    info = {"pretrain_steps": steps, "pretrain_batch_size": bs, "mlm_loss_first": head,
            "mlm_loss_last": tail, "uniform_loss": round(math.log(residue_hi - residue_lo), 4),
            "pretrain_seconds": summary["seconds"],
            "num_parameters": sum(p.numel() for p in model.parameters())}
    log(f"tiny ESM pre-trained: MLM loss {head:.3f} -> {tail:.3f} in {info['pretrain_seconds']}s")
    return info


# --- TAPE ----------------------------------------------------------------------------------
def tape_vocab(path: Path) -> dict[str, int]:
    """Token ids of a TAPE checkpoint folder: its ``vocab.txt`` if present (the HF port uses
    ``[PAD] [MASK] [CLS] [SEP] [UNK] A…Z``, same ids as TAPE), else TAPE's IUPAC vocab. Special
    tokens are returned under TAPE's names (``<pad>``, ``<cls>``, ``<sep>``, ``<unk>``)."""
    vocab_file = Path(path) / "vocab.txt"
    tokens = (vocab_file.read_text(encoding="utf-8").split() if vocab_file.is_file() else TAPE_VOCAB)
    rename = {"[PAD]": "<pad>", "[MASK]": "<mask>", "[CLS]": "<cls>", "[SEP]": "<sep>", "[UNK]": "<unk>"}
    vocab = {rename.get(t, t): i for i, t in enumerate(tokens)}
    missing = [t for t in ("<pad>", "<cls>", "<sep>", "<unk>") if t not in vocab]
    if missing:
        raise ValueError(f"{vocab_file}: TAPE vocabulary lacks {missing}; expected TAPE's IUPAC vocab")
    return vocab


def load_tape_backbone(path: Path) -> nn.Module:
    """HF ``BertModel`` from a local TAPE folder (``config.json`` + weights, e.g. the
    ``mlnotes/tape`` port or a conversion of TAPE's ``bert-base`` checkpoint)."""
    from transformers import BertModel

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: no config.json; the TAPE model needs a local folder in Hugging Face BertModel "
            "format (config.json + model.safetensors, vocab.txt optional). See the README (protein) (TAPE).")
    return BertModel.from_pretrained(str(path), add_pooling_layer=True)


def tiny_tape_backbone(settings: dict[str, Any], seed: int) -> nn.Module:
    """A random-init ``BertModel`` with TAPE's layout (30-token vocab, GELU, post-LN) at test sizes."""
    from transformers import BertConfig, BertModel

    hidden = int(settings.get("hidden_size", 32))
    cfg = BertConfig(vocab_size=len(TAPE_VOCAB), hidden_size=hidden,
                     num_hidden_layers=int(settings.get("num_hidden_layers", 2)),
                     num_attention_heads=int(settings.get("num_attention_heads", 2)),
                     intermediate_size=int(settings.get("intermediate_size", 2 * hidden)),
                     max_position_embeddings=int(settings.get("max_position_embeddings", 1100)),
                     type_vocab_size=1, pad_token_id=0, layer_norm_eps=1e-12,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BertModel(cfg, add_pooling_layer=True)


# --- ESM-IF1 (optional: fair-esm, biotite, torch-geometric, torch-scatter) ------------------
ESMIF_INSTALL_HINT = (
    "ESM-IF1 (arch esm_if1) needs the optional dependencies fair-esm, biotite, torch-geometric and "
    "torch-scatter: `pip install -e '.[esmif]'` plus torch-scatter, or `conda env create -f envs/esmif.yaml`. "
    "See the README (protein) (ESM-IF1 install pitfalls: torch-scatter has no PyPI wheels, biotite>=1.0 "
    "removed filter_backbone)")


def _torch_scatter_shim() -> None:
    """Provide ``torch_scatter``'s functions from ``torch_geometric.utils.scatter`` when the
    compiled package is absent (PyPI has only an sdist that must build against the installed
    torch). Only the functional API fair-esm's inverse folding imports is covered."""
    import importlib.machinery
    import importlib.util
    import sys
    import types

    if "torch_scatter" in sys.modules or importlib.util.find_spec("torch_scatter") is not None:
        return
    if importlib.util.find_spec("torch_geometric") is None:
        return  # the import below then fails with the install hint
    from torch_geometric.utils import scatter as pyg_scatter

    def scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum"):
        if out is not None:
            raise NotImplementedError("torch_scatter shim: out= is not supported")
        return pyg_scatter(src, index, dim=dim, dim_size=dim_size, reduce=reduce)

    mod = types.ModuleType("torch_scatter")
    mod.__spec__ = importlib.machinery.ModuleSpec("torch_scatter", None)  # find_spec() must not fail
    mod.__doc__ = "smcbench shim over torch_geometric.utils.scatter (no compiled torch-scatter found)"
    mod.scatter = scatter
    for reduce in ("sum", "add", "mean", "max", "min", "mul"):
        setattr(mod, f"scatter_{reduce}",
                lambda src, index, dim=-1, out=None, dim_size=None, _r="sum" if reduce == "add" else reduce:
                scatter(src, index, dim, out, dim_size, _r))
    sys.modules["torch_scatter"] = mod


def _biotite_compat() -> None:
    """biotite >= 1.0 renamed ``filter_backbone`` to ``filter_peptide_backbone``; fair-esm 2.0.0
    imports the old name at module import time."""
    try:
        import biotite.structure as bs
    except ImportError:
        return
    if not hasattr(bs, "filter_backbone") and hasattr(bs, "filter_peptide_backbone"):
        bs.filter_backbone = bs.filter_peptide_backbone


def import_esm_inverse_folding():
    """Import fair-esm's inverse-folding package lazily; a clear ImportError when missing.

    Applies two documented compatibility shims first (torch_scatter via torch_geometric,
    biotite's renamed ``filter_backbone``) so a pip-only install works on current versions."""
    try:
        _torch_scatter_shim()
        _biotite_compat()
        import esm  # noqa: F401  (fair-esm)
        import esm.inverse_folding  # noqa: F401
    except ImportError as e:
        raise ImportError(f"{ESMIF_INSTALL_HINT}. Import failed with: {e}") from None
    return esm


def convert_esm_if1_checkpoint(pt_path: Path, out_dir: Path) -> dict[str, Any]:
    """Convert fair-esm's ``esm_if1_gvp4_t16_142M_UR50.pt`` into ``encoder.safetensors`` +
    ``esm_if1_args.json`` in ``out_dir`` so training jobs never unpickle.

    The ``.pt`` is read with ``torch.load(weights_only=True)`` allowing only
    ``argparse.Namespace`` (the checkpoint's ``args``); anything else in it is refused.
    """
    import argparse

    from safetensors.torch import save_file

    esm = import_esm_inverse_folding()
    with torch.serialization.safe_globals([argparse.Namespace]):
        model_data = torch.load(str(pt_path), map_location="cpu", weights_only=True)
    model, _alphabet = esm.pretrained.load_model_and_alphabet_core(Path(pt_path).stem, model_data, None)
    args = {}
    for k, v in vars(model.args).items():
        try:
            json.dumps(v)
        except TypeError:
            continue  # e.g. callables; the encoder's constructor reads only plain values
        args[k] = v
    state = {k: v.contiguous() for k, v in model.encoder.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / "encoder.safetensors"), metadata={"source": str(pt_path)})
    (out_dir / "esm_if1_args.json").write_text(json.dumps(args, indent=1, sort_keys=True))
    return {"encoder_parameters": sum(v.numel() for v in state.values())}


def build_esm_if1_encoder(args: dict[str, Any], state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The GVP-Transformer *encoder* of ESM-IF1 (the decoder is not needed for a classifier)."""
    import argparse

    esm = import_esm_inverse_folding()
    from esm.inverse_folding.gvp_transformer import GVPTransformerModel
    from esm.inverse_folding.gvp_transformer_encoder import GVPTransformerEncoder

    alphabet = esm.Alphabet.from_architecture("invariant_gvp")
    ns = argparse.Namespace(**args)
    embed = GVPTransformerModel.build_embedding(ns, alphabet, ns.encoder_embed_dim)
    encoder = GVPTransformerEncoder(ns, alphabet, embed)
    if state is not None:
        encoder.load_state_dict(state, strict=True)
    encoder.alphabet = alphabet
    return encoder


class EsmIF1Classifier(nn.Module):
    """ESM-IF1 encoder on backbone coordinates → mean over residues → :class:`ThermoHead`
    (512→128→C), as SMC-Bench's ``if1_*`` scripts (but the encoder is trained too)."""

    def __init__(self, encoder: nn.Module, num_classes: int, head_hidden: int, seed: int):
        super().__init__()
        self.encoder = encoder
        dim = int(encoder.args.encoder_embed_dim) if hasattr(encoder, "args") else 512
        self.classifier = _seeded_head(seed, dim, head_hidden, num_classes)

    def forward(self, coords: torch.Tensor, padding_mask: torch.Tensor, confidence: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        out = self.encoder(coords, padding_mask, confidence)["encoder_out"][0]  # T x B x C
        states = out.transpose(0, 1)
        # Residues sit at positions 1..L of each row (the batch converter adds BOS/EOS slots);
        # average those only, as get_encoder_output(...)[1:-1].mean(0) does for one structure.
        pos = torch.arange(states.shape[1], device=states.device)
        keep = ((pos >= 1) & (pos <= lengths[:, None])).unsqueeze(-1).to(states.dtype)
        pooled = (states * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.classifier(pooled)


# --- publishers' checkpoint layouts → Hugging Face folders (tensors only, never unpickled) ------
def _load_tensors(path: Path) -> dict[str, Any]:
    """A ``.pt`` / ``.bin`` checkpoint through ``torch.load(weights_only=True)``: tensors,
    containers and ``argparse.Namespace`` (fair-esm's ``args``) only; anything else is refused."""
    import argparse
    import pickle

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a tensors-only PyTorch checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); refusing to unpickle it") from None


def _check_and_save(model: nn.Module, state: dict[str, torch.Tensor], src: Path, out_dir: Path,
                    optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load ``state`` into ``model`` (every tensor present with its shape, except names starting
    with ``optional``, which keep their init) and save it as safetensors in ``out_dir``."""
    expected = model.state_dict()
    state = dict(state)
    for k, v in expected.items():
        if k.startswith(optional) and (k not in state or state[k].shape != v.shape):
            state[k] = v
    missing = sorted(k for k in expected if k not in state)
    wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                   for k, v in expected.items() if k in state and state[k].shape != v.shape)
    if missing or wrong:
        raise ValueError(f"{src}: checkpoint does not fit the model: missing {missing[:5]}"
                         f"{' …' if len(missing) > 5 else ''}; wrong shape {wrong[:5]}")
    model.load_state_dict({k: state[k].float().contiguous() for k in expected}, strict=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return {"converted_from": str(src), "parameters": sum(v.numel() for v in expected.values())}


def convert_fair_esm_checkpoint(pt_path: Path, out_dir: Path) -> dict[str, Any]:
    """fair-esm's ESM-1b checkpoint (``esm1b_t33_650M_UR50S.pt``, arch ``roberta_large``) →
    an HF ``EsmModel`` folder (``config.json``, ``model.safetensors``, ``vocab.txt``) in ``out_dir``.

    Names follow fair-esm's own state-dict upgrade (``encoder.sentence_encoder.`` prefixes dropped),
    then map one to one onto HF ESM: ``layers.N.self_attn.{q,k,v,out}_proj`` → ``encoder.layer.N.
    attention.{self.query,self.key,self.value,output.dense}``, ``self_attn_layer_norm`` →
    ``attention.LayerNorm``, ``fc1``/``fc2`` → ``intermediate.dense``/``output.dense``,
    ``final_layer_norm`` → ``LayerNorm``; the LM and contact heads are not needed. The ``<mask>``
    embedding row is zeroed as fair-esm does at load (token dropout).
    """
    from transformers import EsmConfig, EsmModel

    data = _load_tensors(pt_path)
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"{pt_path}: not a fair-esm checkpoint (expected a dict with 'model' and 'args')")
    args = vars(data["args"]) if hasattr(data.get("args"), "__dict__") else dict(data.get("args") or {})
    if args.get("arch", "roberta_large") != "roberta_large":
        raise ValueError(f"{pt_path}: fair-esm arch {args.get('arch')!r} is not ESM-1b (roberta_large); only "
                         "ESM-1b checkpoints convert (ESM-2 and others: use their Hugging Face snapshot)")

    def upgrade(key: str) -> str:
        for prefix in ("encoder.sentence_encoder.", "sentence_encoder.", "encoder."):
            if key.startswith(prefix):
                return key[len(prefix):]
        return key

    raw = {upgrade(k): v for k, v in data["model"].items()}
    emb = raw.get("embed_tokens.weight")
    if emb is None:
        raise ValueError(f"{pt_path}: no embed_tokens.weight; not an ESM-1b checkpoint")
    n_layers = 1 + max(int(k.split(".")[1]) for k in raw if k.startswith("layers."))
    hidden = emb.shape[1]
    heads = int(args.get("encoder_attention_heads", args.get("attention_heads", 20)))
    config = EsmConfig(
        vocab_size=emb.shape[0], hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=heads,
        intermediate_size=raw["layers.0.fc1.weight"].shape[0],
        max_position_embeddings=raw["embed_positions.weight"].shape[0], position_embedding_type="absolute",
        pad_token_id=ESM_VOCAB.index("<pad>"), mask_token_id=ESM_VOCAB.index("<mask>"),
        token_dropout=bool(args.get("token_dropout", True)),  # ESM-1b was trained with it (HF's config too)
        emb_layer_norm_before="emb_layer_norm_before.weight" in raw, layer_norm_eps=1e-5,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    state = {"embeddings.word_embeddings.weight": emb.clone(),
             "embeddings.position_embeddings.weight": raw["embed_positions.weight"]}
    state["embeddings.word_embeddings.weight"][config.mask_token_id].zero_()
    pairs = [("emb_layer_norm_after", "encoder.emb_layer_norm_after")]
    if config.emb_layer_norm_before:
        pairs.append(("emb_layer_norm_before", "embeddings.layer_norm"))
    for i in range(n_layers):
        a, b = f"layers.{i}.", f"encoder.layer.{i}."
        pairs += [(a + "self_attn.q_proj", b + "attention.self.query"), (a + "self_attn.k_proj", b + "attention.self.key"),
                  (a + "self_attn.v_proj", b + "attention.self.value"),
                  (a + "self_attn.out_proj", b + "attention.output.dense"),
                  (a + "self_attn_layer_norm", b + "attention.LayerNorm"), (a + "fc1", b + "intermediate.dense"),
                  (a + "fc2", b + "output.dense"), (a + "final_layer_norm", b + "LayerNorm")]
    pairs.append(("contact_head.regression", "contact_head.regression"))  # unused by the classifier
    for old, new in pairs:
        for p in ("weight", "bias"):
            if f"{old}.{p}" in raw:
                state[f"{new}.{p}"] = raw[f"{old}.{p}"]
    model = EsmModel(config, add_pooling_layer=False)
    info = _check_and_save(model, state, pt_path, out_dir, optional=("contact_head.",))
    write_esm_vocab(out_dir)
    return info


def convert_tape_checkpoint(src: Path, out_dir: Path, num_attention_heads: int = 12) -> dict[str, Any]:
    """TAPE's published transformer (``bert-base-pytorch_model.bin`` and ``bert-base-config.json``
    from TAPE's model bucket, or a folder saved by TAPE's ``save_pretrained``: ``pytorch_model.bin``
    + ``config.json``) → an HF ``BertModel`` folder with safetensors in ``out_dir``.

    TAPE's ``ProteinBertModel`` uses HF BERT's module names, so keys map one to one after dropping
    the ``bert.`` prefix (``mlm.*`` is not needed; old ``gamma``/``beta`` names are renamed). With
    the weights alone (no config), the sizes are read from the tensors and ``num_attention_heads``
    is TAPE bert-base's 12 unless the model settings say otherwise.
    """
    from transformers import BertConfig, BertModel

    src = Path(src)
    if src.is_file():
        weights, folder = src, src.parent
    else:
        cands = sorted(src.glob("*pytorch_model.bin"))
        if len(cands) != 1:
            raise FileNotFoundError(f"{src}: expected one TAPE weights file (pytorch_model.bin or "
                                    f"bert-base-pytorch_model.bin), found {[p.name for p in cands]}")
        weights, folder = cands[0], src
    cfg_files = [p for p in (folder / "config.json", folder / weights.name.replace("pytorch_model.bin", "config.json"))
                 if p.is_file()]
    tape_cfg = json.loads(cfg_files[0].read_text(encoding="utf-8")) if cfg_files else {}
    raw = _load_tensors(weights)
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ValueError(f"{weights}: expected a state dict of tensors (TAPE's pytorch_model.bin)")
    state = {}
    for key, value in raw.items():
        key = key[len("bert."):] if key.startswith("bert.") else key
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        state[key] = value
    emb = state.get("embeddings.word_embeddings.weight")
    if emb is None:
        raise ValueError(f"{weights}: no (bert.)embeddings.word_embeddings.weight; not a TAPE transformer checkpoint")
    n_layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    config = BertConfig(
        vocab_size=emb.shape[0], hidden_size=emb.shape[1], num_hidden_layers=n_layers,
        num_attention_heads=int(tape_cfg.get("num_attention_heads", num_attention_heads)),
        intermediate_size=state["encoder.layer.0.intermediate.dense.weight"].shape[0],
        hidden_act=tape_cfg.get("hidden_act", "gelu"),
        hidden_dropout_prob=float(tape_cfg.get("hidden_dropout_prob", 0.1)),
        attention_probs_dropout_prob=float(tape_cfg.get("attention_probs_dropout_prob", 0.1)),
        max_position_embeddings=state["embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state["embeddings.token_type_embeddings.weight"].shape[0],
        layer_norm_eps=float(tape_cfg.get("layer_norm_eps", 1e-12)), pad_token_id=TAPE_VOCAB.index("<pad>"))
    model = BertModel(config, add_pooling_layer=True)
    return _check_and_save(model, state, weights, out_dir)
