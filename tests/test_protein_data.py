"""Protein data: FASTA / CSV / PDB parsing, the refusing unpickler, HotProtein and Meltome prepare."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import pytest

from smcbench.tasks import protein
from smcbench.tasks.protein import data as pdata
from smcbench.tasks.base import read_jsonl

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real-samples"


# --- FASTA ----------------------------------------------------------------------------------
def test_fasta_multiline_lowercase_and_stop(tmp_path):
    f = tmp_path / "a.fasta"
    f.write_text(">p1 some description\nmkt\nAYI*\n>p2\nGG\n")
    assert pdata.parse_fasta(f) == [("p1 some description", "MKTAYI"), ("p2", "GG")]


def test_fasta_bad_residue_names_file_and_record(tmp_path):
    f = tmp_path / "bad.fasta"
    f.write_text(">ok\nMKT\n>broken_one\nMK1T\n")
    with pytest.raises(pdata.ProteinDataError) as e:
        pdata.parse_fasta(f)
    msg = str(e.value)
    assert "bad.fasta" in msg and "broken_one" in msg and "'1'" in msg and "position 3" in msg


def test_fasta_empty_sequence_is_an_error(tmp_path):
    f = tmp_path / "empty.fasta"
    f.write_text(">first\nMKT\n>second\n\n>third\nAA\n")
    with pytest.raises(pdata.ProteinDataError, match=r"empty\.fasta:3 record 'second': empty sequence"):
        pdata.parse_fasta(f)


def test_fasta_text_before_header(tmp_path):
    f = tmp_path / "nohdr.fasta"
    f.write_text("MKT\n>x\nAA\n")
    with pytest.raises(pdata.ProteinDataError, match="before the first '>'"):
        pdata.parse_fasta(f)


# --- the refusing unpickler -----------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


class _Plain:
    pass


def test_unpickler_accepts_plain_containers(tmp_path):
    obj = {"train_names": ["a", "b"], "train_labels": [0, 1.0], "test_names": ("c",), "test_labels": [4],
           "nested": {"x": [None, True, -3]}}
    f = tmp_path / "ok.pkl"
    f.write_bytes(pickle.dumps(obj, protocol=4))
    assert pdata.safe_load_pickle(f) == obj


@pytest.mark.parametrize("payload", [_Evil(), _Plain(), {"names": [_Plain()]}, {1, 2}, b"bytes"])
def test_unpickler_refuses_objects(tmp_path, payload):
    f = tmp_path / "evil.pkl"
    f.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(pdata.ProteinDataError, match=r"evil\.pkl: not a plain-data pickle"):
        pdata.safe_load_pickle(f)


@pytest.mark.parametrize("raw", [b"}}b.", b"(lp0\nI1\na", b"", b"\x80\x04\x95garbage"],
                         ids=["BUILD-on-dict", "truncated", "empty", "garbage"])
def test_malformed_pickles_are_a_message_not_a_traceback(tmp_path, raw):
    """Opcode misuse (BUILD on a plain dict), truncation and garbage name the file."""
    f = tmp_path / "split.pkl"
    f.write_bytes(raw)
    with pytest.raises(pdata.ProteinDataError, match=r"split\.pkl: not a plain-data pickle"):
        pdata.safe_load_pickle(f)


# --- PDB ------------------------------------------------------------------------------------
def _atom(serial, name, resname, chain, resseq, x, y, z, rec="ATOM  "):
    return (f"{rec}{serial:5d} {name:<4s} {resname:>3s} {chain}{resseq:4d}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00 90.00           {name[0]}\n")


def _write_pdb(path: Path, residues: list[str], chain: str = "A", drop: tuple[int, str] | None = None):
    lines, serial = [], 1
    for i, res in enumerate(residues, 1):
        for j, atom in enumerate(("N", "CA", "C", "O", "CB")):
            if drop == (i, atom):
                continue
            lines.append(_atom(serial, atom, res, chain, i, i + 0.1 * j, 2.0 * i, -1.0 * j))
            serial += 1
    lines.append(_atom(serial, "O", "HOH", chain, 900, 0, 0, 0, rec="HETATM"))
    path.write_text("".join(lines) + "END\n")


def test_pdb_backbone_coordinates(tmp_path):
    f = tmp_path / "s.pdb"
    _write_pdb(f, ["MET", "LYS", "GLY"], drop=(2, "CA"))
    seq, coords = pdata.parse_pdb_backbone(f)
    assert seq == "MKG"
    assert len(coords) == 3 and all(len(r) == 3 for r in coords)
    assert coords[0][0] == [1.0, 2.0, 0.0]          # N of residue 1
    assert coords[2][2] == pytest.approx([3.2, 6.0, -2.0])  # C of residue 3
    assert all(math.isnan(v) for v in coords[1][1])  # the missing CA


def test_pdb_missing_chain_and_bad_coordinates(tmp_path):
    f = tmp_path / "b.pdb"
    _write_pdb(f, ["ALA"], chain="B")
    with pytest.raises(pdata.ProteinDataError, match=r"no residues in chain 'A' \(chains present: B\)"):
        pdata.parse_pdb_backbone(f, "A")
    g = tmp_path / "c.pdb"
    g.write_text(_atom(1, "N", "ALA", "A", 1, 0, 0, 0).replace("   0.000   0.000", "   x.xxx   0.000", 1))
    with pytest.raises(pdata.ProteinDataError, match=r"c\.pdb:1: unreadable coordinates"):
        pdata.parse_pdb_backbone(g)


# --- HotProtein -----------------------------------------------------------------------------
def _release(tmp_path: Path, variant_dir: str, split_name: str, fasta_dir: str, n: int, classes: int,
             pdb: bool = False) -> Path:
    root = tmp_path / "HotProtein"
    d = root / variant_dir
    (d / fasta_dir).mkdir(parents=True)
    names = [f"P{i:05d}" for i in range(n)]
    residues = ["MET", "LYS", "THR", "ALA", "TYR"]
    for i, name in enumerate(names):
        (d / fasta_dir / f"{name}.fasta").write_text(f">{name}\nMKTAY\n")
        if pdb:
            (d / "d2_clean" / name).mkdir(parents=True)
            _write_pdb(d / "d2_clean" / name / "unrelaxed_model_1_ptm.pdb", residues)
    split = {"train_names": names[: n - 4], "train_labels": [float(i % classes) for i in range(n - 4)],
             "test_names": names[n - 4:], "test_labels": [i % classes for i in range(4)]}
    (d / split_name).write_bytes(pickle.dumps(split))
    return root


def test_prepare_hotprotein_s2c2(tmp_path):
    root = _release(tmp_path, "d1", "d1_0_classification.pkl", "d1_fasta_clean", 24, 2)
    (root / "d1" / "d1_fasta_clean" / "P00001.fasta").unlink()  # a missing file is dropped, counted
    out = tmp_path / "out"
    meta = protein.prepare("hotprotein_s2c2", str(root), out, {"validation_fraction": 0.25, "cv_fold": 0})
    # 19 usable training rows (10 of class 0, 9 of class 1); 25% per class, rounded, → 2 + 2
    assert meta["counts"] == {"train": 15, "validation": 4, "test": 4}
    assert meta["dropped"] == {"missing_fasta": 1}
    assert meta["num_classes"] == 2 and "d1/d1_0_classification.pkl" in meta["files_sha256"]
    rows = read_jsonl(out / "train.jsonl")
    assert set(rows[0]) == {"id", "sequence", "label"} and rows[0]["sequence"] == "MKTAY"
    ids = {r["id"] for s in ("train", "validation", "test") for r in read_jsonl(out / f"{s}.jsonl")}
    assert len(ids) == 23  # disjoint splits, nothing lost but the dropped one
    again = protein.prepare("hotprotein_s2c2", str(root), tmp_path / "out2", {"validation_fraction": 0.25})
    assert read_jsonl(tmp_path / "out2" / "validation.jsonl") == read_jsonl(out / "validation.jsonl")
    assert again["counts"] == meta["counts"]


def test_prepare_hotprotein_bad_label_names_record(tmp_path):
    root = _release(tmp_path, "S", "S_target_classification.pkl", "S_target", 10, 5)
    split = pdata.safe_load_pickle(root / "S" / "S_target_classification.pkl")
    split["train_labels"][2] = 7
    (root / "S" / "S_target_classification.pkl").write_bytes(pickle.dumps(split))
    with pytest.raises(pdata.ProteinDataError, match=r"train record 'P00002': label 7 .*0\.\.4"):
        protein.prepare("hotprotein_s", str(root), tmp_path / "o", {})


def test_prepare_hotprotein_s2c5_structures(tmp_path):
    from safetensors.torch import load_file

    root = _release(tmp_path, "d2", "d2_3_classification.pkl", "d2_fasta_clean", 14, 5, pdb=True)
    out = tmp_path / "o"
    meta = protein.prepare("hotprotein_s2c5", str(root), out, {"validation_fraction": 0.2}, fold=3)
    assert meta["cv_fold"] == 3 and meta["structures"]["count"] == 14
    row = read_jsonl(out / "test.jsonl")[0]
    assert row["pdb"] == f"d2/d2_clean/{row['id']}/unrelaxed_model_1_ptm.pdb"
    coords = load_file(str(out / "structures.safetensors"))
    assert coords[row["id"]].shape == (5, 3, 3)


# --- Meltome --------------------------------------------------------------------------------
def test_prepare_meltome_csv_classes_and_flip_validation(tmp_path):
    csv = tmp_path / "human.csv"
    lines = ["sequence,target,set,validation"]
    temps = [40.0, 49.9, 50.0, 64.9, 65.0, 80.0]
    for i in range(30):
        lines.append(f"MKT{'AVL'[i % 3]}Y{'G' * i},{temps[i % 6]},{'test' if i >= 24 else 'train'},{'True' if i in (3, 4) else ''}")
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    meta = protein.prepare("meltome", str(tmp_path), out, {"split": "human", "validation_from": "flip"})
    assert meta["num_classes"] == 3 and meta["tm_bins"] == [50.0, 65.0]
    assert meta["counts"] == {"train": 22, "validation": 2, "test": 6}
    rows = read_jsonl(out / "train.jsonl")
    assert [(r["target"], r["label"]) for r in rows[:6]] == [(40.0, 0), (49.9, 0), (50.0, 1), (80.0, 2),
                                                            (40.0, 0), (49.9, 0)]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "human.csv").write_text("sequence,target,set,validation\nMKT,hot,train,\n")
    with pytest.raises(pdata.ProteinDataError, match=r"human\.csv:2 record 0: target 'hot'"):
        protein.prepare("meltome", str(bad), tmp_path / "o2", {"split": "human"})


def test_meltome_real_fasta_sample(tmp_path):
    sample = REAL / "meltome" / "meltome_cv_test.fasta"
    if not sample.is_file():
        pytest.skip("shared/real-samples/meltome not available")
    meta = protein.prepare("meltome", str(sample), tmp_path, {"validation_fraction": 0.1})
    assert sum(meta["counts"].values()) == 100
    assert meta["counts"]["test"] == 29
    assert meta["truncated"] == 26  # sequences longer than 1022 residues in this sample
    rows = read_jsonl(tmp_path / "test.jsonl")
    assert all(len(r["sequence"]) <= 1022 and 43 < r["target"] < 64 for r in rows)
    assert json.dumps(meta)  # meta.json-serializable


# --- synthetic ------------------------------------------------------------------------------
def test_synthetic_prepare_is_deterministic_and_stratified(tmp_path):
    s = {"num_classes": 5, "n_train": 200, "n_test": 50, "world_seed": 3, "validation_fraction": 0.2}
    m1 = protein.prepare("demo_protein5", "synthetic", tmp_path / "a", s)
    m2 = protein.prepare("demo_protein5", "synthetic", tmp_path / "b", s)
    assert m1 == m2 and m1["counts"]["test"] == 50
    assert m1["counts"]["train"] + m1["counts"]["validation"] == 200
    assert 37 <= m1["counts"]["validation"] <= 43  # 20% per class, rounded per class
    assert (tmp_path / "a" / "train.jsonl").read_text() == (tmp_path / "b" / "train.jsonl").read_text()
    assert set(m1["label_counts"]["validation"]) == {"0", "1", "2", "3", "4"}


def test_unknown_variant_message(tmp_path):
    with pytest.raises(ValueError, match="set settings.variant to one of hp_s, hp_s2c2, hp_s2c5, meltome"):
        protein.prepare("my_proteins", str(tmp_path), tmp_path / "o", {})


def test_meltome_from_flip_splits_zip(tmp_path):
    import zipfile

    rows = "sequence,target,set,validation\n" + "".join(
        f"MKV{'A' * i},{45 + i},{'test' if i % 5 == 0 else 'train'},\n" for i in range(20))
    with zipfile.ZipFile(tmp_path / "splits.zip", "w") as zf:
        zf.writestr("splits/mixed_split.csv", rows)
        zf.writestr("splits/human.csv", "sequence,target,set,validation\n")
    meta = protein.prepare("meltome", str(tmp_path), tmp_path / "o", {"validation_fraction": 0.2})
    assert meta["zip_member"] == "splits/mixed_split.csv" and meta["split"] == "mixed"
    assert meta["counts"]["test"] == 4 and meta["counts"]["train"] + meta["counts"]["validation"] == 16
    with pytest.raises(ValueError, match="not a FLIP Meltome split"):
        protein.prepare("meltome", str(tmp_path), tmp_path / "o2", {"split": "mouse"})


# --- Meltome in every layout FLIP ships, and bad files ---------------------------------------
def _flip_csv(n: int = 20) -> str:
    return "sequence,target,set,validation\n" + "".join(
        f"MKV{'A' * i},{45 + i},{'test' if i % 5 == 0 else 'train'},{'True' if i == 3 else ''}\n" for i in range(n))


def _flip_zip(path, member="splits/mixed_split.csv", text=None):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, text if text is not None else _flip_csv())
        zf.writestr("splits/human.csv", "sequence,target,set,validation\n")
    return path


def test_meltome_source_is_the_zip_file_itself(tmp_path):
    """What downloading the configured splits.zip URL records as the source: the zip file."""
    z = _flip_zip(tmp_path / "splits.zip")
    meta = protein.prepare("meltome", str(z), tmp_path / "o", {"validation_fraction": 0.2})
    assert meta["zip_member"] == "splits/mixed_split.csv" and meta["counts"]["test"] == 4
    assert list(meta["files_sha256"]) == ["splits.zip"]
    # the same rows from the unpacked CSV and from the folder holding the zip
    (tmp_path / "unz").mkdir()
    (tmp_path / "unz" / "mixed_split.csv").write_text(_flip_csv())
    a = protein.prepare("meltome", str(tmp_path / "unz" / "mixed_split.csv"), tmp_path / "a", {"validation_fraction": 0.2})
    b = protein.prepare("meltome", str(tmp_path), tmp_path / "b", {"validation_fraction": 0.2})
    for split in ("train", "validation", "test"):
        assert read_jsonl(tmp_path / "a" / f"{split}.jsonl") == read_jsonl(tmp_path / "o" / f"{split}.jsonl")
        assert read_jsonl(tmp_path / "b" / f"{split}.jsonl") == read_jsonl(tmp_path / "o" / f"{split}.jsonl")
    assert a["counts"] == b["counts"] == meta["counts"]


def test_meltome_zip_errors_name_the_archive_and_member(tmp_path):
    html = tmp_path / "html" / "splits.zip"
    html.parent.mkdir()
    html.write_text("<html>rate limited</html>")
    with pytest.raises(pdata.ProteinDataError, match=r"splits\.zip: not a readable zip archive"):
        protein.prepare("meltome", str(html), tmp_path / "o", {})
    z = _flip_zip(tmp_path / "splits.zip")
    with pytest.raises(FileNotFoundError, match=r"no member human_cell\.csv"):
        protein.prepare("meltome", str(z), tmp_path / "o", {"split": "human_cell"})
    bad = _flip_zip(tmp_path / "bad.zip", text="sequence,target,set,validation\nMKT,40,train,\nMK\xe9T,41,test,\n".encode("latin-1"))
    with pytest.raises(pdata.ProteinDataError, match=r"bad\.zip!splits/mixed_split\.csv:3: invalid UTF-8 \(byte 0xe9"):
        protein.prepare("meltome", str(bad), tmp_path / "o", {})


def test_meltome_empty_and_header_only_are_errors_naming_the_file(tmp_path):
    (tmp_path / "human.csv").write_text("sequence,target,set,validation\n")
    with pytest.raises(pdata.ProteinDataError, match=r"human\.csv: no train record \(0 records"):
        protein.prepare("meltome", str(tmp_path / "human.csv"), tmp_path / "o", {})
    (tmp_path / "only_train.csv").write_text("sequence,target,set,validation\nMKT,40,train,\nMKA,41,train,\n")
    with pytest.raises(pdata.ProteinDataError, match=r"only_train\.csv: no test record"):
        protein.prepare("meltome", str(tmp_path / "only_train.csv"), tmp_path / "o", {})
    (tmp_path / "empty.fasta").write_text("")
    with pytest.raises(pdata.ProteinDataError, match=r"empty\.fasta: no train record"):
        protein.prepare("meltome", str(tmp_path / "empty.fasta"), tmp_path / "o", {})


def test_meltome_train_test_overlap_is_an_error(tmp_path):
    (tmp_path / "m.csv").write_text("sequence,target,set,validation\nMKT,40,train,\nMKA,41,train,\nMKT,52,test,\n")
    with pytest.raises(pdata.ProteinDataError, match=r"m\.csv: train and test share 1 protein\(s\) \(same sequence\)"):
        protein.prepare("meltome", str(tmp_path / "m.csv"), tmp_path / "o", {})


def test_meltome_invalid_utf8_bom_and_huge_field(tmp_path):
    f = tmp_path / "m.csv"
    f.write_bytes(b"sequence,target,set,validation\nMKT,40,train,\nMKA,4\xff1,test,\n")
    with pytest.raises(pdata.ProteinDataError, match=r"m\.csv:3: invalid UTF-8 \(byte 0xff at column 6\)"):
        protein.prepare("meltome", str(f), tmp_path / "o", {})
    # a BOM is dropped (CSV header and FASTA first header both)
    f.write_bytes(b"\xef\xbb\xbfsequence,target,set,validation\nMKT,40,train,\nMKAA,41,train,\nMKA,41,test,\n")
    assert protein.prepare("meltome", str(f), tmp_path / "o", {"validation_fraction": 0.5})["counts"]["test"] == 1
    fa = tmp_path / "m.fasta"
    fa.write_bytes("\ufeff>S0 TARGET=40 SET=train\nMKT\n>S1 TARGET=41 SET=train\nMKAA\n>S2 TARGET=60 SET=test\nMKA\n"
                   .encode("utf-8"))
    assert protein.prepare("meltome", str(fa), tmp_path / "o", {"validation_fraction": 0.5})["counts"]["test"] == 1
    fa.write_bytes(b">S0 TARGET=40 SET=train\nMK\xc3T\n")
    with pytest.raises(pdata.ProteinDataError, match=r"m\.fasta:2: invalid UTF-8"):
        protein.prepare("meltome", str(fa), tmp_path / "o", {})
    big = tmp_path / "big.csv"
    big.write_text("sequence,target,set,validation\nMKT,40,train,\n" + '"' + "M" * 10_000_000 + '",41,test,\n')
    with pytest.raises(pdata.ProteinDataError, match=r"big\.csv:\d+: malformed CSV: .*field larger"):
        protein.prepare("meltome", str(big), tmp_path / "o", {})


# --- HotProtein: names confined, overlap refused, release archives ----------------------------
def test_hotprotein_names_cannot_leave_the_source_tree(tmp_path):
    root = _release(tmp_path, "d1", "d1_0_classification.pkl", "d1_fasta_clean", 12, 2)
    (tmp_path / "SECRET.fasta").write_text(">x\nMKT\n")
    split = pdata.safe_load_pickle(root / "d1" / "d1_0_classification.pkl")
    for evil in ("../../../SECRET", "/etc/passwd", "a/b", "..", ""):
        split["train_names"][0] = evil
        (root / "d1" / "d1_0_classification.pkl").write_bytes(pickle.dumps(split))
        with pytest.raises(pdata.ProteinDataError, match="not a plain file name"):
            protein.prepare("hotprotein_s2c2", str(root), tmp_path / "o", {})
    assert not (tmp_path / "o" / "train.jsonl").exists()


def test_hotprotein_same_protein_in_train_and_test_is_an_error(tmp_path):
    root = _release(tmp_path, "d1", "d1_0_classification.pkl", "d1_fasta_clean", 12, 2)
    split = pdata.safe_load_pickle(root / "d1" / "d1_0_classification.pkl")
    split["test_names"][1] = split["train_names"][5]
    (root / "d1" / "d1_0_classification.pkl").write_bytes(pickle.dumps(split))
    with pytest.raises(pdata.ProteinDataError, match=r"d1_0_classification\.pkl: train and test share 1 protein"):
        protein.prepare("hotprotein_s2c2", str(root), tmp_path / "o", {})


def test_hotprotein_empty_test_is_an_error(tmp_path):
    root = _release(tmp_path, "d1", "d1_0_classification.pkl", "d1_fasta_clean", 12, 2)
    split = pdata.safe_load_pickle(root / "d1" / "d1_0_classification.pkl")
    split["test_names"], split["test_labels"] = [], []
    (root / "d1" / "d1_0_classification.pkl").write_bytes(pickle.dumps(split))
    with pytest.raises(pdata.ProteinDataError, match=r"d1_0_classification\.pkl: no usable test record"):
        protein.prepare("hotprotein_s2c2", str(root), tmp_path / "o", {})


@pytest.mark.parametrize("fmt", ["zip", "gztar"])
def test_hotprotein_release_archive(tmp_path, fmt):
    import shutil

    root = _release(tmp_path / "rel", "d1", "d1_0_classification.pkl", "d1_fasta_clean", 16, 2)
    archive = shutil.make_archive(str(tmp_path / "dl" / "HotProtein_d1"), fmt, root_dir=root.parent, base_dir=root.name)
    ref = protein.prepare("hotprotein_s2c2", str(root), tmp_path / "ref", {"validation_fraction": 0.25})
    got = protein.prepare("hotprotein_s2c2", archive, tmp_path / "o", {"validation_fraction": 0.25})
    assert got["counts"] == ref["counts"]
    assert read_jsonl(tmp_path / "o" / "test.jsonl") == read_jsonl(tmp_path / "ref" / "test.jsonl")
    assert (tmp_path / "dl" / (Path(archive).name + ".unpacked") / ".complete").is_file()
    again = protein.prepare("hotprotein_s2c2", archive, tmp_path / "o2", {"validation_fraction": 0.25})
    assert again["counts"] == ref["counts"]


def test_hotprotein_archive_with_escaping_member_is_refused(tmp_path):
    import zipfile

    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("d1/ok.fasta", ">a\nMKT\n")
        zf.writestr("../../escaped.txt", "x")
    with pytest.raises(pdata.ProteinDataError, match=r"evil\.zip: archive member '\.\./\.\./escaped\.txt'"):
        protein.prepare("hotprotein_s2c2", str(z), tmp_path / "o", {})
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_synthetic_label_is_an_order_relation_not_composition():
    from collections import Counter

    from smcbench.tasks.protein.synthetic import MARKERS, position_heuristic, synthetic_rows

    for c in (2, 5):
        rows = synthetic_rows(600, c, seed=4, min_len=12, max_len=24)
        for r in rows:
            seq = r["sequence"][1:]
            counts = Counter(seq)
            assert all(counts[m] == 1 for m in MARKERS[:c]) and not set(MARKERS[c:]) & set(seq)
            assert min(MARKERS[:c], key=seq.index) == MARKERS[r["label"]]  # the first marker is the class
        assert set(Counter(r["label"] for r in rows)) == set(range(c))
        # a single residue's position says something, but far from everything
        h = position_heuristic(rows[:400], rows[400:])
        assert 100 / c + 5 < h < 100 / c + 35
