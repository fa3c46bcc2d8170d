"""The download step: turn a dataset/model ``source`` into a local folder, checksummed and cached.

A source is one of
* ``synthetic``: the demo generates its data; nothing to fetch;
* a local path (file or folder): used in place; its files are checksummed;
* an ``http(s)://`` URL: fetched once into the cache, with an optional ``#sha256=<hex>`` suffix
  that is verified (a mismatch deletes the file and fails);
* a Hugging Face Hub id (``owner/name``): ``huggingface_hub.snapshot_download`` into the cache
  (datasets: ``repo_type="dataset"``). Honours ``HF_HUB_OFFLINE``; on an offline cluster point
  ``source`` at a local copy instead.

The step writes ``source.json``: ``{"kind", "source", "path", "files": {relpath: sha256}}``, and the
``prepare`` / ``pretrained`` steps read ``path`` from it. Families never touch the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
MAX_HASH_FILES = 2000  # a Hub snapshot of a big model has few files; a raw corpus folder may have many


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


def classify(source: str) -> str:
    if source == "synthetic":
        return "synthetic"
    if source.startswith(("http://", "https://")):
        return "url"
    expanded = Path(os.path.expanduser(source))
    if expanded.exists() or source.startswith(("/", "./", "../", "~")):
        return "local"
    if HUB_ID.match(source):
        return "hub"
    raise DownloadError(f"source {source!r} is neither 'synthetic', a URL, an existing local path nor a Hub id (owner/name)")


def resolve(source: str, cache_dir: Path, repo_type: str) -> dict:
    """Resolve ``source`` to a local path; return the ``source.json`` record."""
    kind = classify(source)
    if kind == "synthetic":
        return {"kind": kind, "source": source, "path": "synthetic", "files": {}}
    if kind == "local":
        path = Path(os.path.expanduser(source)).resolve()
        if not path.exists():
            raise DownloadError(f"local source {source!r} does not exist (fix the path in the config)")
        return {"kind": kind, "source": source, "path": str(path), "files": manifest(path)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    if kind == "url":
        url, _, frag = source.partition("#")
        expected = frag[len("sha256="):] if frag.startswith("sha256=") else None
        target = cache_dir / Path(url.split("?")[0]).name
        if not target.exists():
            tmp = target.with_name(target.name + ".part")
            try:
                urllib.request.urlretrieve(url, tmp)
            except OSError as e:
                raise DownloadError(f"could not fetch {url} ({e}); on an offline machine download it "
                                    "elsewhere and set the source to the local path") from None
            os.replace(tmp, target)
        digest = sha256_file(target)
        if expected and digest != expected:
            target.unlink()
            raise DownloadError(f"{url}: sha256 {digest} != expected {expected}; the file was removed")
        return {"kind": kind, "source": source, "path": str(target), "files": {target.name: digest}}
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DownloadError("huggingface_hub is not installed: pip install 'smcbench[hub]'") from None
    try:
        path = snapshot_download(repo_id=source, repo_type=repo_type, cache_dir=str(cache_dir))
    except Exception as e:  # the hub client raises many types; all mean "not available here"
        raise DownloadError(f"could not download {repo_type} {source!r} from the Hugging Face Hub ({type(e).__name__}: "
                            f"{e}); on an offline cluster download it elsewhere and set the source to its local path") from None
    return {"kind": kind, "source": source, "path": str(Path(path).resolve()), "files": manifest(Path(path))}


def run(source: str, out: Path, cache_dir: Path, repo_type: str = "dataset") -> dict:
    if source.lstrip().startswith("{"):  # the workflow passes the entry's source and pins as JSON
        spec = json.loads(source)
        source = spec["source"]
    record = resolve(source, cache_dir, repo_type)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, out)
    return record


def local_source(source_json: Path) -> str:
    """The local path (or ``synthetic``) recorded by :func:`run`."""
    return json.loads(Path(source_json).read_text())["path"]
