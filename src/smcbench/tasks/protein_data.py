"""Protein thermostability data: parsers, the HotProtein / Meltome readers and the demo generator.

Everything here is pure Python + numpy-free standard library (no torch) so ``prepare`` is cheap.

Row schema written by :func:`smcbench.tasks.protein.prepare` (one JSON object per line)::

    {"id": str, "sequence": str, "label": int}          # HotProtein HP-S, HP-S²C2, demo
    {"id": ..., "sequence": ..., "label": int, "target": float}   # Meltome (target = Tm in °C)
    {"id": ..., "sequence": ..., "label": int, "pdb": str}        # HP-S²C5 (path relative to source)

Sequences are upper-case one-letter residue strings over :data:`RESIDUES`, truncated to
``max_residues`` (1022 = ESM-1b's limit: 1024 positions minus ``<cls>``/``<eos>``).
"""

from __future__ import annotations

import csv
import io
import math
import pickle
import random
from pathlib import Path
from typing import Any, Iterable, Iterator

#: One-letter codes accepted in a sequence: the 20 standard residues and the ambiguity / rare
#: codes that ESM's alphabet and TAPE's IUPAC vocabulary both know (X B Z U O).
RESIDUES = "ACDEFGHIKLMNPQRSTVWYXBZUO"
_RESIDUE_SET = frozenset(RESIDUES)

#: ESM-1b's residue limit (1024 learned positions minus <cls> and <eos>).
DEFAULT_MAX_RESIDUES = 1022


class ProteinDataError(ValueError):
    """Malformed protein input; the message names the file and the record."""


