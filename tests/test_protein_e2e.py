"""A tiny end-to-end dense fine-tune on the synthetic protein demo: MLM pre-training of a tiny
ESM, then the pipeline's own training loop; the model must beat the strongest simple heuristic
(where one marker residue sits) clearly: the label is an order relation between residues."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SMCBENCH_NO_PROGRESS", "1")

from smcbench.tasks import protein  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "workflow" / "configs" / "demo.yaml"


def _demo_entries():
    """The demo's own protein settings, so this test checks what `make demo` runs."""
    import yaml

    cfg = yaml.safe_load(DEMO.read_text())
    ds = cfg["datasets"]["demo_protein2"]
    return ds["settings"], ds["training"], cfg["models"]["demo_esm"]["settings"]


DATA, TRAINING, MODEL = _demo_entries()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("protein_demo")
    meta = protein.prepare("demo_protein2", "synthetic", root / "data", DATA)
    (root / "data" / "meta.json").write_text(json.dumps(meta))
    entry = {"family": "protein", "arch": "esm", "source": "synthetic", "settings": MODEL}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        info = protein.make_pretrained("demo_esm", entry, "synthetic", root / "pre")
    finally:
        torch.set_num_threads(threads)
    assert Path(info["path"]) == (root / "pre").resolve()
    (root / "pre" / "pretrained.json").write_text(json.dumps({**info, "path": "."}))  # as the CLI records it
    return root, entry, info


def test_pretraining_lowers_mlm_loss(demo):
    _, _, info = demo
    assert (demo[0] / "pre" / "model.safetensors").is_file()
    assert info["mlm_loss_last"] < info["mlm_loss_first"] - 0.3


def _dense_run(root: Path, entry: dict, seed: int) -> dict:
    train = pytest.importorskip("smcbench.train")
    params = {"dataset": "demo_protein2", "family": "protein", "method": "dense", "method_settings": {},
              "scope": "attn_ffn", "target_sparsity": 0.0, "level": 0, "device": "cpu",
              "task": {**DATA, "model": {"name": "demo_esm", "arch": "esm", "source": "synthetic",
                                         "settings": entry["settings"]}, "training": TRAINING}}
    spec = train.RunSpec(params=params, data_dir=root / "data", pretrained_dir=root / "pre",
                         out_dir=root / f"run{seed}", seed=seed, log=lambda s: None)
    return train.run_training(spec)


def test_dense_finetune_beats_majority(demo):
    root, entry, _ = demo
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = _dense_run(root, entry, seed=0)
    finally:
        torch.set_num_threads(threads)
    test = next(r for r in metrics["rows"] if r["split"] == "test" and r["metric"] == "accuracy")
    # the baseline is the strongest single-residue position rule, not chance (74 % here)
    from smcbench.tasks.base import read_jsonl
    from smcbench.tasks.protein.synthetic import position_heuristic

    rows = {s: read_jsonl(root / "data" / f"{s}.jsonl") for s in ("train", "test")}
    assert test["baseline"] == pytest.approx(position_heuristic(rows["train"], rows["test"]))
    assert test["baseline"] > 60.0
    assert test["value"] >= test["baseline"] + 10.0, test
    assert metrics["selection"]["rule"].startswith("best validation")
