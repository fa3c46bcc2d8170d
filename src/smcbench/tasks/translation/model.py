"""Translation family, model side: the pre-trained mBART (a local/Hub snapshot, converted to
safetensors when it has only ``pytorch_model.bin``; or the demo's tiny model)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from . import CC25_CODES

# --- pre-trained model --------------------------------------------------------------------------
def _lang_tokens(model_settings: dict[str, Any]) -> dict[str, str]:
    """ISO code → the model's language token (cc25 codes unless ``lang_tokens`` overrides)."""
    tokens = dict(CC25_CODES)
    tokens.update(model_settings.get("lang_tokens") or {})
    return tokens


def make_pretrained(model_name: str, entry: dict[str, Any], source: str | Path,
                    out_dir: str | Path) -> dict[str, Any]:
    """Materialize the pre-trained mBART.

    A local folder (Hub snapshot of ``facebook/mbart-large-cc25`` or the user's checkpoint) is
    checked and used in place: ``{"path": source}``. ``"synthetic"`` builds the demo's
    word-piece tokenizer and a tiny ``MBartForConditionalGeneration`` from ``entry["settings"]``
    (``d_model``, ``encoder_layers``, ``decoder_layers``, ``attention_heads``, ``ffn_dim``,
    ``world_seed`` …), pre-trains it with span-masking denoising on every language, and saves
    it (safetensors + tokenizer) in ``out_dir``."""
    arch = entry.get("arch", "mbart")
    if arch != "mbart":
        raise ValueError(f"model {model_name!r}: arch {arch!r} is not supported by the translation "
                         "family (use arch: mbart)")
    settings = dict(entry.get("settings") or {})
    out_dir = Path(out_dir)
    if str(source) != "synthetic":
        return _check_local_mbart(model_name, Path(source), out_dir)
    from transformers import MBartConfig, MBartForConditionalGeneration

    from .synthetic import WORLD_LANGUAGES, build_tokenizer, build_world, pretrain_denoising

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    world = build_world(settings)
    codes = _lang_tokens(settings)
    tokenizer = build_tokenizer(world, [codes[c] for c in WORLD_LANGUAGES])
    heads = int(settings.get("attention_heads", 4))
    ffn = int(settings.get("ffn_dim", 128))
    config = MBartConfig(
        vocab_size=len(tokenizer), d_model=int(settings.get("d_model", 64)),
        encoder_layers=int(settings.get("encoder_layers", 2)),
        decoder_layers=int(settings.get("decoder_layers", 2)),
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=int(settings.get("max_position_embeddings", 64)),
        dropout=float(settings.get("dropout", 0.1)), attention_dropout=0.0, activation_dropout=0.0,
        scale_embedding=True, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(int(settings.get("world_seed", 0)))
    model = MBartForConditionalGeneration(config)
    ids = {c: tokenizer.convert_tokens_to_ids(codes[c]) for c in WORLD_LANGUAGES}
    summary = pretrain_denoising(model, world, tokenizer, ids, settings)
    model.save_pretrained(out_dir)  # safetensors (the only format transformers 5 writes)
    tokenizer.save_pretrained(out_dir)
    return {"path": str(out_dir), "arch": "mbart", "source": "synthetic", "model": model_name,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer), **summary,
            "seconds": round(time.perf_counter() - t0, 2)}


def _check_local_mbart(model_name: str, path: Path, out_dir: Path) -> dict[str, Any]:
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model {model_name!r}: {path}/config.json not found; pass a local "
                                "snapshot of facebook/mbart-large-cc25 (or another mBART checkpoint)")
    config = json.loads((path / "config.json").read_text())
    if config.get("model_type") != "mbart":
        raise ValueError(f"model {model_name!r}: {path}/config.json has model_type "
                         f"{config.get('model_type')!r}, expected 'mbart'")
    from transformers import MBartForConditionalGeneration

    from ..hf_checkpoint import resolve_weights

    # safetensors are used in place; a snapshot with only pytorch_model.bin (the Hub's main
    # revision of mbart-large-cc25) is converted once, tensors only (never unpickling objects)
    use, conversion = resolve_weights(model_name, path, out_dir, MBartForConditionalGeneration)
    return {"path": str(use), "arch": "mbart", "source": str(path), "model": model_name,
            "vocab_size": config.get("vocab_size"), **conversion}