# --- text input ----------------------------------------------------------------------------
def decoded_lines(source: str | Path | bytes, where: str | Path) -> Iterator[str]:
    """Lines of a UTF-8 text (a file path, or the bytes of an archive member), line endings kept.

    A leading byte-order mark is dropped. Invalid UTF-8 raises :class:`ProteinDataError` naming
    ``where``, the line and the byte, instead of a bare ``UnicodeDecodeError``.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with stream:
        for lineno, raw in enumerate(stream, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ProteinDataError(f"{where}:{lineno}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                       f"{e.start + 1}); save the file as UTF-8") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield line


# --- sequences -----------------------------------------------------------------------------
def clean_sequence(raw: str, where: str) -> str:
    """Validate and normalize one residue string.

    Whitespace is removed, letters are upper-cased and one terminal ``*`` (a stop codon that
    translated FASTA files often carry) is dropped. Anything else outside :data:`RESIDUES`
    raises :class:`ProteinDataError` naming ``where`` (file and record) and the bad letters.
    """
    seq = "".join(raw.split()).upper()
    if seq.endswith("*"):
        seq = seq[:-1]
    if not seq:
        raise ProteinDataError(f"{where}: empty sequence (remove the record or fix the file)")
    bad = sorted(set(seq) - _RESIDUE_SET)
    if bad:
        pos = min(seq.index(b) for b in bad)
        raise ProteinDataError(
            f"{where}: invalid residue letter(s) {''.join(bad)!r} (first at position {pos + 1}); "
            f"allowed one-letter codes: {RESIDUES}")
    return seq


def parse_fasta(path: str | Path, data: bytes | None = None) -> list[tuple[str, str]]:
    """Read a FASTA file (or ``data``, its bytes, e.g. from an archive) into ``[(header, sequence)]``
    (header without ``>``).

    Multi-line sequences are joined; a byte-order mark is ignored. Errors (invalid UTF-8, text
    before the first header, an empty record, bad residue letters) raise
    :class:`ProteinDataError` naming the file, line and record.
    """
    records: list[tuple[str, list[str], int]] = []
    for lineno, line in enumerate(decoded_lines(path if data is None else data, path), 1):
        line = line.rstrip("\n\r")
        if line.startswith(">"):
            records.append((line[1:].strip(), [], lineno))
        elif line.strip():
            if not records:
                raise ProteinDataError(f"{path}:{lineno}: sequence data before the first '>' header "
                                       "(is this a FASTA file?)")
            records[-1][1].append(line)
    out = []
    for header, lines, lineno in records:
        name = header.split()[0] if header else "<no name>"
        out.append((header, clean_sequence("".join(lines), f"{path}:{lineno} record {name!r}")))
    return out


def parse_header_attributes(header: str) -> dict[str, str]:
    """``"Seq1 TARGET=43.3 SET=train VALIDATION=False"`` → ``{"TARGET": "43.3", ...}`` (FLIP style)."""
    attrs = {}
    for part in header.split()[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            attrs[key.upper()] = value
    return attrs


def truncate(seq: str, max_residues: int) -> tuple[str, bool]:
    """Keep the first ``max_residues`` residues (the N-terminal end, as ESM's ``--truncate``)."""
    return (seq[:max_residues], True) if len(seq) > max_residues else (seq, False)


# --- safe pickle loading (HotProtein split files) -------------------------------------------
class _RefusingUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: only built-in containers and scalars can be built.

    Pickle opcodes for list, dict, tuple, str, int, float, bool and None need no ``find_class``;
    anything else (classes, functions, numpy arrays, ``os.system``…) needs it and is refused, so
    loading an untrusted file cannot run code.
    """

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only lists/dicts/tuples of str/int/float are allowed")


_PLAIN = (str, int, float, bool, type(None))


def _check_plain(obj: Any, depth: int = 0) -> None:
    if depth > 10:
        raise pickle.UnpicklingError("nesting deeper than 10 levels")
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, (list, tuple)):
        for x in obj:
            _check_plain(x, depth + 1)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
        return
    raise pickle.UnpicklingError(f"unexpected {type(obj).__name__} object")


def safe_load_pickle(path: str | Path) -> Any:
    """Load a pickle holding only lists/dicts/tuples of str/int/float/bool/None.

    Any other object (a class instance, a function reference, a numpy array) raises
    :class:`ProteinDataError` naming the file; nothing from the file is ever executed.
    If your split files hold numpy arrays, convert them once with trusted code to plain lists.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        obj = _RefusingUnpickler(io.BytesIO(data)).load()
        _check_plain(obj)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ProteinDataError(f"{path}: not a plain-data pickle ({e}); convert it to lists of "
                               "str/int/float with trusted code first") from None
    return obj


# --- PDB backbone coordinates (HP-S²C5, ESM-IF1) ---------------------------------------------
_THREE_TO_ONE = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q", "GLU": "E", "GLY": "G",
    "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F", "PRO": "P", "SER": "S",
    "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V", "SEC": "U", "PYL": "O", "MSE": "M",
}
_BACKBONE = ("N", "CA", "C")


def parse_pdb_backbone(path: str | Path, chain: str = "A") -> tuple[str, list[list[list[float]]]]:
    """Backbone coordinates of one chain of a PDB file: ``(sequence, coords)``.

    ``coords`` is a list over residues of ``[N, CA, C]`` xyz triples (``nan`` for a missing atom),
    the ``L × 3 × 3`` layout ESM-IF1 expects. Only the first model is read; alternate locations
    other than blank/``A`` are ignored; insertion codes count as separate residues.
    Raises :class:`ProteinDataError` naming the file and line for malformed ATOM records, and
    when the chain is absent.
    """
    path = Path(path)
    residues: dict[tuple[str, str], dict[str, list[float]]] = {}
    names: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    chains_seen: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            rec = line[:6]
            if rec.startswith("ENDMDL"):
                break
            if rec not in ("ATOM  ", "HETATM"):
                continue
            if len(line.rstrip("\n")) < 54:
                raise ProteinDataError(f"{path}:{lineno}: ATOM record shorter than 54 columns")
            chains_seen.add(line[21])
            if line[21] != chain or line[16] not in (" ", "A"):
                continue
            resname = line[17:20].strip()
            if rec == "HETATM" and resname not in _THREE_TO_ONE:
                continue  # ligands, water
            atom = line[12:16].strip()
            key = (line[22:26].strip(), line[26])
            try:
                xyz = [float(line[30:38]), float(line[38:46]), float(line[46:54])]
            except ValueError:
                raise ProteinDataError(f"{path}:{lineno}: unreadable coordinates {line[30:54]!r}") from None
            if key not in residues:
                residues[key] = {}
                names[key] = resname
                order.append(key)
            if atom in _BACKBONE:
                residues[key][atom] = xyz
    if not order:
        raise ProteinDataError(f"{path}: no residues in chain {chain!r} (chains present: "
                               f"{''.join(sorted(chains_seen)) or 'none'}); set settings.chain")
    nan = float("nan")
    seq = "".join(_THREE_TO_ONE.get(names[k], "X") for k in order)
    coords = [[residues[k].get(a, [nan, nan, nan]) for a in _BACKBONE] for k in order]
    return seq, coords


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


