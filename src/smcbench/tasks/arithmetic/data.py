"""Arithmetic datasets (SMC-Bench §4): MAWPS and ASDiv-A (the SVAMP repository's pre-assigned 5-fold
CV files; a fold is one job, scores are micro-averaged over folds with ``value_correct`` /
``value_total``), SVAMP (train on MAWPS + ASDiv-A, test on the 1000 SVAMP problems) and the
synthetic demo sets. ``prepare`` is the family's contract in ``tasks/base.py``.

Row schema (``{train,validation,test}.jsonl``)::

    {"id": str, "question": str with number0.. masks, "numbers": [float, ...],
     "equation": [prefix tokens over numberK and constants], "answer": float,
     "group_nums": [word indices of quantity cells]  # optional (Graph2Tree); real data only}

``answer`` is the value of the gold equation (what the SVAMP code's metric compares against).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ...io import decoded_lines, sha256_file
from ..base import write_jsonl
from .equations import MASK_IN_TEXT_RE, EquationError, canonical_constant, check_prefix, evaluate_prefix, is_constant

from . import DATASETS  # noqa: E402  (the package declares the family's datasets)
CV_FOLDS = 5
_CV_DIRS = {"mawps": "cv_mawps", "asdiv_a": "cv_asdiv-a"}
_SVAMP_DIR = "mawps-asdiv-a_svamp"
_DEMO_VARIANT = {"demo_mawps": "mawps", "demo_asdiv": "asdiv", "demo_svamp": "svamp"}


# =============================================================================================
# prepare
# =============================================================================================


def _data_root(source: str | Path) -> Path:
    """The repository's ``data/`` folder, given the repository root or ``data/`` itself."""
    src = Path(source)
    for cand in (src / "data", src, src / "Arithmetic_Reasoning" / "data"):
        if (cand / "cv_mawps").is_dir() or (cand / "cv_asdiv-a").is_dir() or (cand / _SVAMP_DIR).is_dir():
            return cand
    raise FileNotFoundError(
        f"{src}: no SVAMP-repository data layout found (expected data/cv_mawps, data/cv_asdiv-a or "
        f"data/{_SVAMP_DIR}); pass the arkilpatel/SVAMP checkout or its data/ folder as --source")


def parse_csv_row(raw: dict[str, str], path: Path, rownum: int) -> dict:
    """One SVAMP-repository CSV row -> our row (without ``id``). Bad rows raise ValueError naming
    the file, the row (1-based, header = row 1) and the field."""
    where = f"{path}: row {rownum}"
    for col in ("Question", "Numbers", "Equation"):
        if raw.get(col) is None:
            raise ValueError(f"{where}: missing column {col!r} (columns: {', '.join(raw)})")
    question = " ".join(raw["Question"].split())
    try:
        numbers = [float(x) for x in raw["Numbers"].split()]
    except ValueError:
        raise ValueError(f"{where}: field 'Numbers' = {raw['Numbers']!r} is not a list of numbers") from None
    masks = [int(m.group(1)) for m in MASK_IN_TEXT_RE.finditer(question)]
    missing = sorted({k for k in masks if k >= len(numbers)})
    if missing:
        raise ValueError(f"{where}: field 'Question' has mask number{missing[0]} without a value "
                         f"('Numbers' holds {len(numbers)} values); fix the row or drop it")
    tokens = []
    for tok in raw["Equation"].split():
        tokens.append(canonical_constant(tok) if is_constant(tok) else tok)
    try:
        check_prefix(tokens, len(numbers))
    except EquationError as e:
        raise ValueError(f"{where}: field 'Equation' = {raw['Equation']!r}: {e}") from None
    row = {"question": question, "numbers": numbers, "equation": tokens}
    gn = raw.get("group_nums")
    if gn:
        try:
            groups = ast.literal_eval(gn)  # a Python list literal; literal_eval never executes code
            row["group_nums"] = [int(x) for x in groups]
        except (ValueError, SyntaxError, TypeError):
            raise ValueError(f"{where}: field 'group_nums' = {gn!r} is not a list of integers") from None
    if raw.get("Answer") not in (None, ""):
        try:
            row["csv_answer"] = float(raw["Answer"])
        except ValueError:
            raise ValueError(f"{where}: field 'Answer' = {raw['Answer']!r} is not a number") from None
    return row


