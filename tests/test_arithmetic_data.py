"""Arithmetic data: real SVAMP-repository files (skipped when absent), folds, synthetic demo sets,
bad-input errors."""

import json
from pathlib import Path

import pytest

from smcbench.tasks import arithmetic as A
from smcbench.tasks.arithmetic.equations import evaluate_prefix, values_match
from smcbench.tasks.arithmetic.synthetic import VARIANTS, generate, vocabulary
from smcbench.tasks.base import read_jsonl

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
HEADER = "Question,Numbers,Equation,Answer,group_nums,Body,Ques_Statement\n"


def _needs(path: Path):
    if not path.exists():
        pytest.skip(f"real samples not available at {path}")


def _ids(path):
    return {r["id"] for r in read_jsonl(path)}


@pytest.mark.parametrize("dataset, sub, fold", [("mawps", "mawps", 0), ("asdiv_a", "asdiv_a", 4)])
def test_real_cv_fold(tmp_path, dataset, sub, fold):
    _needs(REAL / sub)
    meta = A.prepare(dataset, REAL / sub, tmp_path, {"validation_fraction": 0.1}, fold=fold)
    assert meta["counts"]["test"] == 20 and meta["counts"]["train"] + meta["counts"]["validation"] == 20
    assert meta["test_file"].endswith(f"fold{fold}/dev.csv")
    assert len(meta["sha256"]) == 2
    train, val, test = (read_jsonl(tmp_path / f"{s}.jsonl") for s in ("train", "validation", "test"))
    assert _ids(tmp_path / "train.jsonl").isdisjoint(_ids(tmp_path / "validation.jsonl"))
    for row in train + val + test:
        assert set(row) >= {"id", "question", "numbers", "equation", "answer"}
        masks = {int(t[6:]) for t in row["question"].split() if t.startswith("number") and t[6:].isdigit()}
        assert all(k < len(row["numbers"]) for k in masks)
        assert values_match(evaluate_prefix(row["equation"], row["numbers"]), row["answer"])
    # the first MAWPS fold-0 train row: "Mary is baking a cake ... number0 cups ... number1 cups"
    if dataset == "mawps":
        mary = [r for r in train + val if r["question"].startswith("Mary is baking")][0]
        assert mary["numbers"] == [8.0, 2.0] and mary["equation"] == ["-", "number0", "number1"]
        assert mary["answer"] == 6.0 and mary["group_nums"][:3] == [8, 9, 10]


def test_real_data_root_accepts_repo_root_or_data_folder(tmp_path):
    _needs(REAL / "asdiv_a")
    a = A.prepare("asdiv_a", REAL / "asdiv_a", tmp_path / "a", {}, fold=1)
    b = A.prepare("asdiv_a", REAL / "asdiv_a" / "data", tmp_path / "b", {}, fold=1)
    assert a["counts"] == b["counts"] and a["sha256"] == b["sha256"]


def test_real_svamp(tmp_path):
    _needs(REAL / "svamp")
    meta = A.prepare("svamp", REAL / "svamp", tmp_path, {"validation_fraction": 0.1})
    assert meta["counts"]["test"] == 50 and meta["counts"]["train"] + meta["counts"]["validation"] == 49
    test = read_jsonl(tmp_path / "test.jsonl")
    # SVAMP's question-reversal variation: same body, operands swapped
    assert test[0]["equation"] == ["-", "number0", "number1"] and test[1]["equation"] == ["-", "number1", "number0"]


def test_fold_handling_errors(tmp_path):
    _needs(REAL / "mawps")
    with pytest.raises(ValueError, match="5-fold.*--fold K"):
        A.prepare("mawps", REAL / "mawps", tmp_path, {}, fold=None)
    with pytest.raises(ValueError, match="0..4"):
        A.prepare("mawps", REAL / "mawps", tmp_path, {}, fold=5)
    with pytest.raises(ValueError, match="has no folds"):
        A.prepare("svamp", REAL / "svamp", tmp_path, {}, fold=0)


def test_missing_layout_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="data/cv_mawps"):
        A.prepare("mawps", tmp_path, tmp_path / "out", {}, fold=0)


def _write_fold(root: Path, rows: list[str]) -> Path:
    d = root / "data" / "cv_mawps" / "fold0"
    d.mkdir(parents=True)
    ok = 'A has number0 pens and number1 cups . How many ?,3.0 4.0,+ number0 number1,7,"[2, 3]",b,q\n'
    (d / "train.csv").write_text(HEADER + ok * 3 + "".join(rows))
    (d / "dev.csv").write_text(HEADER + ok.replace("A has", "B has"))
    return root


