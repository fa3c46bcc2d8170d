"""Protein datasets: HotProtein HP-S / HP-S²C2 / HP-S²C5 and FLIP's Meltome readers, splitting, and
``prepare`` (the family's contract in ``tasks/base.py``).

Row schema written by :func:`prepare` (one JSON object per line)::

    {"id": str, "sequence": str, "label": int}          # HotProtein HP-S, HP-S²C2, demo
    {"id": ..., "sequence": ..., "label": int, "target": float}   # Meltome (target = Tm in °C)
    {"id": ..., "sequence": ..., "label": int, "pdb": str}        # HP-S²C5 (path relative to source)

Sequences are upper-case one-letter residue strings over :data:`~.formats.RESIDUES`, truncated to
``max_residues`` (1022 = ESM-1b's limit: 1024 positions minus ``<cls>``/``<eos>``). Datasets are
told apart by ``settings["variant"]`` (``hp_s``, ``hp_s2c2``, ``hp_s2c5``, ``meltome``) or, when
absent, by the dataset name; ``source: synthetic`` always means the demo generator.
"""

from __future__ import annotations

import hashlib
import math
import random
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from ...io import sha256_file
from ..base import write_jsonl
from .formats import (DEFAULT_MAX_RESIDUES, ProteinDataError, csv_rows, parse_fasta, parse_header_attributes,
                      parse_pdb_backbone, safe_load_pickle, truncate, decoded_lines, clean_sequence)
from .synthetic import MARKERS, synthetic_rows

# --- splitting ------------------------------------------------------------------------------
def carve_validation(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Split ``rows`` (train) into (train, validation): a seeded, label-stratified sample.

    Stratifying keeps the class mix of small validation sets close to train's. ``fraction`` must
    be in (0, 1); each class with ≥ 2 rows gives at least one validation row.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"settings.validation_fraction must be in (0, 1), got {fraction!r}")
    rng = random.Random(seed)
    by_label: dict[Any, list[int]] = {}
    for i, r in enumerate(rows):
        by_label.setdefault(r.get("label"), []).append(i)
    val_idx: set[int] = set()
    for label in sorted(by_label, key=repr):
        idx = by_label[label]
        rng.shuffle(idx)
        k = round(len(idx) * fraction)
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        val_idx.update(idx[:k])
    train = [r for i, r in enumerate(rows) if i not in val_idx]
    val = [r for i, r in enumerate(rows) if i in val_idx]
    return train, val




def label_counts(rows: Iterable[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r["label"])] = counts.get(str(r["label"]), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))


# --- Meltome (FLIP) -------------------------------------------------------------------------
#: Default Meltome temperature classes (°C of the melting temperature Tm): our own choice, since
#: SMC-Bench published no binning. See the README (protein) ("Meltome classes").
DEFAULT_TM_BINS = (50.0, 65.0)
MELTOME_CLASS_NAMES = ("mesophilic (Tm < 50)", "thermophilic (50 <= Tm < 65)", "hyperthermophilic (Tm >= 65)")


def tm_class(tm: float, bins: Iterable[float]) -> int:
    """Class index of ``tm``: the number of thresholds ``<= tm`` (bins are sorted thresholds)."""
    return sum(1 for b in bins if tm >= b)


def _flag(value: str | None) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")



def read_meltome_csv(path: Path, data: bytes | None = None) -> list[dict]:
    """FLIP split CSV (``sequence,target,set,validation``) → raw records (set, validation, Tm).
    ``data``: the file's bytes when it comes from ``splits.zip`` (``path`` then names the member)."""
    out = []
    rows = csv_rows(path if data is None else data, path)
    header_checked = False
    for lineno, row in rows:
        if not header_checked:
            missing = {"sequence", "target", "set"} - set(row)
            if missing:
                raise ProteinDataError(f"{path}: missing column(s) {sorted(missing)} (FLIP splits have "
                                       "sequence,target,set,validation)")
            header_checked = True
        where = f"{path}:{lineno} record {len(out)}"
        out.append(_meltome_record(f"meltome_{len(out)}", row["sequence"], row["target"],
                                   row["set"], row.get("validation"), where))
    return out


