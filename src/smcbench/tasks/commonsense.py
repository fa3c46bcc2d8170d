"""Commonsense reasoning family: CSQA, WinoGrande, RACE (RoBERTa) and the synthetic demo.

Row schema of the prepared JSONL files (one object per question):

* every dataset: ``id`` (unique in its file), ``question`` (str), ``choices`` (list of str, the
  same length within a dataset), ``label`` (int, index into ``choices``);
* CSQA adds ``concept`` (the question concept);
* WinoGrande adds ``sentence`` (with its ``_`` blank), ``option1``, ``option2``
  (``choices == [option1, option2]``; the released answer "1"/"2" becomes label 0/1);
* RACE adds ``article`` and ``level`` ("high"/"middle");
* the demo adds ``passage``, ``kind`` and ``subject`` (``question`` = passage + question text).

Inputs are built by hand, as fairseq built them for SMC-Bench (see the README (commonsense)):

* CSQA (and the demo): ``<s> Q: {stem} </s> A: {choice} </s>`` per choice, ranked by
  ``RobertaForMultipleChoice`` (arch ``roberta_mc``);
* RACE: ``<s> qa </s> </s> article </s>`` with qa = question with ``_`` replaced by the option
  (else question + " " + option); ``<s> qa </s>`` cut to ``option_max_tokens``, the whole to
  ``max_length`` (both cut at the end, like fairseq's ``TruncateDataset``);
* WinoGrande with arch ``roberta_mlm`` (the paper's recipe): the blank is filled with each
  option, the option's tokens are replaced by ``<mask>``, the score of an option is the mean
  masked-LM log-probability of its tokens; training loss
  ``-lp_q + alpha * max(0, lp_c - lp_q + beta)`` (q = correct option, c = the other one);
  with arch ``roberta_mc`` a multiple-choice head ranks ``<s> left+option </s> </s> right </s>``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from ..download import sha256_file
from ..io import clean_text, extract_archive, is_archive, iter_jsonl, read_json_file, read_jsonl, write_jsonl
from . import synthetic_commonsense as synth
from .base import Task, package_versions, pretrained_path

DATASETS = {"csqa", "winogrande", "race", "demo_cs_easy", "demo_cs_hard"}
ARCHS = ("roberta_mc", "roberta_mlm")
# dataset name -> how its rows are turned into token ids (a setting ``input_format`` overrides)
INPUT_FORMATS = ("csqa", "race", "winogrande")
_DEFAULT_INPUT = {"csqa": "csqa", "race": "race", "winogrande": "winogrande",
                  "demo_cs_easy": "csqa", "demo_cs_hard": "csqa"}


# ================================================================================================
# helpers shared by the loaders
# ================================================================================================



class _Reader:
    """Reads raw files, remembering each file's sha256 and every dropped record (for meta.json)."""

    def __init__(self, source: Path):
        self.source = source
        self.files: dict[str, str] = {}
        self.dropped: Counter = Counter()          # reason -> count
        self.dropped_by_file: dict[str, Counter] = {}
        self.split_files: dict[str, list[str]] = {}   # released split -> files read for it

    def _seen(self, path: Path, split: str | None) -> None:
        self.files[self._rel(path)] = sha256_file(path)
        if split is not None:
            self.split_files.setdefault(split, [])
            if str(path) not in self.split_files[split]:
                self.split_files[split].append(str(path))

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.source))
        except ValueError:
            return str(path)

    def drop(self, path: Path, reason: str) -> None:
        self.dropped[reason] += 1
        self.dropped_by_file.setdefault(self._rel(path), Counter())[reason] += 1

    def jsonl(self, path: Path, split: str | None = None) -> list[tuple[int, dict]]:
        """(line number, record) pairs; a malformed line raises naming file and line."""
        self._seen(path, split)
        return list(iter_jsonl(path))

    def parquet(self, path: Path, split: str | None = None) -> list[tuple[int, dict]]:
        """(row number, record) pairs of a parquet file (row numbers are 1-based)."""
        import pyarrow.parquet as pq

        self._seen(path, split)
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise ValueError(f"{path}: cannot read parquet file ({e})") from None
        return list(enumerate(rows, 1))

    def json_file(self, path: Path, split: str | None = None) -> dict:
        """One JSON object per file (the RACE release)."""
        self._seen(path, split)
        obj = read_json_file(path)
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected one JSON object, got {type(obj).__name__}")
        return obj

    def meta(self) -> dict:
        return {"files_sha256": dict(sorted(self.files.items())),
                "dropped": dict(sorted(self.dropped.items())),
                "dropped_by_file": {k: dict(v) for k, v in sorted(self.dropped_by_file.items())}}



def _need(rec: dict, key: str, where: str, types=(str,)):
    """``rec[key]`` checked against ``types``; text is cleaned (no BOM, length limit)."""
    if key not in rec:
        raise ValueError(f"{where}: missing key {key!r} (keys: {sorted(rec)})")
    value = rec[key]
    if not isinstance(value, types):
        raise ValueError(f"{where}: key {key!r} has type {type(value).__name__}, "
                         f"expected {'/'.join(t.__name__ for t in types)}")
    return clean_text(value, where, key) if isinstance(value, str) else value


def _texts(values, where: str, key: str) -> list[str]:
    """A list of strings (choices), each cleaned; anything else names the record."""
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}: {key!r} must be a list of strings, got {values!r:.80}")
    return [clean_text(v, where, key) for v in values]


def _parquet_files(source: Path, split: str, config: str | None = None) -> list[Path]:
    """Parquet files of ``split`` (and ``config``) in a Hub dataset snapshot.

    Accepts the layouts the Hub uses: ``<config>/<split>-00000-of-00001.parquet``,
    ``data/<split>-*.parquet`` and the converted ``<config>/<split>/0000.parquet``."""
    found = []
    for path in sorted(source.rglob("*.parquet")):
        parts = path.relative_to(source).parts
        dirs, stem = parts[:-1], path.name[: -len(".parquet")]
        if config is not None and config not in dirs:
            continue
        if stem == split or stem.startswith(split + "-") or (dirs and dirs[-1] == split):
            found.append(path)
    return found


