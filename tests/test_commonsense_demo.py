"""The synthetic commonsense demo: generator determinism, prepare, make_pretrained, a dense fine-tune."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import commonsense as cs  # noqa: E402
from smcbench.tasks import synthetic_commonsense as synth  # noqa: E402
from smcbench.tasks.base import read_jsonl  # noqa: E402


def test_world_and_questions_are_deterministic():
    a, b = synth.make_world(7, 30), synth.make_world(7, 30)
    assert a == b and a != synth.make_world(8, 30)
    assert len(set(a.people)) == 30
    assert all(a.friend[p] != p for p in a.people)
    assert sorted(a.friend.values()) == sorted(a.people)  # a permutation: everyone is somebody's friend
    train_s, test_s = synth.subject_split(a)
    assert not set(train_s) & set(test_s) and len(train_s) + len(test_s) == 30
    q1 = synth.make_split(a, "hard", 50, train_s, 3, "t")
    assert q1 == synth.make_split(b, "hard", 50, train_s, 3, "t")
    assert synth.pretraining_corpus(a, 20, 1) == synth.pretraining_corpus(b, 20, 1)
    with pytest.raises(ValueError, match="variant 'medium'"):
        synth.make_question(a, __import__("random").Random(0), "medium", a.people[0])


def test_questions_are_answerable_from_the_passage():
    world = synth.make_world(3, 40)
    for variant in ("easy", "hard"):
        for row in synth.make_split(world, variant, 200, world.people, 0, variant):
            assert len(set(row["choices"])) == 4
            answer, kind, subject = row["choices"][row["label"]], row["kind"], row["subject"]
            passage = f" {row['passage']} "
            assert synth.FACT[kind].format(e=subject, v=answer) in row["passage"]
            assert row["question"].endswith(synth.QUESTION[kind].format(e=subject))
            typed = [c for c in row["choices"] if c in synth.ATTRIBUTES[kind]]
            mentioned = [c for c in row["choices"] if f" {c} " in passage]
            if variant == "easy":
                # answer = the only choice of the asked type that the passage mentions
                assert [c for c in typed if c in mentioned] == [answer]
                assert len(mentioned) == 3 and len(typed) == 2
            else:
                # two choices of the asked type are mentioned; the other one is negated
                both = [c for c in typed if c in mentioned]
                assert len(both) == 2 and answer in both
                wrong = next(c for c in both if c != answer)
                assert synth.FACT_NOT[kind].format(e=subject, v=wrong) in row["passage"]


def test_surface_heuristics_stay_at_half_or_below():
    world = synth.make_world(7, 60)
    for variant, trap in (("easy", "asked_type"), ("hard", "typed_in_passage")):
        rows = synth.make_split(world, variant, 600, world.people, 1, variant)
        mean = {k: 100 * sum(synth.heuristics(r)[k] for r in rows) / len(rows)
                for k in ("in_passage", "first", "last", "asked_type", "typed_in_passage")}
        assert abs(mean[trap] - 50.0) < 1e-9, mean
        assert max(v for k, v in mean.items() if k != "typed_in_passage" or variant == "hard") <= 50.0 + 1e-9
    # the values of a passage are drawn per question: the same subject gets different answers
    rows = synth.make_split(world, "easy", 300, world.people[:3], 2, "e")
    answers = {(r["subject"], r["kind"]): set() for r in rows}
    for r in rows:
        answers[(r["subject"], r["kind"])].add(r["choices"][r["label"]])
    assert max(len(v) for v in answers.values()) > 1


def test_prepare_synthetic_meta_and_determinism(tmp_path):
    settings = {"variant": "hard", "world_seed": 5, "n_people": 30, "n_train": 50, "n_test": 20,
                "validation_fraction": 0.2}
    meta = cs.prepare("demo_cs_hard", "synthetic", tmp_path / "a", settings)
    cs.prepare("demo_cs_hard", "synthetic", tmp_path / "b", settings)
    assert meta["counts"] == {"train": 40, "validation": 10, "test": 20}
    assert meta["world"] == {"seed": 5, "n_people": 30}
    for split in ("train", "validation", "test"):
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    test_subjects = {r["subject"] for r in read_jsonl(tmp_path / "a/test.jsonl")}
    assert not test_subjects & {r["subject"] for r in read_jsonl(tmp_path / "a/train.jsonl")}
    with pytest.raises(ValueError, match="settings.variant"):
        cs.prepare("demo_cs_x", "synthetic", tmp_path / "c", {"variant": None})


MODEL = {"name": "demo_roberta", "arch": "roberta_mc", "source": "synthetic",
         "settings": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "intermediate_size": 64, "hidden_dropout_prob": 0.0,
                      "attention_probs_dropout_prob": 0.0, "world_seed": 5, "n_people": 30,
                      "corpus_lines": 100, "pretrain_steps": 40, "pretrain_batch_size": 16,
                      "reading_batch_size": 4, "reading_questions": 100, "pretrain_lr": 5e-3}}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pre")
    info = cs.make_pretrained("demo_roberta", MODEL, "synthetic", out)
    (out / "pretrained.json").write_text(json.dumps(info))
    return out, info


def test_make_pretrained_saves_safetensors_and_tokenizer(pretrained):
    out, info = pretrained
    assert info["path"] == str(out) and info["world"] == {"seed": 5, "n_people": 30}
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert (out / "tokenizer.json").is_file()
    assert info["mlm_loss_last"] < info["mlm_loss_first"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.mask_token_id) == (0, 1, 2, 4)
    # every word of the world is in the vocabulary (no <unk> in the demo data)
    world = synth.make_world(5, 30)
    assert tok.unk_token_id not in tok(" ".join(world.vocabulary()), add_special_tokens=False)["input_ids"]


def test_hub_or_local_model_is_used_in_place(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weights"):
        cs.make_pretrained("roberta_large", {"arch": "roberta_mc"}, str(tmp_path), tmp_path / "o")
    (tmp_path / "model.safetensors").write_bytes(b"")
    info = cs.make_pretrained("roberta_large", {"arch": "roberta_mc"}, str(tmp_path), tmp_path / "o")
    assert info["path"] == str(tmp_path)
    with pytest.raises(ValueError, match="no config.json"):
        cs.make_pretrained("roberta_large", {"arch": "roberta_mc"}, str(tmp_path / "o"), tmp_path / "o")


def test_world_mismatch_is_reported(tmp_path, pretrained):
    out, _ = pretrained
    cs.prepare("demo_cs_easy", "synthetic", tmp_path, {"variant": "easy", "world_seed": 6, "n_people": 30,
                                                       "n_train": 10, "n_test": 5})
    (tmp_path / "meta.json").write_text(json.dumps({"world": {"seed": 6, "n_people": 30}}))
    with pytest.raises(ValueError, match="world_seed"):
        cs.TASK("demo_cs_easy", {"model": MODEL}, tmp_path, out, 0)


def type_matching_rows(world, n, seed):
    """Questions whose answer is the only colour among the choices (a choice-level cue a few
    optimizer steps can learn, so the test checks the training plumbing, not the demo's difficulty)."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p = rng.choice(world.people)
        answer = world.attributes["colour"][p]
        choices = [answer, world.attributes["city"][p], world.attributes["job"][p],
                   rng.choice(synth.CITIES + synth.JOBS)]
        while len(set(choices)) < 4:
            choices[3] = rng.choice(synth.CITIES + synth.JOBS)
        rng.shuffle(choices)
        rows.append({"id": f"r{seed}-{i}", "question": synth.QUESTION["colour"].format(e=p),
                     "choices": choices, "label": choices.index(answer)})
    return rows


def test_dense_finetune_beats_chance(tmp_path, pretrained):
    """Two short epochs of the real Task loop (build_model, param_groups, train_batches, loss,
    evaluate): clearly above the 25% chance level."""
    from smcbench.tasks.base import write_jsonl

    torch.set_num_threads(1)
    out, _ = pretrained
    world = synth.make_world(5, 30)
    for split, n, seed in (("train", 160, 1), ("validation", 40, 2), ("test", 80, 3)):
        write_jsonl(tmp_path / f"{split}.jsonl", type_matching_rows(world, n, seed))
    settings = {"max_length": 48, "head_lr_multiplier": 10.0}
    task = cs.TASK("demo_cs_easy", {**settings, "model": MODEL, "training": {"batch_size": 16}},
                   tmp_path, out, seed=0)
    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.AdamW(task.param_groups(model, 3e-3, 0.01))
    assert opt.param_groups[0]["lr"] != opt.param_groups[-1]["lr"]  # the head trains faster
    before = task.evaluate(model, "test")["accuracy"]
    model.train()
    for epoch in range(2):
        for batch in task.train_batches(epoch):
            loss = task.loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    acc = task.evaluate(model, "test")
    assert task.baseline("test")["accuracy"] <= 35.0
    assert acc["n"] == 80
    assert acc["accuracy"] >= 60.0, (before, acc)
    assert task.signature().startswith(
        "accuracy=100*correct/n|selection:validation|input:fairseq-mc|arch:roberta_mc|transformers:")