def read_meltome_fasta(path: Path, data: bytes | None = None) -> list[dict]:
    """FLIP/biotrainer FASTA (``>Seq0 TARGET=43.3 SET=train VALIDATION=False``) → raw records."""
    out = []
    for i, (header, seq) in enumerate(parse_fasta(path, data)):
        attrs = parse_header_attributes(header)
        name = header.split()[0] if header else f"record{i}"
        where = f"{path} record {name!r}"
        if "TARGET" not in attrs or "SET" not in attrs:
            raise ProteinDataError(f"{where}: header lacks TARGET=<Tm> and SET=train|test")
        out.append(_meltome_record(name, seq, attrs["TARGET"], attrs["SET"], attrs.get("VALIDATION"), where))
    return out


def _meltome_record(rid: str, seq: str, target: str, split: str, validation: str | None, where: str) -> dict:
    try:
        tm = float(target)
    except (TypeError, ValueError):
        raise ProteinDataError(f"{where}: target {target!r} is not a temperature") from None
    if not math.isfinite(tm):
        raise ProteinDataError(f"{where}: target {target!r} is not finite")
    split = str(split).strip().lower()
    if split == "val":  # later biotrainer files use SET=val instead of VALIDATION=True
        split, validation = "train", "True"
    if split not in ("train", "test"):
        raise ProteinDataError(f"{where}: set {split!r} is neither train nor test")
    return {"id": rid, "sequence": clean_sequence(seq, where), "target": tm, "set": split,
            "flip_validation": _flag(validation)}


# --- HotProtein -----------------------------------------------------------------------------
#: The three HotProtein variants: where their split pickles and FASTA files live in the release.
HOTPROTEIN_LAYOUT = {
    "hp_s": {"dir": "S", "split": "S_target_classification.pkl", "fasta": "S_target", "classes": 5},
    "hp_s2c2": {"dir": "d1", "split": "d1_{fold}_classification.pkl", "fasta": "d1_fasta_clean", "classes": 2},
    "hp_s2c5": {"dir": "d2", "split": "d2_{fold}_classification.pkl", "fasta": "d2_fasta_clean", "classes": 5,
                "structures": "d2_clean", "pdb_name": "unrelaxed_model_1_ptm.pdb"},
}


def hotprotein_root(source: Path, variant: str) -> Path:
    """The variant's folder (``S``, ``d1`` or ``d2``): ``source`` itself, its child, or its
    grandchild through one top folder (an unpacked archive's ``HotProtein/d1``)."""
    sub = HOTPROTEIN_LAYOUT[variant]["dir"]
    if (source / sub).is_dir():
        return source / sub
    if source.name == sub:
        return source
    nested = sorted(p / sub for p in source.iterdir() if (p / sub).is_dir()) if source.is_dir() else []
    if len(nested) == 1:
        return nested[0]
    raise ProteinDataError(f"{source}: no {sub}/ folder; expected the HotProtein release layout "
                           f"(S/, d1/, d2/ with split pickles and FASTA folders)")


