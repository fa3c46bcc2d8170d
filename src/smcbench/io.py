"""Shared file IO on the ground floor (no torch, no task imports): JSONL, atomic writers, text
lines, raw-input checks and safe archive extraction.

Every reader names the file and the line (or record) of a malformed input: invalid UTF-8, a
malformed JSON line, an over-long field. A byte-order mark (U+FEFF) never survives into text:
it is removed at the start of a file and from every text field (:func:`clean_text`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

BOM = "\ufeff"
#: longest text field accepted from a raw dataset file (characters); a RACE article is ~3,000
MAX_FIELD_CHARS = 1_000_000
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _tmp_name(path: Path) -> Path:
    # one temp name per process: two writers of the same file never share a half-written file
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as JSONL (atomically); returns the number of rows."""
    path = Path(path)
    tmp = _tmp_name(path)
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON (sorted keys) atomically: a crash never leaves a half-written file behind."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv_atomic(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write rows as CSV atomically. ``columns`` (default: the first row's keys; an empty file when
    there are neither) fixes the header and its order; a missing or None value is written empty."""
    import csv

    path = Path(path)
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else None)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "w", newline="") as f:
            if columns is not None:
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                for r in rows:
                    w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def decode_line(raw: bytes, path: str | Path, lineno: int) -> str:
    """``raw`` as UTF-8 text; invalid bytes raise a ValueError naming file, line and byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{lineno}: invalid UTF-8 (byte {raw[e.start]:#04x} at column "
                         f"{e.start + 1}); the file must be UTF-8") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Stream (line number, record) from a JSONL file, so later checks can name the line.

    Blank lines are skipped; a leading BOM is dropped; invalid UTF-8, a malformed line or a
    non-object raise ValueError naming file and line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = decode_line(raw, path, lineno)
            if lineno == 1:
                line = line.lstrip(BOM)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
            except RecursionError:
                raise ValueError(f"{path}:{lineno}: JSON nested too deeply") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            yield lineno, rec


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file (see :func:`iter_jsonl` for the errors)."""
    return [rec for _, rec in iter_jsonl(path)]


def decoded_lines(source: str | Path | bytes, where: str | Path, error: type[Exception] = ValueError) -> Iterator[str]:
    """Lines of a UTF-8 text (a file path, or bytes such as an archive member's), endings kept.

    A leading byte-order mark is dropped. Invalid UTF-8 raises ``error`` naming ``where``, the line
    and the byte, instead of a bare ``UnicodeDecodeError``.
    """
    import io

    stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with stream:
        for lineno, raw in enumerate(stream, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{where}:{lineno}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                            f"{e.start + 1}); save the file as UTF-8") from None
            yield line[1:] if lineno == 1 and line.startswith(BOM) else line


def _read_utf8(path: str | Path) -> str:
    """A whole UTF-8 file as text; invalid UTF-8 raises a ValueError naming file and line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: invalid UTF-8 (byte {data[e.start]:#04x}); the file "
                         "must be UTF-8 — re-download or re-extract the archive") from None


def read_json_file(path: str | Path) -> Any:
    """One JSON document per file (e.g. a RACE passage); errors name file and line."""
    text = _read_utf8(path)
    try:
        return json.loads(text.lstrip(BOM))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None


def read_text_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file split on ``\\n`` only (``str.splitlines`` would also split on
    U+2028 and friends, which occur inside real sentences). A final newline is optional; ``\\r``
    before it is removed; BOMs are removed (see :func:`clean_text`). Invalid UTF-8 raises a
    ValueError naming file and line."""
    text = _read_utf8(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for n, ln in enumerate(lines, 1):
        ln = ln[:-1] if ln.endswith("\r") else ln
        out.append(clean_text(ln, f"{path}:{n}"))
    return out


def clean_text(value: str, where: str, key: str = "text") -> str:
    """``value`` without byte-order marks; longer than :data:`MAX_FIELD_CHARS` is a ValueError
    naming ``where`` (file:line or file:row) and the field."""
    if len(value) > MAX_FIELD_CHARS:
        raise ValueError(f"{where}: field {key!r} is {len(value):,} characters long (limit "
                         f"{MAX_FIELD_CHARS:,}); the file is not a dataset file of this format or "
                         "is corrupt")
    return value.replace(BOM, "") if BOM in value else value


def is_archive(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: str | Path, dest: str | Path) -> Path:
    """Extract a .zip / .tar(.gz/.bz2/.xz) into ``dest`` (created; reused when already complete).

    Only regular files and folders are extracted; absolute names, ``..`` and links are refused
    with a ValueError naming the member (no zip slip). A truncated or non-archive file is a
    ValueError naming the file."""
    archive, dest = Path(archive), Path(dest)
    done = dest / ".extracted"
    if done.is_file() and done.read_text() == f"{archive.stat().st_size}:{archive.stat().st_mtime_ns}":
        return dest
    dest.mkdir(parents=True, exist_ok=True)

    def safe(name: str) -> Path:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"{archive}: member {name!r} would be written outside the folder; "
                             "refusing to extract")
        return dest.joinpath(*parts)

    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    target = safe(info.filename)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise ValueError(f"{archive}: member {info.filename!r} is a link; refusing")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, open(target, "wb") as out:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
        else:
            with tarfile.open(archive) as t:
                for m in t:
                    target = safe(m.name)
                    if m.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif m.isfile():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        src = t.extractfile(m)
                        with open(target, "wb") as out:
                            while chunk := src.read(1 << 20):
                                out.write(chunk)
                    else:
                        raise ValueError(f"{archive}: member {m.name!r} is not a regular file or "
                                         "folder (link or device); refusing to extract")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"{archive}: not a readable archive ({type(e).__name__}: {e}); the "
                         "download may be truncated or an error page — delete it and download "
                         "again") from None
    done.write_text(f"{archive.stat().st_size}:{archive.stat().st_mtime_ns}")
    return dest
