"""Commonsense sources as their publishers ship them, through the real download step: the RACE
tarball (RACE/{train,dev,test}/{high,middle}/*.txt) served over a local HTTP server, and the
WinoGrande Hub parquet layout (no qID) keeping twins on one side of every carve.
Real records are read from the shared samples; the tests skip when they are absent."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from smcbench import download
from smcbench.tasks import commonsense as cs
from smcbench.tasks.base import read_jsonl

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
RACE, WINO = SAMPLES / "race", SAMPLES / "winogrande"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real samples not available at {path}")
    return path




def test_race_tarball_over_http_download_then_prepare(tmp_path, http_root):
    root, url = http_root
    with tarfile.open(root / "RACE.tar.gz", "w:gz") as t:
        t.add(need(RACE / "RACE"), arcname="RACE")
    rec = download.run(f"{url}/RACE.tar.gz", tmp_path / "src/source.json", tmp_path / "cache")
    local = download.local_source(tmp_path / "src/source.json")
    assert Path(local).is_file() and rec["kind"] == "url"
    meta = cs.prepare("race", local, tmp_path / "out", {})
    assert meta["validation_from"] == "dev"  # fairseq's recipe: the released dev set
    folder = RACE / "RACE"
    n = lambda d: sum(len(json.loads(p.read_text())["questions"]) for p in d.glob("*.txt"))  # noqa: E731
    assert meta["counts"]["validation"] == n(folder / "dev/high") + n(folder / "dev/middle")
    assert meta["counts"]["train"] == n(folder / "train/high") + n(folder / "train/middle")
    assert meta["counts"]["test_high"] == n(folder / "test/high")
    # same rows as from the extracted folder
    again = cs.prepare("race", str(RACE), tmp_path / "folder", {})
    assert again["counts"] == meta["counts"]
    assert read_jsonl(tmp_path / "out/test.jsonl") == read_jsonl(tmp_path / "folder/test.jsonl")


def test_truncated_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "RACE.tar.gz"
    bad.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(ValueError, match=r"RACE\.tar\.gz: not a readable archive"):
        cs.prepare("race", str(bad), tmp_path / "out", {})


def _hub_winogrande(snap: Path, rows_by_split: dict[str, list[dict]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split, rows in rows_by_split.items():
        path = snap / "winogrande_xs" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = [{k: r.get(k, "") for k in ("sentence", "option1", "option2", "answer")} for r in rows]
        pq.write_table(pa.Table.from_pylist(keep), path)


@pytest.mark.parametrize("seed", range(6))
def test_winogrande_twins_never_split_in_the_hub_layout(tmp_path, seed):
    wdir = need(WINO / "winogrande_1.1")
    lines = lambda p: [json.loads(x) for x in p.read_text().splitlines() if x.strip()]  # noqa: E731
    train = lines(wdir / "train_xs.jsonl") + lines(wdir / "dev.jsonl")  # 3 real twin pairs
    _hub_winogrande(tmp_path / "snap", {"train": train, "validation": lines(wdir / "dev.jsonl"),
                                        "test": lines(wdir / "test.jsonl")})
    # the dev rows are also in train here: refused, unless asked to drop them from train
    with pytest.raises(ValueError, match="also occur in the test split"):
        cs.prepare("winogrande", str(tmp_path / "snap"), tmp_path / "bad", {"config": "winogrande_xs"})
    meta = cs.prepare("winogrande", str(tmp_path / "snap"), tmp_path / "out",
                      {"config": "winogrande_xs", "validation_fraction": 0.5, "split_seed": seed,
                       "on_overlap": "drop_from_train"})
    assert meta["overlap_dropped"] == {"train": 2}
    tr, va = read_jsonl(tmp_path / "out/train.jsonl"), read_jsonl(tmp_path / "out/validation.jsonl")
    assert tr and va
    sentences = lambda rows: {r["sentence"].split(" _ ")[0][:30] for r in rows}  # noqa: E731
    assert not sentences(tr) & sentences(va)  # no twin on both sides
    assert len(tr) % 2 == 0 and len(va) % 2 == 0


def test_winogrande_groups_link_twins_by_options_and_qid():
    rows = [{"id": "train-1", "option1": "Ian", "option2": "Dennis"},
            {"id": "train-2", "option1": "Dennis ", "option2": "ian"},
            {"id": "train-3", "option1": "cat", "option2": "dog"},
            {"id": "ABC-1", "option1": "x", "option2": "y"},
            {"id": "ABC-2", "option1": "x2", "option2": "y2"}]
    g = cs.winogrande_groups(rows)
    assert g["train-1"] == g["train-2"] != g["train-3"]
    assert g["ABC-1"] == g["ABC-2"]  # the qID stem links them too


def test_empty_and_unlabelled_splits_name_the_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    dev = need(SAMPLES / "csqa/hf_dummy_original_format/dev_rand_split.jsonl")
    (src / "dev_rand_split.jsonl").write_bytes(dev.read_bytes())
    (src / "train_rand_split.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"train_rand_split\.jsonl: split 'train' has no records"):
        cs.prepare("csqa", str(src), tmp_path / "out", {})
    rec = json.loads(dev.read_text().splitlines()[0])
    rec.pop("answerKey")
    (src / "train_rand_split.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match=r"train_rand_split\.jsonl: no labelled rows \(1 records"):
        cs.prepare("csqa", str(src), tmp_path / "out", {})


def test_bad_bytes_bom_and_huge_fields_name_file_and_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = need(SAMPLES / "csqa/hf_dummy_original_format/train_rand_split.jsonl").read_bytes()
    dev = (SAMPLES / "csqa/hf_dummy_original_format/dev_rand_split.jsonl").read_bytes()
    (src / "dev_rand_split.jsonl").write_bytes(dev)
    first, rest = good.split(b"\n", 1)
    (src / "train_rand_split.jsonl").write_bytes(first + b"\n" + b'{"id": "\xff"}\n' + rest)
    with pytest.raises(ValueError, match=r"train_rand_split\.jsonl:2: invalid UTF-8 \(byte 0xff"):
        cs.prepare("csqa", str(src), tmp_path / "out", {})
    # a BOM at the start of the file and inside a field does not survive into the rows
    rec = json.loads(first)
    rec["question"]["stem"] = "\ufeff" + rec["question"]["stem"]
    (src / "train_rand_split.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(rec).encode() + b"\n" + rest)
    cs.prepare("csqa", str(src), tmp_path / "out", {"validation_fraction": 0.2})
    rows = read_jsonl(tmp_path / "out/train.jsonl")
    assert rows and not any("\ufeff" in json.dumps(r, ensure_ascii=False) for r in rows)
    # a 10 MB field: a clear message with file and line, not a traceback from deep inside
    rec["question"]["stem"] = "x" * 10_000_000
    (src / "train_rand_split.jsonl").write_bytes(first + b"\n" + json.dumps(rec).encode() + b"\n")
    with pytest.raises(ValueError, match=r"train_rand_split\.jsonl:2: field 'stem' is 10,000,000"):
        cs.prepare("csqa", str(src), tmp_path / "out", {})
    # RACE: a BOM-prefixed passage file and invalid UTF-8 in another
    race = tmp_path / "race"
    import shutil

    shutil.copytree(need(RACE / "RACE"), race / "RACE")
    p = race / "RACE/train/high/123.txt"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    cs.prepare("race", str(race), tmp_path / "race_out", {})
    assert "\ufeff" not in (tmp_path / "race_out/train.jsonl").read_text(encoding="utf-8")
    q = race / "RACE/dev/middle/13.txt"
    q.write_bytes(q.read_bytes().replace(b"the", b"th\xc3", 1))
    with pytest.raises(ValueError, match=r"dev/middle/13\.txt:1: invalid UTF-8"):
        cs.prepare("race", str(race), tmp_path / "race_out", {})


def test_winogrande_invalid_utf8_and_bom(tmp_path):
    src = tmp_path / "winogrande_1.1"
    src.mkdir()
    wdir = need(WINO / "winogrande_1.1")
    for name in ("dev.jsonl", "test.jsonl"):
        (src / name).write_bytes((wdir / name).read_bytes())
    train = (wdir / "train_xs.jsonl").read_bytes()
    (src / "train_xs.jsonl").write_bytes(b"\xef\xbb\xbf" + train.replace(b"leg warmers", b"leg \xef\xbb\xbfwarmers"))
    cs.prepare("winogrande", str(tmp_path), tmp_path / "out", {"config": "winogrande_xs", "validation_fraction": 0.5})
    text = (tmp_path / "out/train.jsonl").read_text(encoding="utf-8") + (tmp_path / "out/validation.jsonl").read_text(encoding="utf-8")
    assert "\ufeff" not in text and "leg warmers" in text
    lines = train.split(b"\n")
    lines[2] = lines[2].replace(b"Kyle", b"Ky\xe9le")
    (src / "train_xs.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match=r"train_xs\.jsonl:3: invalid UTF-8 \(byte 0xe9"):
        cs.prepare("winogrande", str(tmp_path), tmp_path / "out", {"config": "winogrande_xs"})