def unpacked(source: Path, fallback_dir: Path) -> Path:
    """``source`` as a folder: a folder is returned as is; a zip or tar archive (a release
    archive as downloaded) is unpacked once next to it (``<archive>.unpacked/``; under
    ``fallback_dir`` when that place is read-only) and the folder returned.

    Members are checked before anything is written: absolute paths, ``..`` components, links
    and device files are refused with an error naming the archive and the member.
    """
    import os
    import shutil
    import tarfile
    import zipfile

    if source.is_dir():
        return source
    if not source.is_file():
        raise FileNotFoundError(f"{source}: source does not exist")
    is_zip = zipfile.is_zipfile(source)
    if not is_zip and not tarfile.is_tarfile(source):
        raise ProteinDataError(f"{source}: neither a folder nor a zip/tar archive (a truncated download or an "
                               "HTML error page?); give the unpacked release folder or its archive")

    def check(member: str, ok_type: bool = True) -> None:
        parts = Path(member).parts
        if not ok_type or member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ProteinDataError(f"{source}: archive member {member!r} is a link, a device or points outside "
                                   "the archive; refusing to unpack")

    for dest in (source.with_name(source.name + ".unpacked"), Path(fallback_dir) / "_unpacked"):
        if (dest / ".complete").is_file():
            return dest
        tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
        try:
            tmp.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue  # read-only next to the archive: unpack under fallback_dir
        try:
            if is_zip:
                with zipfile.ZipFile(source) as zf:
                    for info in zf.infolist():
                        check(info.filename, not (info.external_attr >> 16) & 0o170000 == 0o120000)
                    zf.extractall(tmp)
            else:
                with tarfile.open(source) as tf:
                    members = tf.getmembers()
                    for m in members:
                        check(m.name, m.isfile() or m.isdir())
                    for m in members:
                        target = tmp / m.name
                        if m.isdir():
                            target.mkdir(parents=True, exist_ok=True)
                        else:
                            target.parent.mkdir(parents=True, exist_ok=True)
                            with tf.extractfile(m) as fin, open(target, "wb") as fout:
                                shutil.copyfileobj(fin, fout)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ProteinDataError(f"{source}: damaged archive ({type(e).__name__}: {e}); download it again") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / ".complete").write_text(str(source.name))
        try:
            os.replace(tmp, dest)
        except OSError:  # another job finished first
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
    raise ProteinDataError(f"{source}: cannot unpack (no writable place next to it or under {fallback_dir})")


def read_single_fasta_sequence(path: Path, name: str) -> str:
    """A HotProtein per-protein FASTA: the header line is skipped and the rest joined."""
    lines = [line.rstrip("\r\n") for line in decoded_lines(path, path)]
    if lines and lines[0].startswith(">"):
        lines = lines[1:]
    return clean_sequence("".join(lines), f"{path} record {name!r}")


def protein_file(folder: Path, name: str, suffix: str, where: str) -> Path:
    """``folder/<name><suffix>`` for a protein name read from a split file, refusing names that
    would leave ``folder`` (``../../SECRET``, absolute paths, path separators, NUL)."""
    if (not name or name in (".", "..") or any(c in name for c in "/\\\0")
            or Path(name).is_absolute()):
        raise ProteinDataError(f"{where}: protein name {name!r} is not a plain file name (names must not "
                               "contain path separators or '..'); refusing to read outside the source tree")
    path = folder / f"{name}{suffix}"
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ProteinDataError(f"{where}: protein name {name!r} resolves outside {folder}; refusing")
    return path


def check_disjoint(train: list[dict], test: list[dict], where: str | Path, key: str) -> None:
    """Refuse a protein that is both in train and in test: same ``key`` (``id`` for HotProtein,
    whose names are accessions; ``sequence`` for Meltome, whose rows have no names)."""
    seen = {r[key]: r for r in train}
    shared = [r for r in test if r[key] in seen]
    if shared:
        r = shared[0]
        raise ProteinDataError(
            f"{where}: train and test share {len(shared)} protein(s) (same {key}), e.g. test record "
            f"{r['id']!r} and train record {seen[r[key]]['id']!r}; a test protein seen in training inflates "
            "accuracy. Fix the split file")


def read_hotprotein_split(path: Path) -> dict[str, list]:
    """Load and check a HotProtein split pickle (keys train/test names/labels, equal lengths)."""
    obj = safe_load_pickle(path)
    need = ("train_names", "train_labels", "test_names", "test_labels")
    if not isinstance(obj, dict) or any(k not in obj for k in need):
        have = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ProteinDataError(f"{path}: expected a dict with keys {list(need)}, found {have}")
    for part in ("train", "test"):
        if len(obj[f"{part}_names"]) != len(obj[f"{part}_labels"]):
            raise ProteinDataError(f"{path}: {part}_names has {len(obj[f'{part}_names'])} entries but "
                                   f"{part}_labels has {len(obj[f'{part}_labels'])}")
    return obj


FAMILY = "protein"
VARIANTS = ("hp_s", "hp_s2c2", "hp_s2c5", "meltome")
_NAME_TO_VARIANT = {"hotprotein_s": "hp_s", "hotprotein_s2c2": "hp_s2c2", "hotprotein_s2c5": "hp_s2c5",
                    "meltome": "meltome"}
