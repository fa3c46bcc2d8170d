"""The download step: turn a dataset/model ``source`` into a local path, pinned, verified, cached.

A source (config ``datasets.<n>`` / ``models.<n>``: ``source`` plus optional ``revision``,
``sha256``, ``files``; the workflow passes them as one JSON object) is one of

* ``synthetic``: the demo generates its data; nothing to fetch;
* a local path (file or folder): used in place; its files are checksummed (a ``sha256`` pin is
  verified for a file). A path that does not exist is reported as such;
* an ``http(s)://`` URL: fetched once into the cache and verified against ``sha256`` (or a
  ``#sha256=<hex>`` suffix) after the download and on every later use;
* a Hugging Face Hub repository ``owner/name`` with a ``revision`` (a commit, or a branch/tag,
  which is resolved and logged as a commit; ``owner/name@revision`` works too):
  ``huggingface_hub.snapshot_download`` of only the ``files`` patterns the job needs. Without a
  revision the name is taken as a local path: Hub sources are always pinned.

The URL cache is keyed by the source (URL + pin), never by the file name alone: two URLs ending
in the same name never share a file. Writes are atomic (a per-process temporary name, then
``os.replace``), and one process at a time downloads a given source (a lock file), so parallel
jobs fetching the same archive are safe. A cached file is re-checked on every use: against its pin
when there is one, else against the digest recorded when it was downloaded, and for archives by
opening them; a file that fails (an HTML error page saved as ``.zip``, a truncated download) is
removed with an error that says so, and the next run downloads it again.

The step writes ``source.json``: ``{"kind", "source", "path", "files": {relpath: sha256}, "pin"}``;
the ``prepare`` / ``pretrained`` steps read ``path`` from it. Families never touch the network.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_HASH_FILES = 2000  # a Hub snapshot of a big model has few files; a raw corpus folder may have many
USER_AGENT = "smcbench-download"


class DownloadError(RuntimeError):
    pass


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def manifest(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path`` itself), up to MAX_HASH_FILES files."""
    if path.is_file():
        return {path.name: sha256_file(path)}
    files = sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)
    if len(files) > MAX_HASH_FILES:
        files = files[:MAX_HASH_FILES]
    return {str(p.relative_to(path)): sha256_file(p) for p in files}


# --- what to fetch --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceSpec:
    """A source and its pins: ``revision`` (Hub), ``sha256`` (URL or local file), ``files``
    (Hub: glob patterns of the files to fetch)."""

    source: str
    revision: str | None = None
    sha256: str | None = None
    files: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> "SourceSpec":
        """A JSON object ``{"source", "revision", "sha256", "files"}`` (what the workflow passes),
        or a plain source string (``url#sha256=<hex>``, ``owner/name@revision``)."""
        text = text.strip()
        if text.startswith("{"):
            try:
                d = json.loads(text)
            except json.JSONDecodeError as e:
                raise DownloadError(f"bad source specification ({e.msg}): {text[:80]!r}") from None
            unknown = set(d) - {"source", "revision", "sha256", "files"}
            if unknown or "source" not in d:
                raise DownloadError(f"bad source specification {text[:80]!r}: needs 'source'; "
                                    f"unknown keys {sorted(unknown)}")
            spec = cls(str(d["source"]), d.get("revision"), d.get("sha256"),
                       tuple(d["files"]) if d.get("files") else None)
        else:
            spec = cls(text)
        source, revision, digest = spec.source, spec.revision, spec.sha256
        if source.startswith(("http://", "https://")):
            source, _, frag = source.partition("#")
            if frag:
                if not frag.startswith("sha256="):
                    raise DownloadError(f"{spec.source}: the URL fragment must be '#sha256=<hex>'")
                if digest and digest != frag[len("sha256="):]:
                    raise DownloadError(f"{spec.source}: two different sha256 pins")
                digest = frag[len("sha256="):]
        elif "@" in source and HUB_ID.match(source.split("@", 1)[0]) and not Path(source).exists():
            source, rev = source.split("@", 1)
            if revision and revision != rev:
                raise DownloadError(f"{spec.source}: two different revisions ({rev}, {revision})")
            revision = rev
        if digest is not None:
            digest = str(digest).lower()
            if not SHA256.match(digest):
                raise DownloadError(f"{spec.source}: sha256 pin {digest!r} is not 64 hex digits")
        return cls(source, revision, digest, spec.files)

    def cache_key(self) -> str:
        """The cache entry of a URL source: URL + pin, so different sources never share a file."""
        return hashlib.sha256(f"{self.source}\0{self.sha256 or ''}".encode()).hexdigest()[:24]