def test_malformed_equation_names_file_row_field(tmp_path):
    root = _write_fold(tmp_path, ['A has number0 pens . How many ?,3.0,+ number0,3,"[2]",b,q\n'])
    with pytest.raises(ValueError, match=r"train\.csv: row 5: field 'Equation'.*incomplete"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)


def test_mask_without_value_names_file_row_field(tmp_path):
    root = _write_fold(tmp_path, ['What number is number2 ?,3.0,+ number0 number0,6,"[2]",b,q\n'])
    with pytest.raises(ValueError, match=r"train\.csv: row 5: field 'Question' has mask number2 without a value"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)


def test_gold_division_by_zero_is_dropped_and_counted(tmp_path):
    root = _write_fold(tmp_path, ['A number0 B number1 ?,3.0 0.0,/ number0 number1,0,"[1]",b,q\n'])
    meta = A.prepare("mawps", root, tmp_path / "out", {}, fold=0)
    assert meta["dropped"]["train"] == {"gold equation undefined (division by zero)": 1}
    assert meta["counts"]["train"] + meta["counts"]["validation"] == 3


# --- synthetic -------------------------------------------------------------------------------
def test_synthetic_rows_are_consistent():
    words = set(vocabulary())
    for variant in VARIANTS:
        for row in generate(200, variant, 3, variant):
            assert values_match(evaluate_prefix(row["equation"], row["numbers"]), row["answer"])
            assert set(row["question"].split()) <= words
            masks = [t for t in row["question"].split() if t.startswith("number")]
            assert masks == [f"number{k}" for k in range(len(row["numbers"]))]
    assert generate(5, "svamp", 1, "x") == generate(5, "svamp", 1, "x")


def test_synthetic_folds_partition_the_pool(tmp_path):
    settings = {"variant": "mawps", "world_seed": 7, "n_problems": 100, "n_folds": 5, "validation_fraction": 0.2}
    tests = []
    for k in range(5):
        meta = A.prepare("demo_mawps", "synthetic", tmp_path / str(k), settings, fold=k)
        assert meta["counts"] == {"train": 64, "validation": 16, "test": 20}
        test_ids = _ids(tmp_path / str(k) / "test.jsonl")
        train_ids = _ids(tmp_path / str(k) / "train.jsonl") | _ids(tmp_path / str(k) / "validation.jsonl")
        assert test_ids.isdisjoint(train_ids)
        tests.append(test_ids)
    assert len(set().union(*tests)) == 100
    assert json.dumps(A.prepare("demo_mawps", "synthetic", tmp_path / "again", settings, fold=2)["counts"])
    assert read_jsonl(tmp_path / "again" / "train.jsonl") == read_jsonl(tmp_path / "2" / "train.jsonl")


def test_synthetic_svamp_is_harder_than_its_training_union(tmp_path):
    meta = A.prepare("demo_svamp", "synthetic", tmp_path, {"n_train": 200, "n_test": 200})
    assert meta["variant"] == "svamp" and meta["counts"]["test"] == 200
    with pytest.raises(ValueError, match="has no folds"):
        A.prepare("demo_svamp", "synthetic", tmp_path / "x", {}, fold=0)
    train = read_jsonl(tmp_path / "train.jsonl")
    test = read_jsonl(tmp_path / "test.jsonl")

    def distractor_rate(rows):  # a quantity the equation does not use
        return sum(len(r["numbers"]) > len({t for t in r["equation"] if t.startswith("number")})
                   for r in rows) / len(rows)

    assert distractor_rate(test) > distractor_rate(train) + 0.2


def test_real_data_from_a_repository_archive(tmp_path):
    _needs(REAL / "mawps")
    import zipfile

    archive = tmp_path / "SVAMP-abc.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in (REAL / "mawps" / "data").rglob("*.csv"):
            z.write(p, "SVAMP-abc/data/" + str(p.relative_to(REAL / "mawps" / "data")))
    a = A.prepare("mawps", archive, tmp_path / "a", {}, fold=2)
    b = A.prepare("mawps", REAL / "mawps", tmp_path / "b", {}, fold=2)
    assert a["counts"] == b["counts"]
    assert read_jsonl(tmp_path / "a" / "test.jsonl") == read_jsonl(tmp_path / "b" / "test.jsonl")
    assert a["sha256"]["cv_mawps/fold2/dev.csv"] == b["sha256"]["cv_mawps/fold2/dev.csv"]