def csv_rows(source: str | Path | bytes, where: str | Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row dict)`` of a CSV with a header line (file path or bytes). Invalid UTF-8,
    a byte-order mark, an oversized field (``csv.field_size_limit``) or a broken quote give a
    :class:`ProteinDataError` naming ``where`` and the line, never a bare ``_csv.Error``."""
    reader = csv.DictReader(decoded_lines(source, where))
    try:
        reader.fieldnames  # reads the header
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            if None in row:  # more fields than the header names
                raise ProteinDataError(f"{where}:{reader.line_num}: {len(reader.fieldnames) + len(row[None])} fields "
                                       f"but the header names {len(reader.fieldnames)}")
            yield reader.line_num, row
    except csv.Error as e:
        hint = (f" (a field longer than {csv.field_size_limit():,} characters: not a FLIP split file, or an "
                "unclosed quote)" if "field larger" in str(e) else "")
        raise ProteinDataError(f"{where}:{reader.line_num}: malformed CSV: {e}{hint}") from None


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


# --- the synthetic demo --------------------------------------------------------------------
# Thermostable proteins are enriched in charged (E, K, R) and large hydrophobic (I, V, Y, L)
# residues and depleted in polar uncharged ones (Q, N, S, T); the demo's hidden rule is a
# caricature of that, so "composition → class" is learnable by mean-pooled residue features.
_ENRICHED = "EKRIVYL"
_DEPLETED = "QNSTHM"
_NEUTRAL = "ADGPFWC"


def synthetic_rows(n: int, num_classes: int, seed: int, min_len: int, max_len: int,
                   label_noise: float = 0.0, prefix: str = "syn") -> list[dict]:
    """``n`` synthetic proteins whose class follows a hidden composition rule.

    Each protein draws a latent "thermostability" t ~ U(0, 1); a residue comes from the enriched
    set with probability 0.10 + 0.45 t, from the depleted set with 0.40 - 0.30 t, else from a
    neutral set. The class is the bin of t among ``num_classes`` equal-width bins. Short
    sequences make composition a noisy readout of t, so more classes are harder (5-class accuracy
    stays well below 2-class). ``label_noise`` flips that fraction of labels uniformly.
    """
    if num_classes < 2:
        raise ValueError(f"settings.num_classes must be >= 2, got {num_classes}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= settings.min_length <= settings.max_length, got {min_len}, {max_len}")
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t = rng.random()
        p_enriched = 0.10 + 0.45 * t
        p_depleted = 0.40 - 0.30 * t
        length = rng.randint(min_len, max_len)
        chars = []
        for _ in range(length):
            u = rng.random()
            pool = _ENRICHED if u < p_enriched else _DEPLETED if u < p_enriched + p_depleted else _NEUTRAL
            chars.append(pool[rng.randrange(len(pool))])
        label = min(int(t * num_classes), num_classes - 1)
        if label_noise and rng.random() < label_noise:
            label = rng.randrange(num_classes)
        rows.append({"id": f"{prefix}{i}", "sequence": "M" + "".join(chars), "label": label})
    return rows
