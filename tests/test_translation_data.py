"""Translation family, data side: pair names, pivoting, temperature sampling, prepare (synthetic,
OPUS-100 original text layout and HF parquet layout), malformed-data errors."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import translation as T  # noqa: E402
from smcbench.tasks import translation_opus as O  # noqa: E402
from smcbench.tasks.base import read_jsonl  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "opus100"
SCHEMA = {"id", "src_lang", "tgt_lang", "source", "target"}


def test_opus_pair_names_are_alphabetical():
    assert T.opus_pair("cs") == "cs-en"
    assert T.opus_pair("de") == "de-en"
    assert T.opus_pair("fr") == "en-fr"
    assert T.opus_pair("zh") == "en-zh"
    assert sorted(T.opus_pair(x) for x in T.LANGUAGES) == [
        "cs-en", "de-en", "en-fr", "en-gu", "en-ja", "en-my", "en-ro", "en-ru", "en-vi", "en-zh"]


def test_pivot_directions_both_ways_through_english():
    dirs = T.pivot_directions(["fr", "cs"])
    assert dirs == [("fr", "en"), ("en", "fr"), ("cs", "en"), ("en", "cs")]
    assert len(T.pivot_directions(T.LANGUAGES)) == 20
    assert all("en" in d for d in T.pivot_directions(T.LANGUAGES))


def test_check_languages_names_the_bad_value():
    assert T.check_languages(["fr", "cs"]) == ["fr", "cs"]
    with pytest.raises(ValueError, match=r"'xx'.*known: cs, de"):
        T.check_languages(["fr", "xx"])
    with pytest.raises(ValueError, match="non-empty list"):
        T.check_languages("fr")
    with pytest.raises(ValueError, match="duplicate"):
        T.check_languages(["fr", "fr"])
    with pytest.raises(ValueError, match="English is the pivot"):
        T.check_languages(["en"])


def test_temperature_probs_formula():
    sizes = {"a": 1_000_000, "b": 24_594}
    p1 = T.temperature_probs(sizes, 1.0)
    assert p1["a"] == pytest.approx(1_000_000 / 1_024_594)
    p15 = T.temperature_probs(sizes, 1.5)
    ratio = (1_000_000 / 24_594) ** (1 / 1.5)
    assert p15["a"] / p15["b"] == pytest.approx(ratio)
    assert sum(p15.values()) == pytest.approx(1.0)
    # higher temperature flattens toward uniform; the small pair gains
    assert p1["b"] < p15["b"] < T.temperature_probs(sizes, 100.0)["b"] < 0.5
    assert T.temperature_probs({"a": 5, "b": 0}, 1.5) == {"a": 1.0, "b": 0.0}
    with pytest.raises(ValueError, match="temperature"):
        T.temperature_probs(sizes, 0)


# --- synthetic ------------------------------------------------------------------------------------
DEMO = {"world_seed": 3, "n_train_per_pair": 30, "n_validation_per_pair": 2, "n_test_per_pair": 4}


def test_synthetic_prepare_schema_pivoting_and_shared_test(tmp_path):
    m2 = T.prepare("demo_mt_2to2", "synthetic", tmp_path / "a", {**DEMO, "languages": ["fr", "cs"]})
    m10 = T.prepare("demo_mt_10to10", "synthetic", tmp_path / "b", {**DEMO, "languages": T.LANGUAGES})
    assert m2["counts"] == {"train": 2 * 2 * 30, "validation": 2 * 2 * 2, "test": 20 * 4}
    assert set(m2["counts_per_direction"]["train"]) == {"fr-en", "en-fr", "cs-en", "en-cs"}
    assert len(m2["counts_per_direction"]["test"]) == 20
    train = read_jsonl(tmp_path / "a" / "train.jsonl")
    assert all(set(r) == SCHEMA for r in train)
    assert len({r["id"] for r in train}) == len(train)
    # the two directions of a pair are the same sentences swapped
    fwd = {r["id"].split("-", 2)[2]: r for r in train if (r["src_lang"], r["tgt_lang"]) == ("fr", "en")}
    back = {r["id"].split("-", 2)[2]: r for r in train if (r["src_lang"], r["tgt_lang"]) == ("en", "fr")}
    assert fwd.keys() == back.keys()
    assert all(fwd[k]["source"] == back[k]["target"] for k in fwd)
    # one test set whatever the fine-tuning set
    assert (tmp_path / "a" / "test.jsonl").read_text() == (tmp_path / "b" / "test.jsonl").read_text()
    assert m10["counts"]["train"] == 10 * 2 * 30
    # held-out English sentences never occur in training
    test_en = {r["target"] for r in read_jsonl(tmp_path / "b" / "test.jsonl") if r["tgt_lang"] == "en"}
    train_en = {r["target"] for r in read_jsonl(tmp_path / "b" / "train.jsonl") if r["tgt_lang"] == "en"}
    assert not test_en & train_en


def test_synthetic_prepare_is_deterministic(tmp_path):
    T.prepare("d", "synthetic", tmp_path / "a", {**DEMO, "languages": ["fr"]})
    T.prepare("d", "synthetic", tmp_path / "b", {**DEMO, "languages": ["fr"]})
    for split in ("train", "validation", "test"):
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (tmp_path / "b" / f"{split}.jsonl").read_bytes()


def test_synthetic_languages_differ_in_form_not_meaning():
    from smcbench.tasks.translation_synthetic import build_world, sample_parallel
    import random

    world = build_world({"world_seed": 3})
    m = sample_parallel(world, 20, random.Random(0))
    en = [world.render(x, "en") for x in m]
    fr = [world.render(x, "fr") for x in m]
    assert en != fr and len(set(en)) == 20
    orders = {lang.order for lang in world.languages.values()}
    assert len(orders) > 1  # word order is a per-language rule


def test_prepare_rejects_folds_and_bad_languages(tmp_path):
    with pytest.raises(ValueError, match="no CV folds"):
        T.prepare("d", "synthetic", tmp_path, {**DEMO, "languages": ["fr"]}, fold=0)
    with pytest.raises(ValueError, match="'klingon'"):
        T.prepare("d", "synthetic", tmp_path, {**DEMO, "languages": ["klingon"]})


# --- OPUS-100, original text layout ---------------------------------------------------------------
def _write_text_pair(root: Path, pair: str, split_lines: dict[str, tuple[list[str], list[str]]],
                     trailing_newline: bool = True) -> Path:
    l1, l2 = pair.split("-")
    d = root / "opus-100-corpus" / "v1.0" / "supervised" / pair
    d.mkdir(parents=True, exist_ok=True)
    for split, (a, b) in split_lines.items():
        for lang, lines in ((l1, a), (l2, b)):
            text = "\n".join(lines) + ("\n" if trailing_newline else "")
            (d / f"opus.{pair}-{split}.{lang}").write_text(text, encoding="utf-8")
    return d


def _three_splits(a, b):
    # the test sentences differ from train's (an overlap is refused, see below)
    t = lambda xs: [x + " (test)" if x.strip() else x for x in xs]  # noqa: E731
    return {"train": (a, b), "dev": (a[:1], b[:1]), "test": (t(a), t(b))}


def test_text_layout_parsing_alignment_and_drops(tmp_path):
    # en-fr: English is l1; line 2 has an empty French side (dropped); U+2028 inside a line must
    # not split it; the final newline is optional
    en = ["Hello.", "Empty on the other side", "A\u2028B"]
    fr = ["Bonjour.", "  ", "A\u2028B fr"]
    _write_text_pair(tmp_path, "en-fr", _three_splits(en, fr), trailing_newline=False)
    _write_text_pair(tmp_path, "cs-en", _three_splits(["Ahoj.", "Ano."], ["Hi.", "Yes."]))
    meta = T.prepare("opus100_2to2", tmp_path, tmp_path / "out",
                     {"languages": ["fr", "cs"], "test_languages": ["fr", "cs"]})
    assert meta["layout"] == "text"
    assert meta["dropped"]["train"] == {"en-fr:empty_side": 1}
    train = read_jsonl(tmp_path / "out" / "train.jsonl")
    fr_en = [r for r in train if r["src_lang"] == "fr"]
    assert [r["source"] for r in fr_en] == ["Bonjour.", "A\u2028B fr"]
    assert [r["target"] for r in fr_en] == ["Hello.", "A\u2028B"]
    assert [r["id"] for r in fr_en] == ["fr-en-train-0", "fr-en-train-2"]  # raw line index kept
    cs_en = [r for r in train if r["src_lang"] == "cs"]  # cs-en: cs is l1
    assert [(r["source"], r["target"]) for r in cs_en] == [("Ahoj.", "Hi."), ("Ano.", "Yes.")]
    assert len(meta["sha256"]) == 2 * 3 * 2 and all(len(h) == 64 for h in meta["sha256"].values())
    assert meta["counts"]["validation"] == 4


def test_text_layout_misaligned_files_name_both(tmp_path):
    _write_text_pair(tmp_path, "en-fr", _three_splits(["a", "b"], ["a"]))
    with pytest.raises(ValueError, match=r"opus\.en-fr-train\.en has 2 lines but .*opus\.en-fr-train\.fr has 1"):
        T.prepare("d", tmp_path, tmp_path / "out", {"languages": ["fr"], "test_languages": ["fr"]})


def test_text_layout_invalid_utf8_names_file_and_line(tmp_path):
    d = _write_text_pair(tmp_path, "en-fr", _three_splits(["a", "b"], ["a", "b"]))
    (d / "opus.en-fr-train.fr").write_bytes(b"ok\n\xff bad\n")
    with pytest.raises(ValueError, match=r"opus\.en-fr-train\.fr:2: invalid UTF-8"):
        T.prepare("d", tmp_path, tmp_path / "out", {"languages": ["fr"], "test_languages": ["fr"]})


def test_missing_pair_explains_layouts(tmp_path):
    _write_text_pair(tmp_path, "en-fr", _three_splits(["a"], ["a"]))
    with pytest.raises(FileNotFoundError, match=r"'cs-en' not found.*parquet.*supervised"):
        T.prepare("d", tmp_path, tmp_path / "out", {"languages": ["fr", "cs"], "test_languages": ["fr"]})


def test_train_cap_is_a_seeded_subset(tmp_path):
    en = [f"s{i}" for i in range(50)]
    _write_text_pair(tmp_path, "en-fr", _three_splits(en, [x + "f" for x in en]))
    s = {"languages": ["fr"], "test_languages": ["fr"], "max_train_per_pair": 10, "max_test_per_pair": 5}
    m1 = T.prepare("d", tmp_path, tmp_path / "o1", s)
    T.prepare("d", tmp_path, tmp_path / "o2", s)  # same settings, second folder: must match o1
    assert m1["counts"] == {"train": 20, "validation": 2, "test": 10}
    assert m1["dropped"]["train"] == {"en-fr:over_cap_10": 40}
    assert (tmp_path / "o1" / "train.jsonl").read_text() == (tmp_path / "o2" / "train.jsonl").read_text()
    ids = [r["id"] for r in read_jsonl(tmp_path / "o1" / "test.jsonl") if r["src_lang"] == "fr"]
    assert ids == [f"fr-en-test-{i}" for i in range(5)]  # test cap: the first N, not a sample


# --- OPUS-100, HF parquet layout ------------------------------------------------------------------
def _write_parquet(path: Path, l1: str, l2: str, pairs: list[tuple[str, str]]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    col = pa.array([{l1: a, l2: b} for a, b in pairs],
                   type=pa.struct([(l1, pa.string()), (l2, pa.string())]))
    pq.write_table(pa.table({"translation": col}), path)


def test_hf_parquet_layout(tmp_path):
    pairs = [("Hello.", "Bonjour."), ("Thanks.", "Merci."), ("", "vide")]
    other = [(a + " (train)", b + " (train)") for a, b in pairs]
    for split in ("train", "validation", "test"):
        _write_parquet(tmp_path / "en-fr" / f"{split}-00000-of-00001.parquet", "en", "fr",
                       pairs if split == "test" else other)
    # the older parquet-converter layout <pair>/<split>/0000.parquet is accepted too
    for split in ("train", "validation", "test"):
        _write_parquet(tmp_path / "cs-en" / split / "0000.parquet", "cs", "en",
                       [("Ahoj.", "Hi.")] if split == "test" else [("Ano.", "Yes.")])
    meta = T.prepare("opus100_2to2", tmp_path, tmp_path / "out",
                     {"languages": ["fr", "cs"], "test_languages": ["fr", "cs"]})
    assert meta["layout"] == "parquet"
    assert meta["dropped"]["test"] == {"en-fr:empty_side": 1}
    test = read_jsonl(tmp_path / "out" / "test.jsonl")
    got = {(r["src_lang"], r["tgt_lang"], r["source"], r["target"]) for r in test}
    assert ("fr", "en", "Bonjour.", "Hello.") in got
    assert ("en", "fr", "Thanks.", "Merci.") in got
    assert ("cs", "en", "Ahoj.", "Hi.") in got and ("en", "cs", "Hi.", "Ahoj.") in got
    assert set(meta["sha256"]) == {f"en-fr/{s}-00000-of-00001.parquet" for s in ("train", "validation", "test")} | {
        f"cs-en/{s}/0000.parquet" for s in ("train", "validation", "test")}


def test_hf_parquet_wrong_keys(tmp_path):
    for split in ("train", "validation", "test"):
        _write_parquet(tmp_path / "en-fr" / f"{split}.parquet", "en", "de", [("a", "b")])
    with pytest.raises(ValueError, match=r"keys \['en', 'de'\], expected 'en' and 'fr'"):
        T.prepare("d", tmp_path, tmp_path / "out", {"languages": ["fr"], "test_languages": ["fr"]})


# --- real records ---------------------------------------------------------------------------------
@pytest.mark.skipif(not REAL.is_dir(), reason="real OPUS-100 samples not available")
def test_real_opus100_samples(tmp_path):
    meta = T.prepare("opus100_10to10", REAL, tmp_path, {"languages": T.LANGUAGES})
    assert meta["layout"] == "text"
    assert meta["counts"] == {"train": 40, "validation": 40, "test": 40}
    assert len(meta["counts_per_direction"]["test"]) == 20
    assert len(meta["sha256"]) == 60
    rows = read_jsonl(tmp_path / "test.jsonl")
    assert all(set(r) == SCHEMA and r["source"] and r["target"] for r in rows)
    # en-fr: the first training line of the release, French side from the .fr file
    train = read_jsonl(tmp_path / "train.jsonl")
    first = next(r for r in train if r["id"] == "en-fr-train-0")
    assert first["source"] == "The time now is 05:08 ." and first["tgt_lang"] == "fr"
    # cs-en has Czech as l1: the source of cs->en is the .cs file's line
    cs = next(r for r in train if r["id"] == "cs-en-train-0")
    assert cs["src_lang"] == "cs" and cs["tgt_lang"] == "en"
    json.dumps(meta)  # meta must be JSON-serializable


def test_read_lines_newlines(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes("a\r\nb\u2028c\nlast".encode("utf-8"))
    assert O.read_lines(f) == ["a", "b\u2028c", "last"]
    f.write_bytes(b"a\n\nb\n")
    assert O.read_lines(f) == ["a", "", "b"]  # an empty line keeps its place (alignment)
