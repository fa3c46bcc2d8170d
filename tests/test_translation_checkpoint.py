"""mBART from a Hub snapshot that has only ``pytorch_model.bin`` (facebook/mbart-large-cc25 on
``main``): converted once to safetensors with a tensors-only load; a pickle carrying code is
refused without running it."""

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import translation as T  # noqa: E402
from smcbench.tasks.base import write_jsonl  # noqa: E402


def _bin_snapshot(root: Path) -> tuple[Path, dict]:
    """A cc25-like folder as the Hub ships it on main: config, tokenizer, pytorch_model.bin."""
    from transformers import MBartConfig, MBartForConditionalGeneration, MBartTokenizer

    tok = MBartTokenizer(src_lang="en_XX", tgt_lang="fr_XX")
    cfg = MBartConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                      decoder_ffn_dim=32, max_position_embeddings=32, scale_embedding=True)
    torch.manual_seed(0)
    model = MBartForConditionalGeneration(cfg)
    snap = root / "snapshot"
    snap.mkdir()
    cfg.save_pretrained(snap)
    tok.save_pretrained(snap)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, snap / "pytorch_model.bin")
    return snap, state


def test_bin_only_snapshot_is_converted_tensors_only(tmp_path):
    snap, state = _bin_snapshot(tmp_path)
    assert not list(snap.glob("*.safetensors"))
    out = tmp_path / "pre"
    info = T.make_pretrained("mbart_cc25", {"arch": "mbart"}, str(snap), out)
    assert info["path"] == str(out) and info["converted_from"] == ["pytorch_model.bin"]
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert (out / "config.json").is_file() and list(out.glob("tokenizer*"))
    (out / "pretrained.json").write_text(json.dumps(info))
    # the task loads the converted weights (safetensors only) and they equal the .bin's
    rows = [{"id": f"{s}-{t}-x-0", "src_lang": s, "tgt_lang": t, "source": "x", "target": "y"}
            for s, t in T.pivot_directions(T.LANGUAGES)]
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):
        write_jsonl(data / f"{split}.jsonl", rows)
    settings = {"languages": T.LANGUAGES, "num_beams": 1, "max_target_length": 6,
                "model": {"name": "mbart_cc25", "arch": "mbart", "source": str(snap)},
                "training": {"batch_size": 4}}
    model = T.TASK("opus100_10to10", settings, data, out, seed=0).build_model()
    got = model.state_dict()
    for name in ("model.shared.weight", "model.encoder.layers.0.self_attn.q_proj.weight",
                 "model.decoder.layers.0.fc2.weight"):
        assert torch.equal(got[name], state[name]), name
    # a second run reuses nothing stale: same result
    info2 = T.make_pretrained("mbart_cc25", {"arch": "mbart"}, str(snap), tmp_path / "pre2")
    assert info2["converted_from"] == ["pytorch_model.bin"]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bin_with_code_is_refused_and_never_run(tmp_path):
    snap, state = _bin_snapshot(tmp_path)
    marker = tmp_path / "PWNED"
    torch.save({"model.shared.weight": state["model.shared.weight"], "x": _Payload(marker)},
               snap / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin: not a tensors-only checkpoint"):
        T.make_pretrained("mbart_cc25", {"arch": "mbart"}, str(snap), tmp_path / "pre")
    assert not marker.exists()


def test_bin_missing_weights_are_named(tmp_path):
    snap, state = _bin_snapshot(tmp_path)
    del state["model.decoder.layers.0.fc2.weight"]
    torch.save(state, snap / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"lacks weights \['model\.decoder\.layers\.0\.fc2\.weight'\]"):
        T.make_pretrained("mbart_cc25", {"arch": "mbart"}, str(snap), tmp_path / "pre")