def _carve(rows: list[dict], fraction: float, seed: int, group=lambda r: r["id"]):
    """Split ``rows`` into (train, validation), whole groups at a time, seeded.

    Groups keep related records together (the questions of one RACE passage, the two twin
    sentences of a WinoGrande pair), so validation does not leak into train."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_fraction={fraction} must be in [0, 1)")
    keys = list(dict.fromkeys(group(r) for r in rows))
    rng = random.Random(seed)
    rng.shuffle(keys)
    n_val = round(len(keys) * fraction)
    if fraction > 0 and n_val == 0 and len(keys) > 1:
        n_val = 1
    val_keys = set(keys[:n_val])
    train = [r for r in rows if group(r) not in val_keys]
    val = [r for r in rows if group(r) in val_keys]
    return train, val


def _check_choices(rows: list[dict], expected: int | None, where: str) -> None:
    for r in rows:
        n = len(r["choices"])
        if expected is not None and n != expected:
            raise ValueError(f"{where}: record {r['id']!r} has {n} choices, expected {expected}")
        if not 0 <= r["label"] < n:
            raise ValueError(f"{where}: record {r['id']!r} has label {r['label']} outside 0..{n - 1}")


# ================================================================================================
# CSQA
# ================================================================================================

def _csqa_row(rec: dict, where: str, reader: _Reader, path: Path) -> dict | None:
    """A CSQA record in either schema (original: ``question`` is a dict; HF: a string)."""
    rid = _need(rec, "id", where)
    q = rec.get("question")
    if isinstance(q, dict):  # original release
        stem = _need(q, "stem", where)
        choices_raw = _need(q, "choices", where, (list,))
        try:
            letters = [c["label"] for c in choices_raw]
            texts = _texts([c["text"] for c in choices_raw], where, "question.choices")
        except (TypeError, KeyError):
            raise ValueError(f"{where}: 'question.choices' must be a list of "
                             "{'label', 'text'} objects") from None
        concept = q.get("question_concept", "")
    elif isinstance(q, str):  # Hugging Face schema (also seen in files named like the originals)
        stem = clean_text(q, where, "question")
        choices_raw = _need(rec, "choices", where, (dict,))
        letters = list(choices_raw.get("label", []))
        texts = _texts(list(choices_raw.get("text", [])), where, "choices.text")
        if len(letters) != len(texts):
            raise ValueError(f"{where}: 'choices' has {len(letters)} labels and {len(texts)} texts")
        concept = rec.get("question_concept", "")
    else:
        raise ValueError(f"{where}: 'question' must be an object (original CSQA) or a string "
                         f"(Hugging Face schema), got {type(q).__name__}")
    answer = rec.get("answerKey") or ""
    if isinstance(answer, str):
        answer = answer.replace("\ufeff", "").strip()
    if not answer:  # hidden test labels: missing key (original) or "" (HF)
        reader.drop(path, "hidden_label")
        return None
    if answer not in letters:
        raise ValueError(f"{where}: answerKey {answer!r} is not one of the choice labels {letters}")
    return {"id": rid, "question": stem, "choices": texts, "label": letters.index(answer),
            "concept": concept}


def _load_csqa(source: Path, reader: _Reader) -> tuple[list[dict], list[dict], str]:
    """(train rows, released dev rows, layout). Test labels are hidden, so test is only counted."""
    def read(paths: list[Path], fmt: str, split: str) -> list[dict]:
        rows = []
        for path in paths:
            records = reader.parquet(path, split) if fmt == "parquet" else reader.jsonl(path, split)
            for lineno, rec in records:
                row = _csqa_row(rec, f"{path}:{lineno}", reader, path)
                if row is not None:
                    rows.append(row)
        return rows

    if any(source.rglob("*.parquet")):
        train_files, dev_files = _parquet_files(source, "train"), _parquet_files(source, "validation")
        if not train_files or not dev_files:
            raise ValueError(f"{source}: Hub snapshot of tau/commonsense_qa must hold train and "
                             "validation parquet files (e.g. data/train-00000-of-00001.parquet)")
        train, dev = read(train_files, "parquet", "train"), read(dev_files, "parquet", "dev")
        read(_parquet_files(source, "test"), "parquet", "test")  # only to count the hidden labels
        return train, dev, "hf-parquet"
    names = {"train": ["train_rand_split.jsonl", "train.jsonl"],
             "dev": ["dev_rand_split.jsonl", "valid.jsonl", "dev.jsonl"],
             "test": ["test_rand_split_no_answers.jsonl", "test.jsonl"]}
    found = {}
    for split, candidates in names.items():
        for name in candidates:
            hits = sorted(source.rglob(name))
            if hits:
                found[split] = hits[0]
                break
    if "train" not in found or "dev" not in found:
        raise ValueError(f"{source}: no CSQA files found; expected train_rand_split.jsonl and "
                         "dev_rand_split.jsonl (original release) or a Hub snapshot with parquet "
                         "files of tau/commonsense_qa")
    train, dev = read([found["train"]], "jsonl", "train"), read([found["dev"]], "jsonl", "dev")
    if "test" in found:
        read([found["test"]], "jsonl", "test")
    return train, dev, "original"


# ================================================================================================
# WinoGrande
# ================================================================================================

def _winogrande_row(rec: dict, rid: str, where: str, reader: _Reader, path: Path) -> dict | None:
    sentence = _need(rec, "sentence", where)
    o1, o2 = _need(rec, "option1", where), _need(rec, "option2", where)
    if sentence.count("_") < 1:
        raise ValueError(f"{where}: sentence has no '_' blank: {sentence!r}")
    answer = rec.get("answer", "")
    answer = "" if answer is None else str(answer).replace("\ufeff", "").strip()
    if answer == "":
        reader.drop(path, "hidden_label")
        return None
    if answer not in ("1", "2"):
        raise ValueError(f"{where}: answer {answer!r} must be the string '1' or '2'")
    return {"id": rid, "question": sentence, "sentence": sentence, "option1": o1, "option2": o2,
            "choices": [o1, o2], "label": int(answer) - 1}


def _winogrande_size(settings: dict) -> str:
    config = str(settings.get("config", "winogrande_xl"))
    size = config.removeprefix("winogrande_")
    if size not in ("xs", "s", "m", "l", "xl", "debiased"):
        raise ValueError(f"WinoGrande config {config!r} is unknown (known: winogrande_xs, _s, _m, "
                         "_l, _xl, _debiased); set settings.config in config.yaml")
    return size


def _load_winogrande(source: Path, reader: _Reader, settings: dict):
    size = _winogrande_size(settings)
    if any(source.rglob("*.parquet")):
        config = f"winogrande_{size}"
        files = {s: _parquet_files(source, s, config) for s in ("train", "validation", "test")}
        if not files["train"] or not files["validation"]:
            raise ValueError(f"{source}: Hub snapshot of allenai/winogrande has no {config}/train "
                             "and validation parquet files (check settings.config)")
        out = {}
        for split, paths in files.items():
            rows = []
            for path in paths:
                for n, rec in reader.parquet(path, "dev" if split == "validation" else split):
                    # HF drops qID; the position in the file is stable for a given snapshot
                    row = _winogrande_row(rec, f"{split}-{path.stem}-{n}", f"{path}:row {n}",
                                          reader, path)
                    if row is not None:
                        rows.append(row)
            out[split] = rows
        return out["train"], out["validation"], "hf-parquet"
    files = {"train": sorted(source.rglob(f"train_{size}.jsonl")),
             "dev": sorted(source.rglob("dev.jsonl")), "test": sorted(source.rglob("test.jsonl"))}
    if not files["train"] or not files["dev"]:
        raise ValueError(f"{source}: no WinoGrande files found; expected winogrande_1.1/"
                         f"train_{size}.jsonl and dev.jsonl, or a Hub snapshot of allenai/winogrande")
    out = {}
    for split, paths in files.items():
        rows = []
        for path in paths[:1]:
            for lineno, rec in reader.jsonl(path, split):
                where = f"{path}:{lineno}"
                rid = str(rec.get("qID") or f"{split}-{lineno}")
                row = _winogrande_row(rec, rid, where, reader, path)
                if row is not None:
                    rows.append(row)
        out[split] = rows
    return out["train"], out["dev"], "original"


def _winogrande_twin_key(row: dict) -> str:
    """Twins are written with the same two options (the answer flips with one trigger word), so
    the unordered option pair keys a group that holds every twin, in every layout (the Hub
    parquet has no qID). Unrelated questions that share an option pair join the group too;
    that only coarsens the split, it never leaks."""
    return "\x1f".join(sorted(o.strip().lower() for o in (row["option1"], row["option2"])))


def winogrande_groups(rows: list[dict]) -> dict[str, str]:
    """Row id -> group id: rows linked by the option pair or by a qID stem (``…-1`` / ``…-2``)
    are one group (union-find), so twins stay on one side of a train/validation split."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for row in rows:
        rid = row["id"]
        union("id:" + rid, "opt:" + _winogrande_twin_key(row))
        stem, sep, tail = rid.rpartition("-")
        if sep and tail.isdigit() and not rid.startswith(("train-", "validation-", "dev-", "test-")):
            union("id:" + rid, "qid:" + stem)
    return {row["id"]: find("id:" + row["id"]) for row in rows}


