"""Protein file formats: UTF-8 text lines, residue strings, FASTA, FLIP-style headers, CSV rows,
the refusing unpickler (HotProtein split pickles) and PDB backbone coordinates.

Pure standard library (no torch), so ``prepare`` is cheap. Every error is a
:class:`ProteinDataError` naming the file and the line or record.
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Any, Iterator

from ...io import decoded_lines as _decoded_lines

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
    """:func:`smcbench.io.decoded_lines` raising :class:`ProteinDataError`."""
    return _decoded_lines(source, where, ProteinDataError)


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
    except Exception as e:  # any opcode misuse (BUILD on a dict, a bad stack...) is a malformed file
        raise ProteinDataError(f"{path}: not a plain-data pickle ({type(e).__name__}: {e}); convert it to lists of "
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