def read_svamp_csv(path: Path, id_prefix: str, data: bytes | None = None) -> tuple[list[dict], Counter]:
    """All rows of one CSV (``data``, when given, is its content, e.g. read from an archive);
    returns (rows, dropped reasons). Rows whose gold equation is undefined (division by zero)
    are dropped and counted. Malformed input (invalid UTF-8, an oversized field, a bad field)
    raises ValueError naming the file and row; a file without any usable row is an error."""
    rows, dropped = [], Counter()
    reader = csv.DictReader(decoded_lines(path if data is None else data, path))
    try:
        for i, raw in enumerate(reader, start=2):
            row = parse_csv_row(raw, path, i)
            value = evaluate_prefix(row["equation"], row["numbers"])
            if value is None:
                dropped["gold equation undefined (division by zero)"] += 1
                continue
            csv_answer = row.pop("csv_answer", None)
            if csv_answer is not None and abs(csv_answer - value) > 1e-4 * max(1.0, abs(value)):
                dropped["kept: Answer column differs from the equation's value (equation used)"] += 1
            row["answer"] = value
            row["id"] = f"{id_prefix}-{i - 1}"
            rows.append(row)
    except csv.Error as e:
        hint = (f" (a field longer than {csv.field_size_limit():,} characters: an unclosed quote, or not a SVAMP "
                "CSV)" if "field larger" in str(e) else "")
        raise ValueError(f"{path}: line {reader.line_num}: malformed CSV: {e}{hint}") from None
    if not rows:
        raise ValueError(f"{path}: no usable problem ({sum(dropped.values())} dropped: {dict(dropped) or 'none'}; "
                         "an empty or header-only file?)")
    return rows, dropped


def problem_key(row: dict) -> tuple:
    """What makes two rows the same problem: the question text (whitespace-normalized, case-folded)
    and its numbers."""
    return (" ".join(row["question"].split()).casefold(), tuple(row["numbers"]))


def check_disjoint(train: list[dict], test: list[dict], test_file: str, on_overlap: str) -> int:
    """Refuse (``on_overlap: error``, the default) or drop from ``train`` (``drop_from_train``) every
    training problem that is also a test problem; returns the number dropped."""
    test_keys = {problem_key(r): r for r in test}
    shared = [r for r in train if problem_key(r) in test_keys]
    if not shared:
        return 0
    if on_overlap == "drop_from_train":
        keep = [r for r in train if problem_key(r) not in test_keys]
        train[:] = keep
        return len(shared)
    if on_overlap != "error":
        raise ValueError(f"settings.on_overlap must be 'error' or 'drop_from_train', got {on_overlap!r}")
    r = shared[0]
    raise ValueError(f"{test_file}: {len(shared)} test problem(s) also in train, e.g. train row {r['id']!r} = test row "
                     f"{test_keys[problem_key(r)]['id']!r} ({r['question'][:60]!r}); set settings.on_overlap: "
                     "drop_from_train to train without them")