# ================================================================================================
# RACE
# ================================================================================================

def _race_rows(obj: dict, split: str, level: str, name: str, where: str) -> list[dict]:
    """The questions of one passage, with ids unique across levels and splits."""
    article = _need(obj, "article", where)
    questions = _need(obj, "questions", where, (list,))
    options = _need(obj, "options", where, (list,))
    answers = _need(obj, "answers", where, (list,))
    if not len(questions) == len(options) == len(answers):
        raise ValueError(f"{where}: 'questions', 'options', 'answers' have different lengths "
                         f"({len(questions)}, {len(options)}, {len(answers)})")
    rows = []
    for k, (q, opts, a) in enumerate(zip(questions, options, answers)):
        if not isinstance(q, str):
            raise ValueError(f"{where}: question {k} is {type(q).__name__}, expected a string")
        q = clean_text(q, where, f"questions[{k}]")
        opts = _texts(opts, where, f"options[{k}]")
        a = a.replace("\ufeff", "").strip() if isinstance(a, str) else a
        letters = [chr(ord("A") + i) for i in range(len(opts))]
        if a not in letters:
            raise ValueError(f"{where}: question {k} has answer {a!r}, expected one of {letters}")
        rows.append({"id": f"{split}/{level}/{name}/{k}", "question": q, "choices": list(opts),
                     "label": letters.index(a), "article": article, "level": level})
    return rows


def _load_race(source: Path, reader: _Reader):
    """{split: {level: rows}} for split in train/dev/test, level in high/middle."""
    out: dict[str, dict[str, list[dict]]] = {}
    if any(source.rglob("*.parquet")):
        for split, hf_split in (("train", "train"), ("dev", "validation"), ("test", "test")):
            for level in ("high", "middle"):
                paths = _parquet_files(source, hf_split, level)
                if not paths:
                    raise ValueError(f"{source}: Hub snapshot of ehovy/race lacks {level}/{hf_split}"
                                     " parquet files (the 'high' and 'middle' configs are needed)")
                rows = []
                seen: Counter = Counter()
                for path in paths:
                    for n, rec in reader.parquet(path, split):
                        where = f"{path}:row {n}"
                        ex = str(_need(rec, "example_id", where)).removesuffix(".txt")
                        name = ex.removeprefix(level)
                        k = seen[ex]  # questions of a passage share example_id: count them
                        seen[ex] += 1
                        for key in ("article", "question", "options", "answer"):
                            if rec.get(key) is None:
                                raise ValueError(f"{where}: missing key {key!r}")
                        obj = {"article": rec["article"], "questions": [rec["question"]],
                               "options": [rec["options"]], "answers": [rec["answer"]]}
                        row = _race_rows(obj, split, level, name, where)[0]
                        row["id"] = f"{split}/{level}/{name}/{k}"
                        rows.append(row)
                out.setdefault(split, {})[level] = rows
        return out, "hf-parquet"
    roots = [p for p in [source, *sorted(source.rglob("RACE"))] if (p / "train").is_dir()]
    if not roots:
        raise ValueError(f"{source}: no RACE release found; expected RACE/{{train,dev,test}}/"
                         "{high,middle}/*.txt or a Hub snapshot of ehovy/race")
    root = roots[0]
    for split in ("train", "dev", "test"):
        for level in ("high", "middle"):
            folder = root / split / level
            if not folder.is_dir():
                raise ValueError(f"{folder}: missing; the RACE release has {split}/{level}/")
            rows = []
            # skip macOS resource forks (._*.txt) that some re-zipped copies carry
            files = sorted((p for p in folder.glob("*.txt") if not p.name.startswith("._")),
                           key=lambda p: (len(p.stem), p.stem))
            for path in files:
                obj = reader.json_file(path, split)
                rows += _race_rows(obj, split, level, path.stem, str(path))
            out.setdefault(split, {})[level] = rows
    return out, "original"


# ================================================================================================
# prepare
# ================================================================================================