HOTPROTEIN_CLASS_NAMES = {
    5: ["cryophilic", "psychrophilic", "mesophilic", "thermophilic", "hyperthermophilic"],
    2: ["cold (< 45 C)", "hot (>= 45 C)"],
}
MELTOME_FILES = {"mixed": "mixed_split.csv", "human": "human.csv", "human_cell": "human_cell.csv"}


def _variant(dataset: str, source: str, settings: dict) -> str:
    if str(source) == "synthetic":
        return "synthetic"
    v = settings.get("variant") or _NAME_TO_VARIANT.get(dataset)
    if v not in VARIANTS:
        raise ValueError(f"protein dataset {dataset!r}: unknown variant {v!r}; set settings.variant to one of "
                         f"{', '.join(VARIANTS)} (or source: synthetic for the demo)")
    return v


# === prepare ================================================================================
def prepare(dataset: str, source: str, out_dir: str | Path, settings: dict, fold: int | None = None) -> dict:
    """Write ``out_dir/{train,validation,test}.jsonl`` for a protein dataset; return meta.json.

    Validation is carved from train (seeded by ``settings.split_seed``, stratified by label,
    ``settings.validation_fraction``); the test split is never used for selection. Sequences
    are truncated to ``settings.max_residues`` (default 1022) residues.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    variant = _variant(dataset, source, settings)
    max_res = int(settings.get("max_residues", DEFAULT_MAX_RESIDUES))
    meta: dict[str, Any] = {"dataset": dataset, "family": FAMILY, "variant": variant, "source": str(source),
                            "max_residues": max_res, "dropped": {}, "files_sha256": {}}
    extra_val: list[dict] | None = None
    if variant == "synthetic":
        train, test = _synthetic(settings, meta)
    elif variant == "meltome":
        train, test, extra_val = _meltome(Path(source), settings, meta)
    else:
        train, test = _hotprotein(Path(source), variant, settings, fold, out_dir, max_res, meta)

    n_trunc = 0
    for r in train + test + (extra_val or []):
        r["sequence"], cut = truncate(r["sequence"], max_res)
        n_trunc += cut
    meta["truncated"] = n_trunc

    split_seed = int(settings.get("split_seed", 0))
    if extra_val is not None:  # Meltome with validation_from: flip
        validation = extra_val
        meta["validation"] = "FLIP's validation flag (training rows marked VALIDATION=True)"
    else:
        frac = float(settings.get("validation_fraction", 0.1))
        train, validation = carve_validation(train, frac, split_seed)
        meta["validation"] = f"carved from train: fraction {frac}, seed {split_seed}, stratified by label"
    if not train or not validation or not test:
        raise ValueError(f"{dataset}: empty split after preparation (train {len(train)}, validation "
                         f"{len(validation)}, test {len(test)}); check the source {source}")
    counts = {}
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        counts[name] = write_jsonl(out_dir / f"{name}.jsonl", rows)
        meta.setdefault("label_counts", {})[name] = label_counts(rows)
    meta["counts"] = counts
    return meta


def _synthetic(settings: dict, meta: dict) -> tuple[list[dict], list[dict]]:
    c = int(settings.get("num_classes", 2))
    n_train, n_test = int(settings.get("n_train", 400)), int(settings.get("n_test", 200))
    rows = synthetic_rows(n_train + n_test, c, int(settings.get("world_seed", 0)),
                                int(settings.get("min_length", 20)), int(settings.get("max_length", 32)),
                                float(settings.get("label_noise", 0.0)))
    meta.update(num_classes=c, class_names=[f"{m} first" for m in MARKERS[:c]],
                rule="class = which of the markers " + ", ".join(MARKERS[:c]) + " occurs first; every protein "
                     "holds each marker once (same composition in every class); protein.synthetic")
    return rows[:n_train], rows[n_train:]


def _hotprotein(source: Path, variant: str, settings: dict, fold: int | None, out_dir: Path, max_res: int,
                meta: dict) -> tuple[list[dict], list[dict]]:
    layout = HOTPROTEIN_LAYOUT[variant]
    source = unpacked(source, out_dir)
    root = hotprotein_root(source, variant)
    cv_fold = int(fold if fold is not None else settings.get("cv_fold", 0))
    split_file = root / layout["split"].format(fold=cv_fold)
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file}: HotProtein split file not found (settings.cv_fold={cv_fold}; "
                                f"expected the release layout {layout['dir']}/{layout['split']})")
    split = read_hotprotein_split(split_file)
    meta["files_sha256"][str(split_file.relative_to(source))] = sha256_file(split_file)
    num_classes = int(settings.get("num_classes", layout["classes"]))
    offset = int(settings.get("label_offset", 0))
    fasta_root = root / settings.get("fasta_dir", layout["fasta"])
    structures = variant == "hp_s2c5"
    chain = str(settings.get("chain", "A"))
    coords: dict[str, torch.Tensor] = {}
    digest = hashlib.sha256()
    n_hashed = 0
    dropped: dict[str, int] = {}
    out: dict[str, list[dict]] = {}
    for part in ("train", "test"):
        rows = []
        seen = set()
        for name, raw_label in zip(split[f"{part}_names"], split[f"{part}_labels"]):
            name = str(name)
            where = f"{split_file} {part} record {name!r}"
            try:
                label = int(float(raw_label)) - offset
            except (TypeError, ValueError):
                raise ProteinDataError(f"{where}: label {raw_label!r} is not a class number") from None
            if float(raw_label) != int(float(raw_label)) or not 0 <= label < num_classes:
                raise ProteinDataError(
                    f"{where}: label {raw_label!r} (offset {offset}) is not a class in 0..{num_classes - 1}; "
                    "is this the *_classification.pkl file? set settings.label_offset if labels start at 1")
            if name in seen:
                dropped[f"duplicate_name_in_{part}"] = dropped.get(f"duplicate_name_in_{part}", 0) + 1
                continue
            seen.add(name)
            fasta = protein_file(fasta_root, name, ".fasta", where)
            if not fasta.is_file():
                dropped["missing_fasta"] = dropped.get("missing_fasta", 0) + 1
                continue
            seq = read_single_fasta_sequence(fasta, name)
            digest.update(f"{fasta.relative_to(source)}\0{sha256_file(fasta)}\n".encode())
            n_hashed += 1
            row = {"id": name, "sequence": seq, "label": label}
            if structures:
                pdb = protein_file(root / layout["structures"], name, "", where) / layout["pdb_name"]
                if not pdb.is_file():
                    dropped["missing_pdb"] = dropped.get("missing_pdb", 0) + 1
                    continue
                pdb_seq, xyz = parse_pdb_backbone(pdb, chain)
                digest.update(f"{pdb.relative_to(source)}\0{sha256_file(pdb)}\n".encode())
                n_hashed += 1
                if len(pdb_seq) != len(seq):
                    dropped["structure_length_mismatch"] = dropped.get("structure_length_mismatch", 0) + 1
                    continue
                coords[name] = torch.tensor(xyz[:max_res], dtype=torch.float32)
                row["pdb"] = str(pdb.relative_to(source))
            rows.append(row)
        out[part] = rows
    if structures:
        from safetensors.torch import save_file

        save_file(coords, str(out_dir / "structures.safetensors"), metadata={"chain": chain, "atoms": "N,CA,C"})
        meta["structures"] = {"file": "structures.safetensors", "chain": chain, "count": len(coords)}
    meta["files_sha256"]["per_protein_files"] = {"count": n_hashed, "sha256_of_list": digest.hexdigest()}
    meta.update(dropped=dropped, cv_fold=cv_fold, num_classes=num_classes, label_offset=offset,
                class_names=HOTPROTEIN_CLASS_NAMES.get(num_classes, [str(i) for i in range(num_classes)]))
    for part in ("train", "test"):
        if not out[part]:
            raise ProteinDataError(f"{split_file}: no usable {part} record ({len(split[f'{part}_names'])} "
                                         f"listed; dropped: {dropped}); are the FASTA files under {fasta_root}?")
    check_disjoint(out["train"], out["test"], split_file, "id")
    return out["train"], out["test"]


def _meltome_input(source: Path, split: str) -> tuple[Path, bytes | None, str | None]:
    """(file, its bytes when read from a zip, zip member) holding FLIP's Meltome ``split``.

    ``source`` may be FLIP's ``splits.zip`` itself (what downloading the configured URL gives),
    a folder holding it or the extracted CSVs (``splits/meltome`` or an unpacked zip), or one
    CSV / FASTA file.
    """
    name = MELTOME_FILES.get(split)
    if name is None:
        raise ValueError(f"settings.split {split!r} is not a FLIP Meltome split (known: {', '.join(MELTOME_FILES)})")
    if not source.exists():
        raise FileNotFoundError(f"{source}: Meltome source does not exist")
    if source.is_file():
        if zipfile.is_zipfile(source):
            return _meltome_zip_member(source, split, name)
        if source.suffix.lower() == ".zip":
            raise ProteinDataError(f"{source}: not a readable zip archive (a truncated download or an "
                                         "HTML error page?); delete it and download again")
        return source, None, None
    for cand in (source / name, source / "splits" / name, source / "splits" / "meltome" / name,
                 source / f"{split}.fasta", source / f"{Path(name).stem}.fasta"):
        if cand.is_file():
            return cand, None, None
    for z in (source / "splits.zip", source / "splits" / "meltome" / "splits.zip"):
        if z.is_file():
            return _meltome_zip_member(z, split, name)
    raise FileNotFoundError(f"{source}: no FLIP Meltome file for split {split!r} ({name}, {split}.fasta or "
                            "splits.zip); point source at FLIP's splits.zip, its folder, or the file")


def _meltome_zip_member(archive: Path, split: str, name: str) -> tuple[Path, bytes, str]:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            member = next((m for m in members if Path(m).name in (name, f"{split}.fasta")), None)
            if member is None:
                raise FileNotFoundError(f"{archive}: no member {name} (or {split}.fasta) for split {split!r}; "
                                        f"members: {', '.join(members[:10])}")
            return archive, zf.read(member), member
    except zipfile.BadZipFile as e:
        raise ProteinDataError(f"{archive}: damaged zip archive ({e}); delete it and download again") from None


def _meltome(source: Path, settings: dict, meta: dict) -> tuple[list[dict], list[dict], list[dict] | None]:
    split = str(settings.get("split", "mixed"))
    path, data, member = _meltome_input(source, split)
    meta["files_sha256"][path.name] = sha256_file(path)
    shown = Path(f"{path}!{member}") if member else path  # errors name the member inside the zip
    if member:
        meta["zip_member"] = member
    if shown.suffix.lower() in (".fasta", ".fa", ".faa"):
        records = read_meltome_fasta(shown, data)
    else:
        records = read_meltome_csv(shown, data)
    bins = sorted(float(b) for b in settings.get("tm_bins", DEFAULT_TM_BINS))
    for r in records:
        r["label"] = tm_class(r["target"], bins)
    use_flip = str(settings.get("validation_from", "carve")) == "flip"
    train = [r for r in records if r["set"] == "train" and not (use_flip and r["flip_validation"])]
    val = [r for r in records if r["set"] == "train" and use_flip and r["flip_validation"]]
    test = [r for r in records if r["set"] == "test"]
    for part, rows in (("train", train), ("test", test)):
        if not rows:
            raise ProteinDataError(f"{shown}: no {part} record ({len(records)} records in all); "
                                         f"FLIP files mark each row set=train or set=test")
    if use_flip and not val:
        raise ProteinDataError(f"{shown}: validation_from: flip, but no training record is flagged "
                                     "validation=True; use validation_from: carve")
    check_disjoint(train + val, test, shown, "sequence")
    keep = ("id", "sequence", "label", "target")
    train, val, test = ([{k: r[k] for k in keep} for r in rows] for rows in (train, val, test))
    names = (list(MELTOME_CLASS_NAMES) if bins == list(DEFAULT_TM_BINS)
             else [f"Tm in [{lo}, {hi})" for lo, hi in zip([-math.inf] + bins, bins + [math.inf])])
    meta.update(split=split, tm_bins=bins, num_classes=len(bins) + 1, class_names=names,
                regression_target="target = melting temperature Tm (C); spearman is reported on it")
    return train, test, (val if use_flip else None)
