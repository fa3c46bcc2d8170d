"""Arithmetic sources as published: the SVAMP repository's GitHub archive (``.zip`` or
``.tar.gz``), fetched by the download step from a local HTTP server, then prepared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from smcbench import download
from smcbench.tasks import arithmetic as A
from smcbench.tasks.base import read_jsonl

HEADER = "Question,Numbers,Equation,Answer,group_nums,Body,Ques_Statement\n"


def _row(i: int) -> str:
    return f'Tom has number0 apples and buys number1 more in shop {i} . How many ?,{i}.0 3.0,+ number0 number1,{i + 3},"[2, 3]",b,q\n'


def _repo(root: Path) -> Path:
    """An SVAMP repository checkout in miniature: data/cv_mawps/fold{0..4} and the SVAMP split."""
    data = root / "SVAMP-689d7cc" / "data"
    for k in range(5):
        d = data / "cv_mawps" / f"fold{k}"
        d.mkdir(parents=True)
        (d / "train.csv").write_text(HEADER + "".join(_row(i) for i in range(40) if i % 5 != k))
        (d / "dev.csv").write_text(HEADER + "".join(_row(i) for i in range(40) if i % 5 == k))
    d = data / "mawps-asdiv-a_svamp"
    d.mkdir()
    (d / "train.csv").write_text(HEADER + "".join(_row(i) for i in range(30)))
    (d / "dev.csv").write_text(HEADER + "".join(_row(i) for i in range(100, 110)))
    return root




@pytest.mark.parametrize("fmt, ext", [("zip", ".zip"), ("gztar", ".tar.gz")])
def test_svamp_repository_archive_over_http(served, tmp_path, fmt, ext):
    www, base = served
    repo = _repo(tmp_path / "repo")
    shutil.make_archive(str(www / "689d7cc"), fmt, root_dir=repo, base_dir="SVAMP-689d7cc")
    out = tmp_path / "source.json"
    download.run(f"{base}/689d7cc{ext}", out, tmp_path / "cache")
    local = download.local_source(out)
    assert Path(local).is_file()  # the download step records the archive file itself
    meta = A.prepare("mawps", local, tmp_path / "m", {}, fold=3)
    ref = A.prepare("mawps", repo / "SVAMP-689d7cc", tmp_path / "r", {}, fold=3)
    assert meta["counts"] == ref["counts"] == {"train": 29, "validation": 3, "test": 8}
    assert read_jsonl(tmp_path / "m" / "test.jsonl") == read_jsonl(tmp_path / "r" / "test.jsonl")
    sv = A.prepare("svamp", local, tmp_path / "s", {})
    assert sv["counts"]["test"] == 10 and sv["sha256"]["mawps-asdiv-a_svamp/dev.csv"]