def classify(source: str | SourceSpec) -> str:
    spec = source if isinstance(source, SourceSpec) else SourceSpec.parse(source)
    s = spec.source
    if s == "synthetic":
        return "synthetic"
    if s.startswith(("http://", "https://")):
        return "url"
    if Path(os.path.expanduser(s)).exists() or s.startswith(("/", "./", "../", "~")):
        return "local"
    if HUB_ID.match(s) and spec.revision:
        return "hub"
    return "local"  # reported as a missing local path by resolve()


def resolve(source: str | SourceSpec, cache_dir: Path, repo_type: str, log=None) -> dict:
    """Resolve a source to a local path; return the ``source.json`` record."""
    spec = source if isinstance(source, SourceSpec) else SourceSpec.parse(source)
    log = log or (lambda msg: None)
    kind = classify(spec)
    if kind == "synthetic":
        return {"kind": kind, "source": spec.source, "path": "synthetic", "files": {}, "pin": None}
    if kind == "local":
        return _resolve_local(spec)
    if kind == "url":
        return _resolve_url(spec, Path(cache_dir), log)
    return _resolve_hub(spec, Path(cache_dir), repo_type, log)


def _resolve_local(spec: SourceSpec) -> dict:
    path = Path(os.path.expanduser(spec.source))
    if not path.exists():
        hint = (" (for a Hugging Face Hub repository, pin it: `revision:` in its config entry, or "
                f"'{spec.source}@<revision>')") if HUB_ID.match(spec.source) else ""
        raise DownloadError(f"local path {spec.source} does not exist{hint}")
    path = path.resolve()
    files = manifest(path)
    if spec.sha256:
        if not path.is_file():
            raise DownloadError(f"local path {spec.source}: a sha256 pin needs a file, not a folder")
        _check_digest(path, spec.sha256, files[path.name])
    return {"kind": "local", "source": spec.source, "path": str(path), "files": files, "pin": spec.sha256}


# --- URLs -----------------------------------------------------------------------------------------
def _check_digest(path: Path, expected: str, actual: str, remove: bool = False) -> None:
    if actual != expected:
        if remove:
            path.unlink(missing_ok=True)
        raise DownloadError(f"sha256 mismatch for {path}: expected {expected}, actual {actual}"
                            + ("; the file was removed" if remove else ""))


