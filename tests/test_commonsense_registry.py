"""The family layout (shared by commonsense and translation): declarations importable without
torch, registries derived from them, no import loops, old import paths still working, and the
shared demo pre-training helper."""

import subprocess
import sys

import torch


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_declarations_and_registries_without_torch():
    out = _run("import sys, smcbench.tasks as T; import smcbench.tasks.commonsense, smcbench.tasks.translation;"
               "print('torch' in sys.modules, sorted(T.ARCHS['commonsense']), T.ARCHS['translation'],"
               " T.KNOWN_DATASETS['winogrande'], T.KNOWN_DATASETS['demo_mt_2to2'])")
    assert out.split() == ["False", "['roberta_mc',", "'roberta_mlm']", "('mbart',)", "commonsense", "translation"]


def test_registries_follow_each_family_declaration():
    import smcbench.tasks as T
    from smcbench.tasks import commonsense, translation

    for family, pkg in (("commonsense", commonsense), ("translation", translation)):
        assert T.FAMILIES[family] == pkg.__name__
        assert T.ARCHS[family] == tuple(pkg.ARCHS)
        assert {d for d, f in T.KNOWN_DATASETS.items() if f == family} == set(pkg.DATASETS)


def test_each_submodule_imports_alone_and_old_paths_work():
    # each module first in a clean smcbench import state: an import loop fails for at least one
    mods = ("commonsense.data", "commonsense.model", "commonsense.task", "commonsense.synthetic",
            "translation.directions", "translation.opus", "translation.data", "translation.model",
            "translation.task", "translation.synthetic", "pretrain", "synthetic_commonsense",
            "translation_opus", "translation_synthetic")
    out = _run("import importlib, sys\n"
               f"for mod in {mods!r}:\n"
               "    for k in [k for k in sys.modules if k.startswith('smcbench')]:\n"
               "        del sys.modules[k]\n"
               "    importlib.import_module('smcbench.tasks.' + mod)\n"
               "print('ok')")
    assert out.strip() == "ok"
    from smcbench.tasks import commonsense as cs
    from smcbench.tasks import translation as T
    from smcbench.tasks.translation_opus import read_lines

    assert cs.TASK.__name__ == "CommonsenseTask" and T.TASK.__name__ == "TranslationTask"
    assert read_lines is T.opus.read_lines
    from smcbench.tasks.base import iter_jsonl, write_json_atomic  # re-exported from smcbench.io
    from smcbench import io

    assert iter_jsonl is io.iter_jsonl and write_json_atomic is io.write_json_atomic


def test_shared_pretrain_helper_masks_and_learns():
    from smcbench.tasks.pretrain import PretrainSettings, mlm_mask, pad_with_mask, pretrain

    ids, attn = pad_with_mask([[0, 7, 8, 9, 2], [0, 6, 2]], 1)
    assert ids.tolist()[1] == [0, 6, 2, 1, 1] and attn.tolist()[1] == [1, 1, 1, 0, 0]
    g = torch.Generator().manual_seed(0)
    big = torch.randint(5, 50, (64, 32))
    inputs, labels = mlm_mask(big, torch.ones_like(big), 50, g, 0.5)
    picked = labels != -100
    assert 0.4 < picked.float().mean() < 0.6 and (labels[picked] == big[picked]).all()
    assert ((inputs == 4) & picked).sum() > 0.7 * picked.sum()  # ~80 % of targets -> <mask>
    special = torch.tensor([[0, 1, 2, 3, 4]])
    assert (mlm_mask(special, torch.ones_like(special), 50, g, 1.0)[1] == -100).all()
    # the loop: a linear model learns a fixed target; global RNG untouched
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    w = torch.nn.Parameter(torch.zeros(3))
    target = torch.tensor([1.0, -2.0, 0.5])
    summary = pretrain([w], lambda step, g: ((w - target) ** 2).sum(), PretrainSettings(steps=300, lr=0.05))
    assert summary["loss_last"] < 0.01 * summary["loss_first"]
    assert torch.equal(torch.rand(1), before)
