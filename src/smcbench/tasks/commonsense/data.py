"""Commonsense family, data side: CSQA, WinoGrande and RACE readers (original releases, Hub
parquet snapshots, archives) and ``prepare``; the synthetic demo's splits. See the package
docstring for the row schema."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

from ...io import clean_text, sha256_file, extract_archive, is_archive, iter_jsonl, read_json_file, write_jsonl
from . import synthetic as synth

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
    scores = {}
    for name, rows in (("train", train), ("validation", val), ("test", test)):
        per = [synth.heuristics(r) for r in rows]
        scores[name] = {k: round(100.0 * sum(h.get(k, 0.0) for h in per) / len(per), 2)
                        for k in sorted({k for h in per for k in h})} if per else {}
    meta = {"dataset": dataset, "source": "synthetic", "layout": "synthetic", "heuristics": scores,
            "generator": f"smcbench.tasks.synthetic_commonsense v{synth.GENERATOR_VERSION}",
            "variant": variant, "world": {"seed": world_seed, "n_people": n_people},
            "files_sha256": {}, "dropped": {}}
    return meta, {"train": train, "validation": val, "test": test}