def prepare(dataset: str, source: str, out_dir: str | Path, settings: dict, fold=None) -> dict:
    """Read ``source`` and write ``out_dir/{train,validation,test}.jsonl`` (RACE adds
    ``test_high.jsonl`` and ``test_middle.jsonl``); return the meta.json dict.

    ``source`` is a folder (original release or Hub snapshot), an archive of one (``.tar.gz``,
    ``.zip``: extracted into ``out_dir/raw``) or ``"synthetic"``. CSQA and WinoGrande hide their
    test labels, so their released dev set is written as ``test.jsonl`` (the paper reports dev)
    and validation is carved from train (``settings.validation_fraction``, seeded by
    ``settings.split_seed``, default 0; WinoGrande twins and RACE passages stay on one side).
    RACE validates on its released dev set (fairseq's recipe); ``validation_source: train``
    carves it from train instead.

    Refused with a message naming the files: an empty split, a split with no labelled rows, a
    test question that also occurs in train or validation (same text and choices;
    ``settings.on_overlap: drop_from_train`` removes such rows from train/validation instead)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fraction = float(settings.get("validation_fraction", 0.1))
    split_seed = int(settings.get("split_seed", 0))
    t0 = time.perf_counter()
    if source == "synthetic":
        meta, splits = _prepare_synthetic(dataset, settings)
        origin: dict[str, str] = {}
        reader = None
    else:
        src = Path(source)
        if is_archive(src):
            src = extract_archive(src, out_dir / "raw")
        if not src.is_dir():
            raise ValueError(f"source {source!r} of dataset {dataset!r} must be a folder (original "
                             "release or Hub snapshot), an archive of one, or 'synthetic'"
                             + ("" if src.exists() else " (it does not exist)"))
        reader = _Reader(src)
        kind = str(settings.get("loader", dataset))
        if kind == "csqa":
            train, test, layout = _load_csqa(src, reader)
            _check_choices(train + test, 5, str(src))
            group = lambda r: r["id"]  # noqa: E731
            splits = {"test": test}
            origin = {"train": "train", "test": "dev"}
        elif kind == "winogrande":
            train, test, layout = _load_winogrande(src, reader, settings)
            groups = winogrande_groups(train)
            group = lambda r: groups[r["id"]]  # noqa: E731
            splits = {"test": test}
            origin = {"train": "train", "test": "dev"}
        elif kind == "race":
            race, layout = _load_race(src, reader)
            train = race["train"]["high"] + race["train"]["middle"]
            group = lambda r: r["id"].rsplit("/", 1)[0]  # noqa: E731  (one passage)
            splits = {"test": race["test"]["high"] + race["test"]["middle"],
                      "test_high": race["test"]["high"], "test_middle": race["test"]["middle"]}
            origin = {"train": "train", "test": "test", "test_high": "test", "test_middle": "test"}
            if settings.get("validation_source", "dev") == "dev":
                splits["validation"] = race["dev"]["high"] + race["dev"]["middle"]
                origin["validation"] = "dev"
            _check_choices(train + splits["test"], 4, str(src))
        else:
            raise ValueError(f"no commonsense loader for dataset {dataset!r} (known: csqa, "
                             "winogrande, race; set settings.loader to one of them)")
        splits["train"] = train
        _check_not_empty(splits, origin, reader, dataset)
        # before the carve, so dropped rows never unbalance validation
        overlap_dropped = _check_overlap(splits, origin, reader, dataset,
                                         str(settings.get("on_overlap", "error")))
        if "validation" not in splits:
            splits["train"], splits["validation"] = _carve(splits["train"], fraction, split_seed, group)
            origin["validation"] = "train"
        meta = {"dataset": dataset, "source": str(src), "layout": layout, **reader.meta(),
                "overlap_dropped": overlap_dropped}
    for name, rows in splits.items():
        if not rows:
            files = (reader.split_files.get(origin.get(name, ""), []) if reader else []) or ["(synthetic)"]
            raise ValueError(f"dataset {dataset!r}: split {name!r} is empty after preparation "
                             f"(from {', '.join(files)}); check validation_fraction and the source")
    counts = {}
    for name, rows in splits.items():
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            raise ValueError(f"dataset {dataset!r} split {name!r}: id {dup!r} is not unique")
        counts[name] = write_jsonl(out_dir / f"{name}.jsonl", rows)
    val_from = "train" if source == "synthetic" else origin.get("validation", "train")
    meta.update({"counts": counts, "validation_fraction": fraction, "split_seed": split_seed,
                 "validation_from": val_from, "seconds": round(time.perf_counter() - t0, 3)})
    return meta


def _check_not_empty(splits: dict[str, list[dict]], origin: dict[str, str], reader: _Reader,
                     dataset: str) -> None:
    """An empty released split, or one whose records all lack labels, is an error naming its files."""
    for name, rows in splits.items():
        if rows:
            continue
        files = reader.split_files.get(origin.get(name, name), [])
        hidden = sum(c.get("hidden_label", 0) for f, c in reader.dropped_by_file.items()
                     if any(str(Path(x)).endswith(f) for x in files))
        where = ", ".join(files) or f"no {origin.get(name, name)} file found"
        if hidden:
            raise ValueError(f"dataset {dataset!r}: {where}: no labelled rows ({hidden} records "
                             f"without a label); split {name!r} needs labelled records")
        raise ValueError(f"dataset {dataset!r}: {where}: split {name!r} has no records "
                         "(empty or header-only file)")


def _content_key(row: dict) -> tuple:
    """What makes two questions the same: question text, choices (and the RACE article)."""
    norm = lambda t: " ".join(t.lower().split())  # noqa: E731
    return (norm(row["question"]), tuple(norm(c) for c in row["choices"]),
            norm(row.get("article", "")))


def _check_overlap(splits: dict[str, list[dict]], origin: dict[str, str], reader: _Reader,
                   dataset: str, mode: str) -> dict[str, int]:
    """Test questions must not occur in train or validation. ``mode`` ``error`` (default)
    raises naming both files and an example; ``drop_from_train`` removes them from train/validation and
    returns the counts (recorded in meta.json)."""
    if mode not in ("error", "drop_from_train"):
        raise ValueError(f"dataset {dataset!r}: settings.on_overlap={mode!r} (known: error, drop_from_train)")
    test_keys: dict[tuple, str] = {}
    for name, rows in splits.items():
        if name.startswith("test"):
            for r in rows:
                test_keys.setdefault(_content_key(r), f"{name}:{r['id']}")
    dropped = {}
    for name in ("train", "validation"):
        rows = splits.get(name, [])
        hits = [r for r in rows if _content_key(r) in test_keys]
        if not hits:
            continue
        if mode == "drop_from_train":
            splits[name] = [r for r in rows if _content_key(r) not in test_keys]
            dropped[name] = len(hits)
            continue
        files = reader.split_files.get(origin.get(name, name), [])
        test_files = reader.split_files.get(origin.get("test", "test"), [])
        raise ValueError(
            f"dataset {dataset!r}: {len(hits)} {name} question(s) also occur in the test split "
            f"(e.g. {name} {hits[0]['id']!r} = {test_keys[_content_key(hits[0])]}); files "
            f"{', '.join(files)} vs {', '.join(test_files)}. Use a clean release, or set "
            "settings.on_overlap: drop_from_train to remove them from train/validation")
    return dropped


def _prepare_synthetic(dataset: str, settings: dict) -> tuple[dict, dict]:
    variant = settings.get("variant")
    if variant not in ("easy", "hard"):
        raise ValueError(f"dataset {dataset!r}: settings.variant={variant!r} must be 'easy' or 'hard'")
    world_seed = int(settings.get("world_seed", 0))
    n_people = int(settings.get("n_people", 60))
    n_choices = int(settings.get("n_choices", 4))
    world = synth.make_world(world_seed, n_people)
    train_subjects, test_subjects = synth.subject_split(world)
    seed = int(settings.get("data_seed", 0))
    train = synth.make_split(world, variant, int(settings.get("n_train", 600)), train_subjects,
                             seed * 2 + 1, "train", n_choices)
    test = synth.make_split(world, variant, int(settings.get("n_test", 200)), test_subjects,
                            seed * 2 + 2, "test", n_choices)
    fraction = float(settings.get("validation_fraction", 0.1))
    train, val = _carve(train, fraction, int(settings.get("split_seed", 0)))
    meta = {"dataset": dataset, "source": "synthetic", "layout": "synthetic",
            "generator": f"smcbench.tasks.synthetic_commonsense v{synth.GENERATOR_VERSION}",
            "variant": variant, "world": {"seed": world_seed, "n_people": n_people},
            "files_sha256": {}, "dropped": {}}
    return meta, {"train": train, "validation": val, "test": test}


# ================================================================================================
# pretrained models
# ================================================================================================

def make_pretrained(model_name: str, entry: dict, source: str, out_dir: str | Path) -> dict:
    """Materialize the pre-trained model: a Hub snapshot / local folder is used as is; for
    ``"synthetic"`` a word-level tokenizer and a tiny RoBERTa are built and pre-trained with MLM on
    the demo world's facts, then saved (safetensors) in ``out_dir``."""
    arch = entry.get("arch", "roberta_mc")
    if arch not in ARCHS:
        raise ValueError(f"model {model_name!r}: arch {arch!r} is unknown (known: {', '.join(ARCHS)})")
    if source != "synthetic":
        from transformers import RobertaForMaskedLM

        from .hf_checkpoint import resolve_weights

        path = Path(source)
        if not (path / "config.json").is_file():
            raise ValueError(f"model {model_name!r}: {path} has no config.json; expected a Hugging "
                             "Face model folder (e.g. a snapshot of FacebookAI/roberta-large)")
        # safetensors in place; pytorch_model.bin only: converted once, tensors only
        use, conversion = resolve_weights(model_name, path, Path(out_dir), RobertaForMaskedLM)
        return {"path": str(use), "arch": arch, "source": source, **conversion}
    return _pretrain_synthetic(model_name, entry, Path(out_dir))