# --- bad inputs (#16): every reader names file and line; empty and leaking splits refused -------
def test_invalid_utf8_names_file_and_line(tmp_path):
    root = _write_fold(tmp_path, [])
    f = root / "data" / "cv_mawps" / "fold0" / "train.csv"
    f.write_bytes(f.read_bytes() + b'Caf\xe9 has number0 pens . How many ?,3.0,number0,3,"[2]",b,q\n')
    with pytest.raises(ValueError, match=r"train\.csv:5: invalid UTF-8 \(byte 0xe9 at column 4\)"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)


def test_bom_is_ignored(tmp_path):
    root = _write_fold(tmp_path, [])
    f = root / "data" / "cv_mawps" / "fold0" / "dev.csv"
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert A.prepare("mawps", root, tmp_path / "out", {}, fold=0)["counts"]["test"] == 1


def test_huge_field_is_a_clear_error(tmp_path):
    root = _write_fold(tmp_path, ['"' + "x" * 10_000_000 + '",3.0,number0,3,"[2]",b,q\n'])
    with pytest.raises(ValueError, match=r"train\.csv: line \d+: malformed CSV: .*field larger"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)


def test_empty_or_header_only_split_is_an_error(tmp_path):
    root = _write_fold(tmp_path, [])
    (root / "data" / "cv_mawps" / "fold0" / "dev.csv").write_text(HEADER)
    with pytest.raises(ValueError, match=r"fold0/dev\.csv: no usable problem"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)
    (root / "data" / "cv_mawps" / "fold0" / "dev.csv").write_text("")
    with pytest.raises(ValueError, match=r"fold0/dev\.csv: no usable problem"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)
    # zero labelled rows: every gold equation undefined
    (root / "data" / "cv_mawps" / "fold0" / "dev.csv").write_text(
        HEADER + 'A number0 B number1 ?,3.0 0.0,/ number0 number1,0,"[1]",b,q\n')
    with pytest.raises(ValueError, match=r"dev\.csv: no usable problem \(1 dropped"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)


def test_train_test_overlap_is_an_error_or_dropped_on_request(tmp_path):
    root = _write_fold(tmp_path, [])
    d = root / "data" / "cv_mawps" / "fold0"
    (d / "dev.csv").write_text((d / "train.csv").read_text().splitlines()[0] + "\n" +
                               (d / "train.csv").read_text().splitlines()[1] + "\n")
    with pytest.raises(ValueError, match=r"fold0/dev\.csv: 3 test problem\(s\) also in train"):
        A.prepare("mawps", root, tmp_path / "out", {}, fold=0)
    # a different case or spacing is still the same problem
    same = 'a HAS  number0 pens and number1 cups . How many ?,3.0 4.0,+ number0 number1,7,"[2]",b,q\n'
    other = 'C has number0 dogs and number1 cats . How many ?,3.0 4.0,+ number0 number1,7,"[2]",b,q\n'
    (d / "train.csv").write_text(HEADER + same + other * 2)
    meta = A.prepare("mawps", root, tmp_path / "out", {"on_overlap": "drop_from_train"}, fold=0)
    assert meta["train_dropped_as_test_problem"] == 1
    assert meta["counts"]["train"] + meta["counts"]["validation"] == 2


def test_archive_damaged_or_html_is_a_clear_error(tmp_path):
    html = tmp_path / "svamp.zip"
    html.write_text("<html>404</html>")
    with pytest.raises(ValueError, match=r"svamp\.zip: neither a folder nor a zip/tar archive"):
        A.prepare("svamp", html, tmp_path / "out", {})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        A.prepare("svamp", tmp_path / "nope", tmp_path / "out", {})


def test_real_data_from_a_tar_archive(tmp_path):
    _needs(REAL / "svamp")
    import tarfile

    archive = tmp_path / "SVAMP-abc.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(REAL / "svamp" / "data", arcname="SVAMP-abc/data")
    a = A.prepare("svamp", archive, tmp_path / "a", {})
    b = A.prepare("svamp", REAL / "svamp", tmp_path / "b", {})
    assert a["counts"] == b["counts"]
    assert read_jsonl(tmp_path / "a" / "test.jsonl") == read_jsonl(tmp_path / "b" / "test.jsonl")
