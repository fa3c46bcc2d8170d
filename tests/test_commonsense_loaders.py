"""Loaders of the commonsense family on real records (skipped when the samples are absent)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import commonsense as cs  # noqa: E402
from smcbench.tasks.base import read_jsonl  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
CSQA, WINO, RACE = SAMPLES / "csqa", SAMPLES / "winogrande", SAMPLES / "race"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real samples not available at {path}")
    return path


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def check_schema(out: Path, n_choices: int) -> dict[str, list[dict]]:
    splits = {p.stem: read_jsonl(p) for p in out.glob("*.jsonl")}
    for name, rows in splits.items():
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), name
        for r in rows:
            assert isinstance(r["question"], str) and r["question"]
            assert len(r["choices"]) == n_choices and all(isinstance(c, str) for c in r["choices"])
            assert isinstance(r["label"], int) and 0 <= r["label"] < n_choices
    return splits


# --- CSQA --------------------------------------------------------------------------------------
def test_csqa_original_layout_drops_hidden_test_labels(tmp_path):
    src = need(CSQA / "hf_dummy_original_format")
    meta = cs.prepare("csqa", str(src), tmp_path, {"validation_fraction": 0.2})
    splits = check_schema(tmp_path, 5)
    assert meta["layout"] == "original"
    assert meta["counts"]["test"] == 2  # the released dev set becomes test.jsonl
    assert meta["counts"]["train"] + meta["counts"]["validation"] == 5
    assert meta["counts"]["validation"] == 1
    assert meta["dropped"] == {"hidden_label": 2}
    assert meta["dropped_by_file"] == {"test_rand_split_no_answers.jsonl": {"hidden_label": 2}}
    assert set(meta["files_sha256"]) == {"train_rand_split.jsonl", "dev_rand_split.jsonl",
                                         "test_rand_split_no_answers.jsonl"}
    # label = position of answerKey among the choice letters
    raw = {r["id"]: r for r in lines(src / "dev_rand_split.jsonl")}
    for row in splits["test"]:
        rec = raw[row["id"]]
        assert row["question"] == rec["question"]["stem"]
        assert row["choices"][row["label"]] == next(
            c["text"] for c in rec["question"]["choices"] if c["label"] == rec["answerKey"])


def test_csqa_real_records_and_hf_schema_in_original_names(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(need(CSQA / "original_format/commonsenseqa_200_samples.head150.jsonl"),
                src / "train_rand_split.jsonl")
    # a file with the original name but the Hugging Face schema (seen in the wild)
    shutil.copy(need(CSQA / "hf_format/dev_rand_split.hf_export.head40.jsonl"), src / "dev_rand_split.jsonl")
    # the 200-sample file shares 2 questions with the dev export: refused by default, naming both files
    with pytest.raises(ValueError, match=r"2 train question\(s\) also occur in the test split.*"
                                         r"train_rand_split\.jsonl vs .*dev_rand_split\.jsonl"):
        cs.prepare("csqa", str(src), tmp_path / "bad", {"validation_fraction": 0.1, "split_seed": 3})
    settings = {"validation_fraction": 0.1, "split_seed": 3, "on_overlap": "drop_from_train"}
    meta = cs.prepare("csqa", str(src), tmp_path / "out", settings)
    splits = check_schema(tmp_path / "out", 5)
    assert sum(meta["overlap_dropped"].values()) == 2
    assert meta["counts"]["train"] + meta["counts"]["validation"] == 148 and meta["counts"]["test"] == 40
    assert not set(r["id"] for r in splits["train"]) & set(r["id"] for r in splits["validation"])
    first = lines(src / "dev_rand_split.jsonl")[0]
    row = splits["test"][0]
    assert row["question"] == first["question"]
    assert row["choices"] == first["choices"]["text"]
    assert row["label"] == first["choices"]["label"].index(first["answerKey"])
    # the carve is seeded: same seed -> same validation ids
    cs.prepare("csqa", str(src), tmp_path / "again", settings)
    assert read_jsonl(tmp_path / "again/validation.jsonl") == splits["validation"]


def test_csqa_hub_snapshot_parquet(tmp_path):
    recs = lines(need(CSQA / "hf_format/dev_rand_split.hf_export.head40.jsonl"))
    snap = tmp_path / "snap"
    write_parquet(snap / "data/train-00000-of-00001.parquet", recs[:30])
    write_parquet(snap / "data/validation-00000-of-00001.parquet", recs[30:])
    write_parquet(snap / "data/test-00000-of-00001.parquet",
                  [dict(r, answerKey="") for r in recs[:3]])  # the Hub hides test answers as ""
    meta = cs.prepare("csqa", str(snap), tmp_path / "out", {"validation_fraction": 0.2})
    check_schema(tmp_path / "out", 5)
    assert meta["layout"] == "hf-parquet"
    assert meta["counts"] == {"train": 24, "validation": 6, "test": 10}
    assert meta["dropped"] == {"hidden_label": 3}
    assert len(meta["files_sha256"]) == 3


def test_csqa_malformed_line_names_file_and_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = lines(need(CSQA / "hf_dummy_original_format/train_rand_split.jsonl"))
    text = "\n".join(json.dumps(r) for r in good[:2]) + "\n{not json\n"
    (src / "train_rand_split.jsonl").write_text(text)
    shutil.copy(CSQA / "hf_dummy_original_format/dev_rand_split.jsonl", src)
    with pytest.raises(ValueError, match=r"train_rand_split\.jsonl:3: malformed JSON"):
        cs.prepare("csqa", str(src), tmp_path / "out", {})
    bad = dict(good[0])
    del bad["id"]
    (src / "train_rand_split.jsonl").write_text(json.dumps(good[1]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"train_rand_split\.jsonl:2: missing key 'id'"):
        cs.prepare("csqa", str(src), tmp_path / "out", {})
    bad = dict(good[0], answerKey="Z")
    (src / "train_rand_split.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"train_rand_split\.jsonl:1: answerKey 'Z'"):
        cs.prepare("csqa", str(src), tmp_path / "out", {})


def test_missing_source_files_are_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="train_rand_split.jsonl"):
        cs.prepare("csqa", str(tmp_path / "empty"), tmp_path / "out", {})
    with pytest.raises(ValueError, match="must be a folder"):
        cs.prepare("csqa", str(tmp_path / "nope"), tmp_path / "out", {})
    with pytest.raises(ValueError, match="no commonsense loader"):
        cs.prepare("boolq", str(tmp_path / "empty"), tmp_path / "out", {})


# --- WinoGrande ----------------------------------------------------------------------------------
def test_winogrande_original_layout(tmp_path):
    src = need(WINO)
    meta = cs.prepare("winogrande", str(src), tmp_path,
                      {"config": "winogrande_xs", "validation_fraction": 0.25})
    splits = check_schema(tmp_path, 2)
    assert meta["dropped"] == {"hidden_label": 2}
    assert meta["counts"]["test"] == 2
    # twins (qID ...-1 / ...-2) stay on the same side of the carve
    assert meta["counts"]["validation"] == 2 and meta["counts"]["train"] == 2
    stems = {r["id"].rsplit("-", 1)[0] for r in splits["validation"]}
    assert len(stems) == 1
    raw = {r["qID"]: r for r in lines(src / "winogrande_1.1/dev.jsonl")}
    for row in splits["test"]:
        rec = raw[row["id"]]
        assert row["label"] == int(rec["answer"]) - 1  # "1"/"2" -> 0/1
        assert row["choices"] == [rec["option1"], rec["option2"]]
        assert row["sentence"] == rec["sentence"] and "_" in row["sentence"]


def test_winogrande_hub_snapshot_and_bad_config(tmp_path):
    wdir = need(WINO / "winogrande_1.1")
    snap = tmp_path / "snap/winogrande_xs"
    strip = lambda r: {k: r.get("answer", "") if k == "answer" else r[k]  # noqa: E731
                       for k in ("sentence", "option1", "option2", "answer")}
    write_parquet(snap / "train-00000-of-00001.parquet", [strip(r) for r in lines(wdir / "train_xs.jsonl")])
    write_parquet(snap / "validation-00000-of-00001.parquet", [strip(r) for r in lines(wdir / "dev.jsonl")])
    write_parquet(snap / "test-00000-of-00001.parquet", [strip(r) for r in lines(wdir / "test.jsonl")])
    meta = cs.prepare("winogrande", str(tmp_path / "snap"), tmp_path / "out",
                      {"config": "winogrande_xs", "validation_fraction": 0.25})
    check_schema(tmp_path / "out", 2)
    assert meta["layout"] == "hf-parquet"
    # no qID in the Hub layout: twins are still grouped (by their option pair)
    assert meta["counts"] == {"train": 2, "validation": 2, "test": 2}
    assert meta["dropped"] == {"hidden_label": 2}
    val = read_jsonl(tmp_path / "out/validation.jsonl")
    assert len({(r["option1"], r["option2"]) for r in val}) == 1
    with pytest.raises(ValueError, match="winogrande_xl/train"):
        cs.prepare("winogrande", str(tmp_path / "snap"), tmp_path / "o2", {"config": "winogrande_xl"})
    with pytest.raises(ValueError, match="winogrande_huge"):
        cs.prepare("winogrande", str(tmp_path / "snap"), tmp_path / "o3", {"config": "winogrande_huge"})


# --- RACE ----------------------------------------------------------------------------------------
def race_questions(folder: Path) -> int:
    return sum(len(json.loads(p.read_text())["questions"]) for p in folder.glob("*.txt"))


def test_race_original_layout(tmp_path):
    root = need(RACE / "RACE")
    meta = cs.prepare("race", str(RACE), tmp_path, {"validation_fraction": 0.2,
                                                     "validation_source": "train"})
    splits = check_schema(tmp_path, 4)
    n_train = race_questions(root / "train/high") + race_questions(root / "train/middle")
    assert meta["counts"]["train"] + meta["counts"]["validation"] == n_train
    assert meta["counts"]["test_high"] == race_questions(root / "test/high")
    assert meta["counts"]["test_middle"] == race_questions(root / "test/middle")
    assert meta["counts"]["test"] == meta["counts"]["test_high"] + meta["counts"]["test_middle"]
    assert {r["level"] for r in splits["test_high"]} == {"high"}
    # validation holds whole passages only
    val_passages = {r["id"].rsplit("/", 1)[0] for r in splits["validation"]}
    assert not val_passages & {r["id"].rsplit("/", 1)[0] for r in splits["train"]}
    obj = json.loads((root / "test/middle/1.txt").read_text())
    row = next(r for r in splits["test_middle"] if r["id"] == "test/middle/1/0")
    assert row["article"] == obj["article"] and row["question"] == obj["questions"][0]
    assert row["label"] == ord(obj["answers"][0]) - ord("A")
    assert meta["validation_from"] == "train"
    # by default RACE validates on its released dev set (fairseq's recipe) and trains on all of train
    meta2 = cs.prepare("race", str(RACE), tmp_path / "dev", {})
    assert meta2["validation_from"] == "dev"
    assert meta2["counts"]["validation"] == race_questions(root / "dev/high") + race_questions(root / "dev/middle")
    assert meta2["counts"]["train"] == n_train
    assert any(k.startswith("RACE/dev/") for k in meta2["files_sha256"])


def test_race_hub_snapshot_makes_ids_unique(tmp_path):
    root = need(RACE / "RACE")
    snap = tmp_path / "snap"
    for split, hf in (("train", "train"), ("dev", "validation"), ("test", "test")):
        for level in ("high", "middle"):
            rows = []
            for p in sorted((root / split / level).glob("*.txt")):
                obj = json.loads(p.read_text())
                for q, o, a in zip(obj["questions"], obj["options"], obj["answers"]):
                    rows.append({"example_id": obj["id"], "article": obj["article"], "answer": a,
                                 "question": q, "options": o})
            write_parquet(snap / level / f"{hf}-00000-of-00001.parquet", rows)
    meta = cs.prepare("race", str(snap), tmp_path / "out", {"validation_fraction": 0.0})
    splits = check_schema(tmp_path / "out", 4)
    orig = cs.prepare("race", str(RACE), tmp_path / "orig", {"validation_fraction": 0.0})
    assert meta["counts"] == orig["counts"]
    by_id = {r["id"]: r for r in read_jsonl(tmp_path / "orig/test_high.jsonl")}
    for r in splits["test_high"]:  # same ids and content from both layouts
        assert by_id[r["id"]] == r


def test_race_malformed_passage_names_file(tmp_path):
    root = need(RACE / "RACE")
    copy = tmp_path / "RACE"
    shutil.copytree(root, copy)
    (copy / "train/high/123.txt").write_text('{"article": "x",\n "questions": [}')
    (copy / "train/high/._123.txt").write_text("\x00\x01 mac resource fork")
    with pytest.raises(ValueError, match=r"train/high/123\.txt:2: malformed JSON"):
        cs.prepare("race", str(tmp_path), tmp_path / "out", {})
    obj = json.loads((root / "train/high/123.txt").read_text())
    obj["answers"] = ["E"] * len(obj["answers"])
    (copy / "train/high/123.txt").write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=r"123\.txt: question 0 has answer 'E'"):
        cs.prepare("race", str(tmp_path), tmp_path / "out", {})
