"""OPUS-100 as its publishers ship it, through the real download step: the original
``opus-100-corpus-v1.0.tar.gz`` served over a local HTTP server, and the Hub parquet layout
(``<pair>/<split>-00000-of-00001.parquet``) built from the same real lines; both give the same
rows. Bad inputs (BOM, invalid UTF-8, empty split, train/test overlap) name the file."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from smcbench import download
from smcbench.tasks import translation as T
from smcbench.tasks.base import read_jsonl

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
OPUS = SAMPLES / "opus100"
SETTINGS = {"languages": ["fr", "cs"], "test_languages": T.LANGUAGES}


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real samples not available at {path}")
    return path




def _parquet_snapshot(src: Path, snap: Path) -> None:
    """The Hub layout of Helsinki-NLP/opus-100 from the original text files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sup = src / "opus-100-corpus/v1.0/supervised"
    for pair_dir in sorted(sup.iterdir()):
        pair = pair_dir.name
        l1, l2 = pair.split("-")
        for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
            a = (pair_dir / f"opus.{pair}-{name}.{l1}").read_text(encoding="utf-8").split("\n")
            b = (pair_dir / f"opus.{pair}-{name}.{l2}").read_text(encoding="utf-8").split("\n")
            a, b = [x for x in a if x], [x for x in b if x]
            col = pa.array([{l1: x, l2: y} for x, y in zip(a, b)],
                           type=pa.struct([(l1, pa.string()), (l2, pa.string())]))
            path = snap / pair / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"translation": col}), path)


def test_original_tarball_over_http_and_hub_parquet_agree(tmp_path, http_root):
    root, url = http_root
    with tarfile.open(root / "opus-100-corpus-v1.0.tar.gz", "w:gz") as t:
        t.add(need(OPUS / "opus-100-corpus"), arcname="opus-100-corpus")
    download.run(f"{url}/opus-100-corpus-v1.0.tar.gz", tmp_path / "src/source.json", tmp_path / "cache")
    local = download.local_source(tmp_path / "src/source.json")
    meta = T.prepare("opus100_2to2", local, tmp_path / "text", SETTINGS)
    assert meta["layout"] == "text"
    assert meta["counts"] == {"train": 8, "validation": 8, "test": 40}
    _parquet_snapshot(OPUS, tmp_path / "snap")
    meta2 = T.prepare("opus100_2to2", tmp_path / "snap", tmp_path / "hub", SETTINGS)
    assert meta2["layout"] == "parquet" and meta2["counts"] == meta["counts"]
    for split in ("train", "validation", "test"):
        assert read_jsonl(tmp_path / f"text/{split}.jsonl") == read_jsonl(tmp_path / f"hub/{split}.jsonl")


def _text_pair(root: Path, pair: str, lines: dict[str, tuple[bytes, bytes]]) -> Path:
    l1, l2 = pair.split("-")
    d = root / "opus-100-corpus/v1.0/supervised" / pair
    d.mkdir(parents=True, exist_ok=True)
    for split, (a, b) in lines.items():
        (d / f"opus.{pair}-{split}.{l1}").write_bytes(a)
        (d / f"opus.{pair}-{split}.{l2}").write_bytes(b)
    return d


ONE = {"languages": ["fr"], "test_languages": ["fr"]}
GOOD = {"train": (b"Hello.\nGood night.\n", b"Bonjour.\nBonne nuit.\n"),
        "dev": (b"Yes.\n", b"Oui.\n"), "test": (b"No.\n", b"Non.\n")}


def test_bom_is_removed_from_text_and_parquet(tmp_path):
    _text_pair(tmp_path, "en-fr", {**GOOD, "train": (b"\xef\xbb\xbfHello.\nGood night.\n",
                                                     "\ufeffBonjour.\nBonne nuit.\n".encode())})
    T.prepare("d", tmp_path, tmp_path / "out", ONE)
    text = (tmp_path / "out/train.jsonl").read_text(encoding="utf-8")
    assert "\ufeff" not in text and '"Bonjour."' in text


def test_invalid_utf8_empty_split_and_overlap_name_the_file(tmp_path):
    d = _text_pair(tmp_path, "en-fr", {**GOOD, "dev": (b"Yes.\n", b"Oui \xc3(\n")})
    with pytest.raises(ValueError, match=r"opus\.en-fr-dev\.fr:1: invalid UTF-8"):
        T.prepare("d", tmp_path, tmp_path / "out", ONE)
    _text_pair(tmp_path, "en-fr", {**GOOD, "dev": (b"", b"")})
    with pytest.raises(ValueError, match=r"opus\.en-fr-dev\.en.*en-fr validation split has no usable"):
        T.prepare("d", tmp_path, tmp_path / "out", ONE)
    _text_pair(tmp_path, "en-fr", {**GOOD, "dev": (b" \n", b"Oui.\n")})  # only an empty side
    with pytest.raises(ValueError, match=r"no usable sentence pairs \(1 read"):
        T.prepare("d", tmp_path, tmp_path / "out", ONE)
    _text_pair(tmp_path, "en-fr", {**GOOD, "test": (b"Good night.\n", b"Bonne nuit.\n")})
    with pytest.raises(ValueError, match=r"opus\.en-fr-train\.en: sentence pair 2 also occurs in the test"):
        T.prepare("d", tmp_path, tmp_path / "out", ONE)
    meta = T.prepare("d", tmp_path, tmp_path / "out", {**ONE, "on_overlap": "drop_from_train"})
    assert meta["dropped"]["train"] == {"en-fr:in_test": 1} and meta["counts"]["train"] == 2
    assert d.is_dir()


def test_oversized_parquet_field_names_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split in ("train", "validation", "test"):
        pairs = [("a", "b")] if split != "train" else [("ok", "ok"), ("x" * 2_000_000, "y")]
        if split == "test":
            pairs = [("t", "u")]
        col = pa.array([{"en": x, "fr": y} for x, y in pairs],
                       type=pa.struct([("en", pa.string()), ("fr", pa.string())]))
        path = tmp_path / "en-fr" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"translation": col}), path)
    with pytest.raises(ValueError, match=r"train-00000-of-00001\.parquet: row 1: field 'translation\.en' is 2,000,000"):
        T.prepare("d", tmp_path, tmp_path / "out", ONE)


def test_snapshot_with_only_the_test_split_of_test_languages(tmp_path):
    """config.yaml fetches only ``<pair>/test-*`` for languages used only for testing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(pair, split, rows):
        l1, l2 = pair.split("-")
        col = pa.array([{l1: a, l2: b} for a, b in rows], type=pa.struct([(l1, pa.string()), (l2, pa.string())]))
        path = tmp_path / pair / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"translation": col}), path)

    write("en-fr", "train", [("Hello.", "Bonjour.")])
    write("en-fr", "validation", [("Yes.", "Oui.")])
    write("en-fr", "test", [("No.", "Non.")])
    write("cs-en", "test", [("Ne.", "No.")])
    meta = T.prepare("d", tmp_path, tmp_path / "out", {"languages": ["fr"], "test_languages": ["fr", "cs"]})
    assert meta["counts"] == {"train": 2, "validation": 2, "test": 4}
    assert "cs-en/test-00000-of-00001.parquet" in meta["sha256"]
    # a fine-tuning language still needs its train split
    (tmp_path / "en-fr" / "train-00000-of-00001.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="'en-fr'.*no 'train' split"):
        T.prepare("d", tmp_path, tmp_path / "out2", {"languages": ["fr"], "test_languages": ["fr", "cs"]})