def carve_validation(train: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Split ``train`` into (train, validation) with a seeded shuffle; validation never comes from test."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    order = list(range(len(train)))
    random.Random(f"validation:{seed}").shuffle(order)
    n_val = max(1, round(fraction * len(train)))
    val_idx = set(order[:n_val])
    return ([r for i, r in enumerate(train) if i not in val_idx], [r for i, r in enumerate(train) if i in val_idx])


def _check_fold(dataset: str, fold: int | None, n_folds: int | None) -> None:
    if n_folds is None:
        if fold is not None:
            raise ValueError(f"dataset {dataset!r} has no folds, but fold={fold} was given (drop --fold)")
        return
    if fold is None or not 0 <= int(fold) < n_folds:
        raise ValueError(f"dataset {dataset!r} is {n_folds}-fold cross-validated: pass --fold K with K in "
                         f"0..{n_folds - 1} (got {fold!r})")


def prepare(dataset: str, source: str | Path, out_dir: str | Path, settings: dict[str, Any],
            fold: int | None = None) -> dict:
    """Write ``out_dir/{train,validation,test}.jsonl`` for ``dataset`` (one fold for CV datasets)
    and return the ``meta.json`` dict."""
    if dataset not in DATASETS and settings.get("variant") is None:
        raise ValueError(f"unknown arithmetic dataset {dataset!r} (known: {', '.join(sorted(DATASETS))})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frac = float(settings.get("validation_fraction", 0.1))
    split_seed = int(settings.get("split_seed", 0))
    t0 = time.time()
    if str(source) == "synthetic":
        splits, meta = _prepare_synthetic(dataset, settings, fold)
        # a generated pool may repeat a problem; it never counts as a leak, it is dropped from train
        on_overlap = "drop_from_train"
    else:
        splits, meta = _prepare_real(dataset, Path(source), fold)
        on_overlap = str(settings.get("on_overlap", "error"))
    meta["train_dropped_as_test_problem"] = check_disjoint(
        splits["train"], splits["test"], meta.pop("test_path", "test"), on_overlap)
    train, validation = carve_validation(splits.pop("train"), frac, split_seed + (fold or 0))
    splits = {"train": train, "validation": validation, **splits}
    counts = {name: write_jsonl(out_dir / f"{name}.jsonl", rows) for name, rows in splits.items()}
    meta.update(dataset=dataset, fold=fold, counts=counts, validation_fraction=frac, split_seed=split_seed,
                validation_from="train (seeded shuffle)", seconds=round(time.time() - t0, 3),
                row_schema="id, question (number0.. masks), numbers, equation (prefix), answer, [group_nums]")
    return meta


def _prepare_real(dataset: str, source: Path, fold: int | None) -> tuple[dict, dict]:
    if dataset in _CV_DIRS:
        _check_fold(dataset, fold, CV_FOLDS)
        folder = f"{_CV_DIRS[dataset]}/fold{int(fold)}"
        rel = {"train": f"{folder}/train.csv", "test": f"{folder}/dev.csv"}
    elif dataset == "svamp":
        _check_fold(dataset, fold, None)
        rel = {"train": f"{_SVAMP_DIR}/train.csv", "test": f"{_SVAMP_DIR}/dev.csv"}
    else:
        raise ValueError(f"dataset {dataset!r} has no real source (use source: synthetic for demo datasets)")
    if not source.exists():
        raise FileNotFoundError(f"{source}: source does not exist (a SVAMP repository folder, its data/ folder or "
                                "an archive of it)")
    if source.is_file():
        texts, sha, root = _read_from_archive(source, rel)
    else:
        root = _data_root(source)
        texts, sha = {}, {}
        for name, r in rel.items():
            path = root / r
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (expected the SVAMP repository's data layout under {root})")
            texts[name] = None
            sha[r] = sha256_file(path)
    splits, dropped = {}, {}
    for name, r in rel.items():
        rows, drop = read_svamp_csv(Path(str(root)) / r, f"{dataset}{'' if fold is None else f'-fold{fold}'}-{name}",
                                    texts[name])
        splits[name] = rows
        dropped[name] = dict(drop)
    return splits, {"source": str(source), "data_root": str(root), "sha256": sha, "dropped": dropped,
                    "test_file": rel["test"], "test_path": str(Path(str(root)) / rel["test"])}


def _read_from_archive(archive: Path, rel: dict[str, str]) -> tuple[dict, dict, str]:
    """The CSVs of ``rel`` from an archive of the SVAMP repository (GitHub's ``.zip`` or
    ``.tar.gz``: ``<top>/data/...``), as bytes."""
    import tarfile
    import zipfile

    texts, sha = {}, {"<archive>": sha256_file(archive)}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                members = {n: (lambda n=n: z.read(n)) for n in z.namelist()}
                texts, root = _pick_members(archive, members, rel)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                members = {m.name: (lambda m=m: t.extractfile(m).read()) for m in t.getmembers() if m.isfile()}
                texts, root = _pick_members(archive, members, rel)
        else:
            raise ValueError(f"{archive}: neither a folder nor a zip/tar archive (a truncated download or an HTML "
                             "error page?); delete it and download again, or give the repository folder")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise ValueError(f"{archive}: damaged archive ({type(e).__name__}: {e}); delete it and download again") from None
    for name, r in rel.items():
        sha[r] = hashlib.sha256(texts[name]).hexdigest()
    return texts, sha, f"{archive}!{root}"


def _pick_members(archive: Path, members: dict, rel: dict[str, str]) -> tuple[dict, str]:
    texts, root = {}, ""
    for name, r in rel.items():
        hits = sorted(n for n in members if n.endswith("data/" + r))
        if not hits:
            raise FileNotFoundError(f"{archive}: no member ending in data/{r} (expected an archive of the "
                                    "arkilpatel/SVAMP repository)")
        texts[name] = members[hits[0]]()
        root = hits[0][: -len(r)]
    return texts, root


def _prepare_synthetic(dataset: str, settings: dict, fold: int | None) -> tuple[dict, dict]:
    from .synthetic import generate

    variant = settings.get("variant", _DEMO_VARIANT.get(dataset))
    seed = int(settings.get("world_seed", 0))
    if variant == "svamp":
        _check_fold(dataset, fold, None)
        n_train, n_test = int(settings.get("n_train", 400)), int(settings.get("n_test", 200))
        train = (generate(n_train // 2, "mawps", seed, "train-m") +
                 generate(n_train - n_train // 2, "asdiv", seed, "train-a"))
        test = generate(n_test, "svamp", seed + 1, "test")
        desc = "train: union of the mawps- and asdiv-like generators; test: svamp-like variations"
    elif variant in ("mawps", "asdiv"):
        n_folds = int(settings.get("n_folds", CV_FOLDS))
        _check_fold(dataset, fold, n_folds)
        pool = generate(int(settings.get("n_problems", 500)), variant, seed, variant)
        test = pool[int(fold)::n_folds]  # fold k = every n_folds-th problem from k (pre-assigned)
        train = [r for i, r in enumerate(pool) if i % n_folds != int(fold)]
        desc = f"{n_folds}-fold cross-validation over one generated pool; test = fold {fold}"
    else:
        raise ValueError(f"dataset {dataset!r}: unknown synthetic variant {variant!r} (set settings.variant to "
                         "mawps, asdiv or svamp)")
    return {"train": train, "test": test}, {"source": "synthetic", "variant": variant, "world_seed": seed,
                                            "generator": "smcbench.tasks.arithmetic.synthetic", "description": desc,
                                            "sha256": {}, "dropped": {}}
