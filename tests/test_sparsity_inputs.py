"""Masks and weights are checked by name, shape and dtype before use; every bad file is a clear
error naming the file, the tensor, what was expected and what was found. Masks are bit-packed."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from smcbench.sparsity.mask import PACKED_FORMAT, Mask, MaskError
from smcbench.train import TrainingError, load_mask_for, load_weights, save_weights
from test_sparsity_fixtures import mlp

SCOPE = ["0.weight", "3.weight", "5.weight"]


def _mask(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return Mask({n: torch.rand(params[n].shape, generator=g) > 0.4 for n in SCOPE})


def test_bit_packed_round_trip_is_exact_and_eight_times_smaller(tmp_path):
    model = torch.nn.Linear(1000, 997)  # sizes not multiples of 8
    m = Mask({"weight": torch.rand(997, 1000, generator=torch.Generator().manual_seed(1)) > 0.5})
    m.save(tmp_path / "m.safetensors", {"method": "x"})
    back = Mask.load(tmp_path / "m.safetensors", expect={"weight": model.weight})
    assert torch.equal(back["weight"], m["weight"]) and back["weight"].dtype == torch.bool
    assert (tmp_path / "m.safetensors").stat().st_size < 997 * 1000 / 8 + 2000


def test_old_bool_format_still_loads(tmp_path):
    model = mlp()
    m = _mask(model)
    save_file({n: t for n, t in m.items()}, str(tmp_path / "old.safetensors"),
              metadata={"format": "smcbench-mask", "names": json.dumps(SCOPE)})
    back = load_mask_for(tmp_path / "old.safetensors", model, SCOPE, torch.device("cpu"))
    assert list(back) == SCOPE and all(torch.equal(back[n], m[n]) for n in SCOPE)


def _bad_mask(tmp_path, model, kind):
    path = tmp_path / f"{kind}.safetensors"
    params = dict(model.named_parameters())
    m = _mask(model)
    tensors = {n: t for n, t in m.items()}
    if kind == "transposed":  # same size, wrong shape
        tensors["3.weight"] = tensors["3.weight"].t().contiguous()
        tensors["0.weight"] = tensors["0.weight"].reshape(8, 32).contiguous()
    elif kind == "float":
        tensors["3.weight"] = tensors["3.weight"].float()
    elif kind == "uint8":
        tensors["3.weight"] = tensors["3.weight"].to(torch.uint8)
    elif kind == "missing":
        del tensors["5.weight"]
    elif kind == "absent_tensor":
        tensors["9.weight"] = torch.ones(2, 2, dtype=torch.bool)
    elif kind == "empty":
        path.write_bytes(b"")
        return path, "is empty"
    elif kind == "garbage":
        path.write_bytes(b"this is not a safetensors file at all" * 10)
        return path, "not a readable safetensors file"
    elif kind == "truncated":
        Mask(tensors).save(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "not a readable safetensors file"
    elif kind == "nonexistent":
        return tmp_path / "nope" / "mask.safetensors", "does not exist"
    save_file(tensors, str(path))
    want = {"transposed": "has shape (8, 32), expected (32, 8)", "float": "'3.weight' has dtype torch.float32, expected bool",
            "uint8": "'3.weight' has dtype torch.uint8, expected bool", "missing": "lacks scope tensor(s) ['5.weight']",
            "absent_tensor": "not in the pruning scope: ['9.weight']"}[kind]
    assert params  # the model is used for shapes above
    return path, want


@pytest.mark.parametrize("kind", ["transposed", "float", "uint8", "missing", "absent_tensor", "empty", "garbage",
                                  "truncated", "nonexistent"])
def test_bad_masks_are_refused_with_a_clear_message(tmp_path, kind):
    model = mlp()
    path, want = _bad_mask(tmp_path, model, kind)
    with pytest.raises(TrainingError) as info:
        load_mask_for(path, model, SCOPE, torch.device("cpu"))
    msg = str(info.value)
    assert want in msg and "--prev-mask" in msg and str(path) in msg, msg


def test_transposed_square_mask_of_a_packed_file_is_refused(tmp_path):
    model = torch.nn.Linear(130, 64)
    wrong = Mask({"weight": torch.ones(130, 64, dtype=torch.bool)})
    wrong.save(tmp_path / "m.safetensors")
    with pytest.raises(MaskError, match=r"'weight' has shape \(130, 64\), expected \(64, 130\)"):
        Mask.load(tmp_path / "m.safetensors", expect={"weight": model.weight})


def test_packed_mask_with_wrong_byte_count_is_refused(tmp_path):
    save_file({"w": torch.zeros(3, dtype=torch.uint8)}, str(tmp_path / "m.safetensors"),
              metadata={"format": PACKED_FORMAT, "names": '["w"]', "shapes": '{"w": [8, 8]}'})
    with pytest.raises(MaskError, match=r"'w' should be 8 packed bytes"):
        Mask.load(tmp_path / "m.safetensors")


@pytest.mark.parametrize("kind", ["missing_key", "extra_key", "shape", "dtype", "empty", "garbage", "nonexistent"])
def test_bad_weights_are_refused_before_loading(tmp_path, kind):
    model = mlp()
    path = tmp_path / "w.safetensors"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if kind == "missing_key":
        del state["3.weight"]
        want = "lacks 1 tensor(s) of the model, e.g. ['3.weight']"
    elif kind == "extra_key":
        state["head.weight"] = torch.zeros(2)
        want = "has 1 tensor(s) the model does not, e.g. ['head.weight']"
    elif kind == "shape":
        state["3.weight"] = torch.zeros(16, 64)
        want = "'3.weight' has shape (16, 64), the model expects (32, 32)"
    elif kind == "dtype":
        state["3.weight"] = state["3.weight"].half()
        want = "'3.weight' has dtype F16, the model expects F32"
    if kind in ("empty", "garbage"):
        path.write_bytes(b"" if kind == "empty" else b"\x00\x01garbage" * 50)
        want = "is empty" if kind == "empty" else "not a readable safetensors file"
    elif kind == "nonexistent":
        path = tmp_path / "none.safetensors"
        want = "does not exist"
    else:
        save_file(state, str(path))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingError) as info:
        load_weights(model, path, "--start-weights")
    assert want in str(info.value) and str(path) in str(info.value), str(info.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing copied


def test_tied_weights_round_trip(tmp_path):
    from test_sparsity_fixtures import tiny_mbart

    model = tiny_mbart(0)
    save_weights(model, tmp_path / "w.safetensors")
    other = tiny_mbart(1)
    load_weights(other, tmp_path / "w.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