def _archive_problem(path: Path) -> str | None:
    """Why ``path`` cannot be opened as what its name says (None when it can)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "it is empty"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in lowered[:200]:
        return "it is an HTML/XML page (the server sent an error or login page)"
    name = path.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                z.namelist()
        elif name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
            with tarfile.open(path) as t:
                t.next()
        elif name.endswith(".gz"):
            with gzip.open(path) as g:
                g.read(1)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        return f"it is not a valid archive ({type(e).__name__}: {e})"
    return None


@contextlib.contextmanager
def _locked(lock_path: Path):
    """One process at a time per cache entry (other processes wait)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fetch(url: str, target: Path) -> None:
    """Download ``url`` to ``target`` atomically (a temporary file of this process, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=60) as resp:
                while True:
                    block = resp.read(1 << 20)
                    if not block:
                        break
                    out.write(block)
        os.replace(tmp, target)
    except (OSError, urllib.error.URLError) as e:
        raise DownloadError(f"could not fetch {url} ({e}); on an offline machine download it elsewhere "
                            "and set the source to the local path") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _resolve_url(spec: SourceSpec, cache_dir: Path, log) -> dict:
    url = spec.source
    name = Path(urllib.request.url2pathname(url.split("?")[0].split("#")[0])).name or "download"
    entry = cache_dir / "url" / spec.cache_key()
    target = entry / name
    recorded = target.with_name(name + ".sha256")  # digest at download time (unpinned sources)
    with _locked(entry.with_suffix(".lock")):
        entry.mkdir(parents=True, exist_ok=True)
        fresh = not target.exists()
        if fresh:
            log(f"downloading {url}")
            _fetch(url, target)
        digest = sha256_file(target)
        expected = spec.sha256 or (recorded.read_text().strip() if recorded.exists() and not fresh else None)
        if expected and digest != expected:
            what = "its pin" if spec.sha256 else "the digest recorded when it was downloaded"
            target.unlink(missing_ok=True)
            recorded.unlink(missing_ok=True)
            raise DownloadError(f"sha256 mismatch for {target} ({url}): expected {expected} ({what}), "
                                f"actual {digest}; the file was removed")
        problem = _archive_problem(target)
        if problem:
            target.unlink(missing_ok=True)
            recorded.unlink(missing_ok=True)
            raise DownloadError(f"{'downloaded' if fresh else 'cached'} file {target} from {url} cannot be used: "
                                f"{problem}. It was removed; fix the source (or the server) and rerun")
        if fresh or not recorded.exists():
            tmp = recorded.with_name(f".{recorded.name}.{os.getpid()}")
            tmp.write_text(digest + "\n")
            os.replace(tmp, recorded)
    if not spec.sha256:
        log(f"warning: {url} is not pinned; add `sha256: {digest}` to its config entry")
    return {"kind": "url", "source": url, "path": str(target), "files": {name: digest}, "pin": spec.sha256}


# --- Hugging Face Hub -----------------------------------------------------------------------------
def _resolve_hub(spec: SourceSpec, cache_dir: Path, repo_type: str, log) -> dict:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DownloadError("huggingface_hub is not installed: pip install 'smcbench[hub]'") from None
    kwargs = {"repo_id": spec.source, "repo_type": repo_type, "revision": spec.revision,
              "cache_dir": str(cache_dir / "hub")}
    if spec.files:
        kwargs["allow_patterns"] = list(spec.files)
    try:
        path = Path(snapshot_download(**kwargs)).resolve()
    except Exception as e:  # the hub client raises many types; all mean "not available here"
        raise DownloadError(f"could not download {repo_type} {spec.source!r} at revision {spec.revision!r} from the "
                            f"Hugging Face Hub ({type(e).__name__}: {e}); on an offline cluster download it elsewhere "
                            "and set the source to its local path") from None
    commit = path.name  # the HF cache keeps snapshots under snapshots/<commit>
    if COMMIT.match(spec.revision or "") and commit != spec.revision:
        raise DownloadError(f"{spec.source}: asked for revision {spec.revision}, the snapshot is {commit}")
    if not COMMIT.match(spec.revision or ""):
        log(f"warning: {spec.source} revision {spec.revision!r} is a branch or tag; it resolved to commit "
            f"{commit}: put `revision: {commit}` in its config entry to pin it")
    files = manifest(path)
    if spec.files and not files:
        raise DownloadError(f"{spec.source}@{commit}: no file matches {list(spec.files)}")
    return {"kind": "hub", "source": spec.source, "path": str(path), "files": files, "pin": commit}


# --- the step -------------------------------------------------------------------------------------
def run(source: str, out: Path, cache_dir: Path, repo_type: str = "dataset", log=None) -> dict:
    """Resolve ``source`` (a plain source or the workflow's JSON specification) and write
    ``out`` (source.json) atomically."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    record = resolve(SourceSpec.parse(source), Path(cache_dir), repo_type, log=log)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, out)
    return record


def local_source(source_json: Path) -> str:
    """The local path (or ``synthetic``) recorded by :func:`run`."""
    return json.loads(Path(source_json).read_text())["path"]
