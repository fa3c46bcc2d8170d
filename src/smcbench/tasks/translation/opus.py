"""Read OPUS-100 (en-centric, v1.0) from a local folder, in either of its two layouts.

* **HF snapshot** of ``Helsinki-NLP/opus-100`` (what ``snapshot_download(repo_type="dataset")``
  writes): ``<root>/<pair>/<split>-00000-of-00001.parquet`` (older revisions:
  ``<pair>/<split>/0000.parquet`` or ``<pair>/opus100-<split>.parquet``), one column
  ``translation`` = struct ``{<l1>: str, <l2>: str}``; splits ``train``, ``validation``, ``test``.
* **Original release**: ``<root>/[opus-100-corpus/v1.0/supervised/]<pair>/opus.<pair>-{train,dev,
  test}.{l1,l2}``, plain UTF-8, one sentence per line, the two files of a split line-aligned
  (``dev`` is the validation split). The last line may or may not end with a newline.

``<pair>`` is the two ISO codes in alphabetical order (``cs-en``, ``en-fr``). Dropped records:
pairs with an empty side (after stripping whitespace) — counted per split and reason in the meta.
Settings: ``max_train_per_pair`` (seeded random subset, ``sample_seed``; null = all),
``max_validation_per_pair`` (first N, default 500 — selection only needs a stable sample),
``max_test_per_pair`` (first N; null = the full 2,000).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from ...io import clean_text, read_text_lines, sha256_file
from . import PIVOT, SPLITS
from .directions import iter_directional_rows, opus_pair

_SPLIT_RE = re.compile(r"(?:^|[/_.-])(train|validation|test)(?:[/_.-]|$)")
_TEXT_SPLIT = {"train": "train", "validation": "dev", "test": "test"}




def read_lines(path: Path) -> list[str]:
    """Lines of an OPUS-100 text file (see :func:`smcbench.io.read_text_lines`: ``\\n`` only,
    optional final newline, BOMs removed, invalid UTF-8 named by file and line)."""
    return read_text_lines(path)


def find_layout(root: Path, pair: str) -> tuple[str, dict[str, Any]]:
    """Locate ``pair``'s files under ``root``: ("parquet", {split: [files]}) or
    ("text", {split: (file_l1, file_l2)}). Raises FileNotFoundError describing both layouts."""
    l1, l2 = pair.split("-")
    parquet: dict[str, list[Path]] = {}
    for d in [root / pair, *sorted(root.glob(f"*/{pair}"))]:
        for f in sorted(d.rglob("*.parquet")) if d.is_dir() else []:
            m = _SPLIT_RE.search(f.relative_to(d).as_posix())
            if m:
                parquet.setdefault(m.group(1), []).append(f)
        if parquet:
            return "parquet", parquet
    text: dict[str, tuple[Path, Path]] = {}
    for split, name in _TEXT_SPLIT.items():
        hits = sorted(root.rglob(f"opus.{pair}-{name}.{l1}"))
        if hits:
            text[split] = (hits[0], hits[0].with_name(f"opus.{pair}-{name}.{l2}"))
    if text:
        return "text", text
    raise FileNotFoundError(
        f"OPUS-100 pair {pair!r} not found under {root}: expected the HF snapshot layout "
        f"{root}/{pair}/<split>-*.parquet or the original {root}/.../supervised/{pair}/"
        f"opus.{pair}-train.{l1}; download it with `python -m smcbench download` "
        "(Helsinki-NLP/opus-100) or point `source` at the extracted opus-100-corpus folder")


def _read_parquet(files: list[Path], l1: str, l2: str) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    out: list[tuple[str, str]] = []
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise ValueError(f"{f}: cannot read parquet file ({type(e).__name__}: {e})") from None
        if "translation" not in table.column_names:
            raise ValueError(f"{f}: no 'translation' column (columns: {table.column_names}); expected "
                             "the Helsinki-NLP/opus-100 parquet schema")
        col = table.column("translation").combine_chunks()
        names = [col.type.field(i).name for i in range(col.type.num_fields)]
        if l1 not in names or l2 not in names:
            raise ValueError(f"{f}: translation struct has keys {names}, expected {l1!r} and {l2!r}")
        a, b = col.field(l1).to_pylist(), col.field(l2).to_pylist()
        for i, (x, y) in enumerate(zip(a, b)):
            if not isinstance(x, str) or not isinstance(y, str):
                raise ValueError(f"{f}: row {i}: translation.{l1 if not isinstance(x, str) else l2} is "
                                 f"{x if not isinstance(x, str) else y!r}, expected a string")
            out.append((clean_text(x, f"{f}: row {i}", f"translation.{l1}"),
                        clean_text(y, f"{f}: row {i}", f"translation.{l2}")))
    return out


def read_pair(root: Path, pair: str, splits: tuple[str, ...] = SPLITS,
              optional: tuple[str, ...] = ()) -> tuple[dict[str, list[tuple[str, str]]], dict[str, str],
                                                       str, dict[str, list[Path]]]:
    """The ``splits`` of ``pair`` (plus those of ``optional`` that exist) as aligned (l1, l2)
    sentence tuples, the sha256 of every raw file read (keyed by its path relative to ``root``),
    the layout name and the files of each split read. A snapshot may hold only the splits a
    dataset needs (e.g. the test split of a language used only for testing)."""
    l1, l2 = pair.split("-")
    layout, files = find_layout(root, pair)
    data, hashes, split_paths = {}, {}, {}
    for split in SPLITS:
        if split not in splits and (split not in optional or split not in files):
            continue
        if split not in files:
            raise FileNotFoundError(f"OPUS-100 pair {pair!r} under {root} has no {split!r} split "
                                    f"(found: {sorted(files)})")
        if layout == "parquet":
            data[split] = _read_parquet(files[split], l1, l2)
            paths = files[split]
        else:
            f1, f2 = files[split]
            if not f2.is_file():
                raise FileNotFoundError(f"{f2} is missing (its aligned file {f1} exists)")
            a, b = read_lines(f1), read_lines(f2)
            if len(a) != len(b):
                raise ValueError(f"{f1} has {len(a)} lines but {f2} has {len(b)}: the two sides of an "
                                 "OPUS-100 split must be line-aligned; re-extract the archive")
            data[split] = list(zip(a, b))
            paths = [f1, f2]
        split_paths[split] = list(paths)
        for p in paths:
            hashes[p.relative_to(root).as_posix()] = sha256_file(p)
    return data, hashes, layout, split_paths


def read_opus100(root: Path, languages: list[str], test_languages: list[str],
                 settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rows of every split (iterables of schema rows, see ``translation.py``) plus meta (layout,
    sha256, drops, caps).

    Train/validation come from the fine-tuning ``languages``; test from ``test_languages``.
    A split left with no sentence pairs is an error naming its files; a train or validation
    pair that also occurs in the pair's test split is an error (``settings.on_overlap: drop_from_train``
    removes it instead, counted as ``<pair>:in_test``).
    """
    if not root.is_dir():
        raise FileNotFoundError(f"OPUS-100 source {root} is not a folder")
    overlap = str(settings.get("on_overlap", "error"))
    if overlap not in ("error", "drop_from_train"):
        raise ValueError(f"translation settings.on_overlap={overlap!r} (known: error, drop_from_train)")
    caps = {"train": settings.get("max_train_per_pair"),
            "validation": settings.get("max_validation_per_pair", 500),
            "test": settings.get("max_test_per_pair")}
    seed = int(settings.get("sample_seed", 0))
    # kept sentence pairs per split, as compact (index, en, other) tuples; schema rows are
    # generated while writing, so ~17M row dicts never sit in memory at once
    chunks: dict[str, list[tuple[list, str]]] = {s: [] for s in SPLITS}
    dropped: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    hashes: dict[str, str] = {}
    layouts = set()
    for lang in sorted(set(languages) | set(test_languages)):
        pair = opus_pair(lang)
        needed = tuple(s for s in SPLITS if lang in (test_languages if s == "test" else languages))
        # the test split of a fine-tuning language is read for the overlap check when present
        data, h, layout, split_paths = read_pair(root, pair, needed, optional=("test",))
        hashes.update(h)
        layouts.add(layout)
        en_first = pair.split("-")[0] == PIVOT
        test_pairs = {(x.strip(), y.strip()) for x, y in data.get("test", [])}
        for split in SPLITS:
            if lang not in (test_languages if split == "test" else languages):
                continue
            kept = []
            in_test = 0
            for i, (x, y) in enumerate(data[split]):
                en, other = (x, y) if en_first else (y, x)
                if not en.strip() or not other.strip():
                    key = f"{pair}:empty_side"
                    dropped[split][key] = dropped[split].get(key, 0) + 1
                    continue
                if split != "test" and (x.strip(), y.strip()) in test_pairs:
                    if overlap == "error":
                        raise ValueError(
                            f"{split_paths[split][0]}: sentence pair {i + 1} also occurs in the "
                            f"test split ({', '.join(map(str, split_paths['test']))}); use a clean "
                            "release or set settings.on_overlap: drop_from_train")
                    in_test += 1
                    continue
                kept.append((i, en.strip(), other.strip()))
            if in_test:
                dropped[split][f"{pair}:in_test"] = in_test
            if not kept:
                raise ValueError(f"{', '.join(map(str, split_paths[split]))}: OPUS-100 {pair} {split} "
                                 f"split has no usable sentence pairs ({len(data[split])} read, "
                                 f"drops: {dropped[split] or 'none'})")
            cap = caps[split]
            if cap is not None and len(kept) > int(cap):
                n_before = len(kept)
                if split == "train":
                    pick = sorted(random.Random(f"{seed}-{pair}").sample(range(len(kept)), int(cap)))
                    kept = [kept[j] for j in pick]
                else:
                    kept = kept[: int(cap)]
                key = f"{pair}:over_cap_{cap}"
                dropped[split][key] = dropped[split].get(key, 0) + n_before - len(kept)
            chunks[split].append((kept, lang))
    splits = {split: _rows_of(chunks[split], split) for split in SPLITS}
    meta = {"source": str(root), "layout": "+".join(sorted(layouts)), "sha256": dict(sorted(hashes.items())),
            "dropped": dropped, "caps": caps, "sample_seed": seed}
    return splits, meta


def _rows_of(chunks: list[tuple[list, str]], split: str):
    # a function, not a nested generator expression: ``split`` must be bound now, not when the
    # rows are finally written
    for kept, lang in chunks:
        yield from iter_directional_rows(kept, lang, split)
