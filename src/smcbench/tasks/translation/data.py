"""Translation family, data side: ``prepare`` (synthetic demo world or OPUS-100 in either
layout, or its archive) writing ``{train,validation,test}.jsonl``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...io import extract_archive, is_archive, write_jsonl
from . import LANGUAGES, PIVOT, SPLITS
from .directions import check_languages, directional_rows

# --- prepare ------------------------------------------------------------------------------------
def prepare(dataset: str, source: str | Path, out_dir: str | Path, settings: dict[str, Any],
            fold: int | None = None) -> dict[str, Any]:
    """Write ``out_dir/{train,validation,test}.jsonl`` for a translation dataset.

    ``source`` is ``"synthetic"`` (demo world, see ``translation_synthetic``) or a local folder in
    the HF ``Helsinki-NLP/opus-100`` snapshot layout (parquet) or the original
    ``opus-100-corpus/v1.0/supervised/<pair>/`` layout (or that release's archive). Settings: ``languages`` (fine-tuning
    set), ``test_languages`` (default: all ten), caps per pair (see ``translation_opus``).
    Returns the meta dict (source, sha256 of raw files, counts, drops)."""
    if fold is not None:
        raise ValueError(f"translation datasets have no CV folds (got fold={fold}); "
                         "remove `folds` from the dataset's config entry")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    languages = check_languages(settings.get("languages"))
    test_languages = check_languages(settings.get("test_languages", LANGUAGES), "test_languages")
    if str(source) == "synthetic":
        splits, meta = _synthetic_splits(settings, languages, test_languages)
    else:
        from .opus import read_opus100

        root = Path(source)
        if is_archive(root):  # e.g. opus-100-corpus-v1.0.tar.gz as the publisher ships it
            root = extract_archive(root, out_dir / "raw")
        splits, meta = read_opus100(root, languages, test_languages, settings)
    counts, per_direction = {}, {}
    for split in SPLITS:
        tally: dict[str, int] = {}
        # rows are streamed to disk (the real 10-to-10 train split is ~17M rows) and counted
        # per direction on the way
        counts[split] = write_jsonl(out_dir / f"{split}.jsonl", _tallied(splits[split], tally))
        per_direction[split] = dict(sorted(tally.items()))
    return {"dataset": dataset, "family": "translation", "languages": languages,
            "test_languages": test_languages, **meta, "counts": counts,
            "counts_per_direction": per_direction}


def _tallied(rows, tally: dict[str, int]):
    for r in rows:
        key = f"{r['src_lang']}-{r['tgt_lang']}"
        tally[key] = tally.get(key, 0) + 1
        yield r


def _synthetic_splits(settings: dict[str, Any], languages: list[str], test_languages: list[str]):
    import random

    from .synthetic import build_world, sample_parallel

    world = build_world(settings)
    n_train = int(settings.get("n_train_per_pair", 200))
    n_valid = int(settings.get("n_validation_per_pair", 4))
    n_test = int(settings.get("n_test_per_pair", 8))
    seed = int(settings.get("world_seed", 0))
    # Held-out sentences first, for every language, with the same draws whatever the
    # fine-tuning set, so demo_mt_2to2 and demo_mt_10to10 share one test set; training sentences
    # then avoid every held-out meaning in every language (no cross-direction leakage).
    held: dict[str, dict[str, list]] = {}
    held_keys: set = set()
    for lang in sorted(set(LANGUAGES)):
        rng = random.Random(f"smcbench-mt-heldout-{seed}-{lang}")
        test = sample_parallel(world, n_test, rng, exclude=held_keys)
        valid = sample_parallel(world, n_valid, rng, exclude=held_keys | {m.key() for m in test})
        held[lang] = {"test": test, "validation": valid}
        held_keys |= {m.key() for m in test + valid}
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for lang in LANGUAGES:
        if lang in languages:
            rng = random.Random(f"smcbench-mt-train-{seed}-{lang}")
            train = sample_parallel(world, n_train, rng, exclude=held_keys)
            splits["train"] += directional_rows(
                [(i, world.render(m, PIVOT), world.render(m, lang)) for i, m in enumerate(train)],
                lang, "train")
            splits["validation"] += directional_rows(
                [(i, world.render(m, PIVOT), world.render(m, lang))
                 for i, m in enumerate(held[lang]["validation"])], lang, "validation")
        if lang in test_languages:
            splits["test"] += directional_rows(
                [(i, world.render(m, PIVOT), world.render(m, lang))
                 for i, m in enumerate(held[lang]["test"])], lang, "test")
    world_keys = ("world_seed", "n_nouns", "n_verbs", "n_adjs", "cognate_fraction")
    meta = {"source": "synthetic", "world": {k: settings[k] for k in world_keys if k in settings},
            "sha256": {}, "dropped": {s: {} for s in SPLITS}}
    return splits, meta