def build_word_tokenizer(words: list[str]):
    """A word-level fast tokenizer with RoBERTa's special ids (<s>=0, <pad>=1, </s>=2, <unk>=3,
    <mask>=4), lower-casing, whitespace/punctuation pre-tokenization."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {w: i for i, w in enumerate(specials)}
    for w in words:
        vocab.setdefault(w.lower(), len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   cls_token="<s>", sep_token="</s>")


def _quiet_transformers():
    """Silence transformers' load reports and progress bars (they flood every job's log)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _pretrain_synthetic(model_name: str, entry: dict, out_dir: Path) -> dict:
    from transformers import RobertaConfig, RobertaForMaskedLM

    _quiet_transformers()
    s = dict(entry.get("settings") or {})
    t0, cpu0 = time.perf_counter(), time.process_time()
    world = synth.make_world(int(s.get("world_seed", 0)), int(s.get("n_people", 60)))
    tokenizer = build_word_tokenizer(world.vocabulary())
    lines = synth.pretraining_corpus(world, int(s.get("corpus_lines", 1000)),
                                     int(s.get("pretrain_seed", 0)), float(s.get("qa_fraction", 0.0)))
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=int(s.get("hidden_size", 64)),
        num_hidden_layers=int(s.get("num_hidden_layers", 2)),
        num_attention_heads=int(s.get("num_attention_heads", 4)),
        intermediate_size=int(s.get("intermediate_size", 128)),
        max_position_embeddings=int(s.get("max_position_embeddings", 130)), type_vocab_size=1,
        hidden_dropout_prob=float(s.get("hidden_dropout_prob", 0.0)),
        attention_probs_dropout_prob=float(s.get("attention_probs_dropout_prob", 0.0)),
        pad_token_id=1, bos_token_id=0, eos_token_id=2)
    g = torch.Generator().manual_seed(int(s.get("pretrain_seed", 0)))
    steps, bs = int(s.get("pretrain_steps", 500)), int(s.get("pretrain_batch_size", 8))
    mc_bs = int(s.get("reading_batch_size", 12))
    lr = float(s.get("pretrain_lr", 4e-3))
    max_len = config.max_position_embeddings - 2
    threads = torch.get_num_threads()
    # A model this small gains nothing from intra-op threads, and on a busy machine spinning
    # worker threads make it several times slower: pre-train on one thread.
    torch.set_num_threads(int(s.get("pretrain_threads", 1)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(s.get("pretrain_seed", 0)))
        model = RobertaForMaskedLM(config)
        # The auxiliary one-hop reading head (see the README (commonsense)): scores <s> of each
        # "<s> Q: passage question </s> A: choice </s>"; it is discarded after pre-training, so
        # fine-tuning starts from a fresh seeded head like the real recipe.
        reading_head = torch.nn.Sequential(torch.nn.Linear(config.hidden_size, config.hidden_size),
                                           torch.nn.Tanh(), torch.nn.Linear(config.hidden_size, 1))
        ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
        data, attn = _pad([[0] + x[: max_len - 2] + [2] for x in ids])
        reading = synth.make_split(world, "easy", int(s.get("reading_questions", 1000)), world.people,
                                   int(s.get("pretrain_seed", 0)) + 99, "pre")
        mc = encode_csqa(tokenizer, reading, max_len)
        mc_ids, mc_attn = _pad([x for r in mc for x in r])
        n_choices = len(reading[0]["choices"])
        mc_ids, mc_attn = mc_ids.view(len(reading), n_choices, -1), mc_attn.view(len(reading), n_choices, -1)
        mc_labels = torch.tensor([r["label"] for r in reading])
        params = list(model.parameters()) + list(reading_head.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
        warmup = max(1, steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: min((t + 1) / warmup, max(0.0, (steps - t) / max(1, steps - warmup))))
        model.train()
        losses, reading_acc = [], []
        for step in range(steps):
            idx = torch.randint(0, len(data), (bs,), generator=g)
            x, a = _trim(data[idx], attn[idx])
            inputs, labels = _mlm_mask(x, a, len(tokenizer), g, float(s.get("mask_prob", 0.15)))
            loss = model(input_ids=inputs, attention_mask=a, labels=labels).loss
            losses.append(loss.item())
            if mc_bs > 0:
                j = torch.randint(0, len(reading), (mc_bs,), generator=g)
                x, a = _trim(mc_ids[j].view(mc_bs * n_choices, -1), mc_attn[j].view(mc_bs * n_choices, -1))
                cls = model.roberta(input_ids=x, attention_mask=a).last_hidden_state[:, 0]
                logits = reading_head(cls).view(mc_bs, n_choices)
                loss = loss + F.cross_entropy(logits, mc_labels[j])
                reading_acc.append((logits.argmax(-1) == mc_labels[j]).float().mean().item())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    tail = losses[-max(1, len(losses) // 10):]
    return {"path": str(out_dir), "arch": entry.get("arch", "roberta_mc"), "source": "synthetic",
            "world": {"seed": world.seed, "n_people": len(world.people)},
            "vocab_size": len(tokenizer), "corpus_lines": len(lines),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "pretrain_steps": steps, "mlm_loss_first": round(losses[0], 4) if losses else None,
            "mlm_loss_last": round(sum(tail) / len(tail), 4) if tail else None,
            "reading_accuracy_last": (round(100 * sum(reading_acc[-20:]) / len(reading_acc[-20:]), 1)
                                      if reading_acc else None),
            "seconds": round(time.perf_counter() - t0, 2),
            "cpu_seconds": round(time.process_time() - cpu0, 2)}


def _mlm_mask(x: torch.Tensor, attn: torch.Tensor, vocab_size: int, g: torch.Generator,
              prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: ``prob`` of the real (non-special) tokens are targets; of those 80% become
    <mask>, 10% a random word, 10% stay."""
    special = (x <= 4) | (attn == 0)
    pick = (torch.rand(x.shape, generator=g) < prob) & ~special
    labels = torch.where(pick, x, torch.full_like(x, -100))
    r = torch.rand(x.shape, generator=g)
    inputs = x.clone()
    inputs[pick & (r < 0.8)] = 4
    rand_words = torch.randint(5, vocab_size, x.shape, generator=g)
    swap = pick & (r >= 0.8) & (r < 0.9)
    inputs[swap] = rand_words[swap]
    return inputs, labels


def _trim(ids: torch.Tensor, attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the all-padding columns at the right of a batch."""
    width = max(1, int(attn.sum(-1).max()))
    return ids[..., :width], attn[..., :width]


def _pad(seqs: list[list[int]], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(1, max((len(s) for s in seqs), default=1))
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        attn[i, : len(s)] = 1
    return ids, attn


# ================================================================================================
# input construction (token ids built by hand, as fairseq did)
# ================================================================================================

def _tok(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def encode_csqa(tokenizer, rows: list[dict], max_length: int) -> list[list[list[int]]]:
    """Per row, per choice: ``<s> Q: {question} </s> A: {choice} </s>``.

    When too long, the question is cut at its end so the answer always survives."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    qs = _tok(tokenizer, ["Q: " + r["question"] for r in rows])
    answers = _tok(tokenizer, ["A: " + c for r in rows for c in r["choices"]])
    out, k = [], 0
    for r, q in zip(rows, qs):
        seqs = []
        for _ in r["choices"]:
            a = answers[k]
            k += 1
            room = max(0, max_length - len(a) - 3)
            seqs.append(([bos] + q[:room] + [eos] + a + [eos])[:max_length])
        out.append(seqs)
    return out


def race_qa(question: str, option: str) -> str:
    """fairseq's preprocess_RACE: fill the ``_`` blank with the option, else append it."""
    return question.replace("_", option) if "_" in question else question + " " + option


def encode_race(tokenizer, rows: list[dict], max_length: int,
                option_max_tokens: int) -> list[list[list[int]]]:
    """Per row, per choice: ``<s> qa </s> </s> article </s>``; ``<s> qa </s>`` cut to
    ``option_max_tokens`` tokens, then the whole to ``max_length`` (cuts at the end)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    articles = _tok(tokenizer, [r["article"].replace("\n", " ") for r in rows])
    qas = _tok(tokenizer, [race_qa(r["question"], c) for r in rows for c in r["choices"]])
    out, k = [], 0
    for r, art in zip(rows, articles):
        seqs = []
        for _ in r["choices"]:
            option = ([bos] + qas[k] + [eos])[:option_max_tokens]
            k += 1
            seqs.append((option + [eos] + art + [eos])[:max_length])
        out.append(seqs)
    return out


def _blank_parts(sentence: str) -> tuple[str, str, str]:
    """(prefix, leading space, suffix) around the first ``_`` as fairseq's WinoGrande task cuts them."""
    i = sentence.index("_")
    before = sentence[:i]
    return before.rstrip(), (" " if before.endswith(" ") else ""), sentence[i + 1:]


def encode_winogrande_mlm(tokenizer, rows: list[dict], max_length: int):
    """Per row, per option: (ids, span) with ids = ``<s> prefix option suffix </s>`` and span the
    positions of the option's tokens (to be masked and scored)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    parts = [_blank_parts(r["sentence"]) for r in rows]
    pre = _tok(tokenizer, [p for p, _, _ in parts])
    suf = _tok(tokenizer, [s for _, _, s in parts])
    opts = _tok(tokenizer, [lead + c for (_, lead, _), r in zip(parts, rows) for c in r["choices"]])
    out, k = [], 0
    for r, p, s in zip(rows, pre, suf):
        seqs = []
        for _ in r["choices"]:
            o = opts[k]
            k += 1
            room = max_length - 2 - len(o)
            if room < 0:
                raise ValueError(f"record {r['id']!r}: option longer than max_length={max_length}")
            # keep the text around the blank: cut the prefix from the left, the suffix from the right
            n_pre = min(len(p), room // 2 if len(p) + len(s) > room else len(p))
            n_suf = min(len(s), room - n_pre)
            left = p[len(p) - n_pre:]
            ids = [bos] + left + o + s[:n_suf] + [eos]
            span = [0] * (1 + len(left)) + [1] * len(o) + [0] * (n_suf + 1)
            seqs.append((ids, span))
        out.append(seqs)
    return out


def encode_winogrande_mc(tokenizer, rows: list[dict], max_length: int):
    """Per row, per option: ``<s> left+option </s> </s> right </s>`` (blank filled, cut after it)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    lefts, rights = [], []
    for r in rows:
        i = r["sentence"].index("_")
        rights.append(r["sentence"][i + 1:].strip())
        for c in r["choices"]:
            lefts.append(r["sentence"][:i] + c)
    left_ids, right_ids = _tok(tokenizer, lefts), _tok(tokenizer, rights)
    out, k = [], 0
    for r, right in zip(rows, right_ids):
        seqs = []
        for _ in r["choices"]:
            seqs.append(([bos] + left_ids[k] + [eos, eos] + right + [eos])[:max_length])
            k += 1
        out.append(seqs)
    return out


# ================================================================================================
# the Task
# ================================================================================================

class CommonsenseTask(Task):
    """Multiple-choice commonsense reasoning with RoBERTa (see the module docstring)."""

    family = "commonsense"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, dataset, settings, data_dir, pretrained_dir, seed, device="cpu"):
        super().__init__(dataset, settings, data_dir, pretrained_dir, seed, device)
        model_entry = settings.get("model") or {}
        self.arch = model_entry.get("arch", "roberta_mc")
        if self.arch not in ARCHS:
            raise ValueError(f"model arch {self.arch!r} is unknown for the commonsense family "
                             f"(known: {', '.join(ARCHS)})")
        fmt = settings.get("input_format") or _DEFAULT_INPUT.get(dataset)
        if fmt is None:
            fmt = self._guess_format()
        if fmt not in INPUT_FORMATS:
            raise ValueError(f"dataset {dataset!r}: input_format {fmt!r} is unknown "
                             f"(known: {', '.join(INPUT_FORMATS)})")
        if self.arch == "roberta_mlm" and fmt != "winogrande":
            raise ValueError(f"dataset {dataset!r}: arch 'roberta_mlm' (masked-LM scoring) needs "
                             "WinoGrande-style rows; use arch 'roberta_mc' for this dataset")
        self.input_format = fmt
        self.mlm = self.arch == "roberta_mlm"
        self.max_length = int(settings.get("max_length", 128))
        self.option_max_tokens = int(settings.get("option_max_tokens", 128))
        self.margin_alpha = float(settings.get("margin_alpha", 5.0))
        self.margin_beta = float(settings.get("margin_beta", 0.4))
        training = settings.get("training") or {}
        self.batch_size = int(training.get("batch_size", 16))
        self.eval_batch_size = int(settings.get("eval_batch_size", 64))
        self._check_world()
        self._tokenizer = None
        self._template = None        # the loaded pre-trained model, copied by build_model
        self._head_names: list[str] = []
        self._rows: dict[str, list[dict]] = {}
        self._encoded: dict[str, dict[str, torch.Tensor]] = {}

    # --- setup helpers -------------------------------------------------------------------------
    def _guess_format(self) -> str:
        rows = self.rows("train")
        if rows and "sentence" in rows[0] and "option1" in rows[0]:
            return "winogrande"
        if rows and "article" in rows[0]:
            return "race"
        return "csqa"

    def _check_world(self) -> None:
        """The demo's datasets and model must come from the same synthetic world."""
        info_file = self.pretrained_dir / "pretrained.json"
        meta_file = self.data_dir / "meta.json"
        if not (info_file.is_file() and meta_file.is_file()):
            return
        world_model = json.loads(info_file.read_text()).get("world")
        world_data = json.loads(meta_file.read_text()).get("world")
        if world_model and world_data and world_model != world_data:
            raise ValueError(f"dataset {self.dataset!r} was generated from world {world_data} but "
                             f"the model was pre-trained on world {world_model}: set the same "
                             "world_seed / n_people in the dataset's and the model's settings")

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            _quiet_transformers()
            self._tokenizer = AutoTokenizer.from_pretrained(str(pretrained_path(self.pretrained_dir)))
        return self._tokenizer

    def rows(self, split: str) -> list[dict]:
        """The prepared rows of ``split`` (read once)."""
        if split not in self._rows:
            path = self.data_dir / f"{split}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found (splits here: "
                                        f"{sorted(p.stem for p in self.data_dir.glob('*.jsonl'))})")
            self._rows[split] = read_jsonl(path)
        return self._rows[split]

    def encoded(self, split: str) -> dict[str, torch.Tensor]:
        """Token ids of ``split`` as padded tensors (N, C, L), built once per Task."""
        if split in self._encoded:
            return self._encoded[split]
        rows = self.rows(split)
        if not rows:
            raise ValueError(f"{self.data_dir / (split + '.jsonl')} has no rows")
        n_choices = {len(r["choices"]) for r in rows}
        if len(n_choices) != 1:
            raise ValueError(f"{self.data_dir / (split + '.jsonl')}: rows have different numbers "
                             f"of choices {sorted(n_choices)}; one dataset needs one number")
        if self.mlm:
            pairs = encode_winogrande_mlm(self.tokenizer, rows, self.max_length)
            seqs = [[ids for ids, _ in r] for r in pairs]
            spans = [[sp for _, sp in r] for r in pairs]
        elif self.input_format == "csqa":
            seqs = encode_csqa(self.tokenizer, rows, self.max_length)
        elif self.input_format == "race":
            seqs = encode_race(self.tokenizer, rows, self.max_length, self.option_max_tokens)
        else:
            seqs = encode_winogrande_mc(self.tokenizer, rows, self.max_length)
        flat = [s for r in seqs for s in r]
        ids, attn = _pad(flat, self.tokenizer.pad_token_id)
        n, c = len(rows), n_choices.pop()
        out = {"input_ids": ids.view(n, c, -1), "attention_mask": attn.view(n, c, -1),
               "labels": torch.tensor([r["label"] for r in rows], dtype=torch.long)}
        if self.mlm:
            sp, _ = _pad([s for r in spans for s in r], 0)
            out["span"] = sp.view(n, c, -1).bool()
        self._encoded[split] = out
        return out

    # --- model -----------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The pre-trained RoBERTa with its head; heads missing from the checkpoint (pooler and
        classifier for ``roberta_mc``) are drawn from ``self.seed``, so repeated calls return
        bitwise-identical models. The checkpoint is read once and copied afterwards."""
        from transformers import RobertaForMaskedLM, RobertaForMultipleChoice

        if self._template is None:
            _quiet_transformers()
            cls = RobertaForMaskedLM if self.mlm else RobertaForMultipleChoice
            path = pretrained_path(self.pretrained_dir)
            model, info = cls.from_pretrained(str(path), output_loading_info=True)
            self._head_names = sorted(info.get("missing_keys") or [])
            self._template = model
        model = copy.deepcopy(self._template)
        g = torch.Generator().manual_seed(int(self.seed))
        params = dict(model.named_parameters())
        std = getattr(model.config, "initializer_range", 0.02)
        with torch.no_grad():
            for name in self._head_names:  # sorted: a fixed draw order
                p = params.get(name)
                if p is None:
                    continue
                if p.ndim >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
                elif name.endswith("bias"):
                    p.zero_()
                else:  # norm weights
                    p.fill_(1.0)
        return model.to(self.device)

    def param_groups(self, model: torch.nn.Module, lr: float, weight_decay: float) -> list[dict]:
        """As the base class, but the freshly initialized head (the parameters missing from the
        checkpoint) may train at ``settings.head_lr_multiplier`` times ``lr`` (default 1: the
        paper's single learning rate)."""
        mult = float(self.settings.get("head_lr_multiplier", 1.0))
        if mult == 1.0 or not self._head_names:
            return super().param_groups(model, lr, weight_decay)
        heads = set(self._head_names)
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                no_decay = p.ndim < 2 or "norm" in name.lower()
                groups.setdefault((name in heads, no_decay), []).append(p)
        return [{"params": ps, "lr": lr * (mult if head else 1.0),
                 "weight_decay": 0.0 if no_decay else weight_decay}
                for (head, no_decay), ps in sorted(groups.items())]

    # --- data ------------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.rows("train")) / self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffled batches of ``batch_size`` questions (the last may be smaller), seeded by
        (seed, epoch), padding trimmed per batch."""
        data = self.encoded("train")
        n = data["labels"].shape[0]
        g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(epoch))
        order = torch.randperm(n, generator=g)
        for start in range(0, n, self.batch_size):
            yield self._batch(data, order[start:start + self.batch_size])

    def _batch(self, data: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        attn = data["attention_mask"][idx]
        width = int(attn.sum(-1).max())
        out = {k: (v[idx][..., :width] if v.ndim == 3 else v[idx]) for k, v in data.items()}
        return {k: v.to(self.device) for k, v in out.items()}

    def _scores(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, C) scores of the choices: multiple-choice logits or mean masked-LM log-probs."""
        ids, attn = batch["input_ids"], batch["attention_mask"]
        b, c, length = ids.shape
        if not self.mlm:
            return model(input_ids=ids, attention_mask=attn).logits
        ids, attn, span = ids.view(-1, length), attn.view(-1, length), batch["span"].view(-1, length)
        masked = ids.masked_fill(span, self.tokenizer.mask_token_id)
        hidden = model.roberta(input_ids=masked, attention_mask=attn).last_hidden_state
        # project only the masked positions through the LM head (the vocabulary is large)
        lprobs = F.log_softmax(model.lm_head(hidden[span]).float(), dim=-1)
        token_lp = lprobs.gather(1, ids[span].unsqueeze(1)).squeeze(1)
        seq = span.nonzero()[:, 0]
        total = torch.zeros(b * c, dtype=token_lp.dtype, device=ids.device).index_add_(0, seq, token_lp)
        return (total / span.sum(1).clamp(min=1)).view(b, c)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over choices; WinoGrande-MLM: fairseq's margin ranking loss."""
        scores = self._scores(model, batch)
        labels = batch["labels"]
        if not self.mlm:
            return F.cross_entropy(scores, labels)
        return winogrande_margin_loss(scores, labels, self.margin_alpha, self.margin_beta)

    # --- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: torch.nn.Module, split: str) -> torch.Tensor:
        """Predicted choice per row of ``split`` (ties go to the first choice, as in fairseq)."""
        data = self.encoded(split)
        was_training = model.training
        model.eval()
        preds = []
        try:
            n = data["labels"].shape[0]
            # sort by length so big evaluation batches carry little padding
            lengths = data["attention_mask"].sum(-1).max(-1).values
            order = torch.argsort(lengths, stable=True)
            for start in range(0, n, self.eval_batch_size):
                idx = order[start:start + self.eval_batch_size]
                preds.append((idx, self._scores(model, self._batch(data, idx)).argmax(-1).cpu()))
        finally:
            model.train(was_training)
        out = torch.empty(data["labels"].shape[0], dtype=torch.long)
        for idx, p in preds:
            out[idx] = p
        return out

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str) -> dict[str, float]:
        """``{"accuracy": %, "n": number of questions}`` on ``split``; the accuracy is computed
        from the counts in Python floats (92 of 100 is exactly 92.0)."""
        pred = self.predict(model, split)
        labels = self.encoded(split)["labels"]
        correct, n = int((pred == labels).sum()), int(labels.numel())
        return {"accuracy": 100.0 * correct / n, "n": n}

    def baseline(self, split: str) -> dict[str, float]:
        """max(chance, rate of train's most frequent label on ``split``), in %."""
        rows = self.rows(split)
        chance = 100.0 * sum(1.0 / len(r["choices"]) for r in rows) / len(rows)
        majority_label = Counter(r["label"] for r in self.rows("train")).most_common(1)[0][0]
        majority = 100.0 * sum(r["label"] == majority_label for r in rows) / len(rows)
        return {"accuracy": max(chance, majority), "n": len(rows)}

    def signature(self) -> str:
        layout = {"csqa": "fairseq-mc", "race": "fairseq-race", "winogrande": "mc-blank"}
        inp = "fairseq-wsc-mlm" if self.mlm else layout[self.input_format]
        return (f"accuracy=100*correct/n|selection:validation|input:{inp}|arch:{self.arch}|"
                + package_versions("transformers", "tokenizers", "torch"))


def winogrande_margin_loss(scores: torch.Tensor, labels: torch.Tensor, alpha: float,
                           beta: float) -> torch.Tensor:
    """fairseq's WinoGrande loss on (B, 2) option scores, averaged over the batch:
    ``-lp_q + alpha * max(0, lp_c - lp_q + beta)`` with q the correct option, c the other."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    lp_q, lp_c = scores[rows, labels], scores[rows, 1 - labels]
    return (-lp_q + alpha * (lp_c - lp_q + beta).clamp(min=0)).mean()


TASK = CommonsenseTask
