"""Hugging Face model folders as the Hub publishes them, loaded without unpickling code.

A snapshot may hold ``model.safetensors`` (used in place) or only ``pytorch_model.bin``
(``facebook/mbart-large-cc25`` on ``main``; possibly sharded with
``pytorch_model.bin.index.json``). A ``.bin`` file is a pickle: it is read once with
``torch.load(weights_only=True)``, which accepts tensors and plain containers only and refuses any
other object (no arbitrary code runs), then written as safetensors into the ``pretrained`` step's
own folder, next to copies of the config and tokenizer files. Training always reads safetensors.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

WEIGHT_SUFFIXES = (".bin", ".safetensors", ".h5", ".msgpack", ".ot", ".pt", ".pth", ".ckpt")


def bin_files(path: Path) -> list[Path]:
    """The ``pytorch_model*.bin`` files of a folder (the shards listed by the index, if any)."""
    index = path / "pytorch_model.bin.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as e:
            raise ValueError(f"{index}: not a weight index ({e})") from None
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{index} lists {missing} but they are not in {path}")
        return [path / n for n in names]
    single = path / "pytorch_model.bin"
    return [single] if single.is_file() else []


def load_bin_tensors(files: list[Path]) -> dict:
    """The state dict of ``.bin`` files, tensors only; anything else is a ValueError naming the file."""
    import torch

    state: dict = {}
    for f in files:
        try:
            part = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError) as e:
            raise ValueError(f"{f}: not a tensors-only checkpoint; refusing to unpickle it "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        if not isinstance(part, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in part.items()):
            raise ValueError(f"{f}: expected a mapping of tensor names to tensors")
        state.update(part)
    return state


def to_safetensors(model_name: str, src: Path, out_dir: Path, model_cls) -> dict:
    """Convert ``src``'s ``.bin`` weights into ``out_dir`` (safetensors, via ``model_cls``'s own
    ``save_pretrained`` so tied tensors are stored once); copy the non-weight files. Returns
    ``{"converted_from": [...], "missing_tied": [...]}``. Missing weights that are not tied to a
    loaded one are a ValueError naming them."""
    from transformers import AutoConfig

    files = bin_files(src)
    state = load_bin_tensors(files)
    config = AutoConfig.from_pretrained(str(src))
    model = model_cls(config)
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers())
    missing, unexpected = model.load_state_dict(state, strict=False)
    loaded = {id(params[k]) for k in state if k in params}
    untied = [k for k in missing if k in params and id(params[k]) not in loaded]
    untied += [k for k in missing if k not in params and k not in buffers]
    if untied:
        raise ValueError(f"model {model_name!r}: {', '.join(f.name for f in files)} in {src} lacks "
                         f"weights {sorted(untied)[:10]} (of {len(untied)}) that "
                         f"{model_cls.__name__} needs")
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and f.name != "pytorch_model.bin.index.json":
            shutil.copyfile(f, out_dir / f.name)
    model.save_pretrained(out_dir, safe_serialization=True)
    return {"converted_from": [f.name for f in files], "missing_tied": sorted(missing),
            "unexpected": sorted(unexpected)}


def resolve_weights(model_name: str, src: Path, out_dir: Path, model_cls) -> tuple[Path, dict]:
    """The folder to load ``model_name`` from: ``src`` when it has safetensors, else ``out_dir``
    after a one-time tensors-only conversion of its ``.bin`` weights."""
    if sorted(src.glob("*.safetensors")):
        return src, {}
    if bin_files(src):
        return out_dir, to_safetensors(model_name, src, out_dir, model_cls)
    raise FileNotFoundError(
        f"model {model_name!r}: no weights in {src} (found {sorted(p.name for p in src.iterdir())}); "
        "expected model.safetensors or pytorch_model.bin (Hub snapshot layout)")
