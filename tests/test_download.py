"""The download step against a local HTTP server (127.0.0.1): pins, the cache keyed by source,
bad files removed with clear errors, parallel downloads of one URL, missing local paths."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from smcbench import download as D

ROOT = Path(__file__).resolve().parents[1]


def make_zip(member: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(member, text)
    return buf.getvalue()


class SlowHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files in small chunks with pauses, so parallel downloads overlap."""

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        while True:
            block = source.read(64 * 1024)
            if not block:
                break
            outputfile.write(block)
            time.sleep(0.01)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SlowHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def publish(root: Path, rel: str, data: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def spec(source, **pins) -> str:
    return json.dumps({"source": source, **pins})


def test_a_pinned_url_is_fetched_verified_and_recorded(server, tmp_path):
    root, base = server
    digest = publish(root, "ok/data.zip", make_zip("a.txt", "hello"))
    rec = D.run(spec(f"{base}/ok/data.zip", sha256=digest), tmp_path / "source.json", tmp_path / "cache")
    assert rec["files"] == {"data.zip": digest} and rec["pin"] == digest
    assert Path(rec["path"]).name == "data.zip" and D.sha256_file(Path(rec["path"])) == digest
    assert D.local_source(tmp_path / "source.json") == rec["path"]
    # the URL fragment form pins too
    rec2 = D.run(f"{base}/ok/data.zip#sha256={digest}", tmp_path / "s2.json", tmp_path / "cache")
    assert rec2["path"] == rec["path"]


def test_a_checksum_mismatch_names_file_expected_and_actual(server, tmp_path):
    root, base = server
    actual = publish(root, "mm/data.zip", make_zip("a.txt", "real"))
    wrong = "0" * 64
    with pytest.raises(D.DownloadError) as e:
        D.run(spec(f"{base}/mm/data.zip", sha256=wrong), tmp_path / "source.json", tmp_path / "cache")
    msg = str(e.value)
    assert "data.zip" in msg and f"expected {wrong}" in msg and f"actual {actual}" in msg
    assert not list((tmp_path / "cache").rglob("data.zip"))  # nothing unverified stays cached
    assert not (tmp_path / "source.json").exists()


def test_the_cache_is_keyed_by_source_not_file_name(server, tmp_path):
    root, base = server
    da = publish(root, "a/svamp.zip", make_zip("x.csv", "from a"))
    db = publish(root, "b/svamp.zip", make_zip("x.csv", "from b"))
    ra = D.run(f"{base}/a/svamp.zip", tmp_path / "a.json", tmp_path / "cache")
    rb = D.run(f"{base}/b/svamp.zip", tmp_path / "b.json", tmp_path / "cache")
    assert ra["path"] != rb["path"]
    assert ra["files"] == {"svamp.zip": da} and rb["files"] == {"svamp.zip": db}


def test_an_html_page_served_as_a_zip_is_removed_and_a_fixed_server_works(server, tmp_path):
    root, base = server
    publish(root, "html/svamp.zip", b"<!DOCTYPE html><html><body>rate limited</body></html>")
    with pytest.raises(D.DownloadError, match="HTML") as e:
        D.run(f"{base}/html/svamp.zip", tmp_path / "s.json", tmp_path / "cache")
    assert "removed" in str(e.value)
    assert not list((tmp_path / "cache").rglob("svamp.zip"))
    good = publish(root, "html/svamp.zip", make_zip("x.csv", "fixed"))
    rec = D.run(f"{base}/html/svamp.zip", tmp_path / "s.json", tmp_path / "cache")
    assert rec["files"]["svamp.zip"] == good


def test_a_damaged_cached_file_is_caught_on_use(server, tmp_path):
    root, base = server
    publish(root, "dmg/data.zip", make_zip("a.txt", "x" * 10000))
    rec = D.run(f"{base}/dmg/data.zip", tmp_path / "s.json", tmp_path / "cache")
    cached = Path(rec["path"])
    cached.write_bytes(cached.read_bytes()[:100])  # truncated on disk
    with pytest.raises(D.DownloadError, match="sha256 mismatch") as e:
        D.run(f"{base}/dmg/data.zip", tmp_path / "s.json", tmp_path / "cache")
    assert "recorded when it was downloaded" in str(e.value) and not cached.exists()
    assert D.run(f"{base}/dmg/data.zip", tmp_path / "s.json", tmp_path / "cache")["files"] == rec["files"]


def test_parallel_downloads_of_one_url_are_safe(server, tmp_path):
    root, base = server
    digest = publish(root, "par/big.zip", make_zip("big.bin", os.urandom(1 << 20).hex()))
    cache = tmp_path / "cache"
    code = ("import sys; from smcbench import download as D; "
            "r = D.run(sys.argv[1], sys.argv[2], sys.argv[3]); print(r['files']['big.zip'])")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", code, spec(f"{base}/par/big.zip", sha256=digest),
                               str(tmp_path / f"s{i}.json"), str(cache)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [r[1][-500:] for r in results]
    assert {r[0].strip() for r in results} == {digest}
    files = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert sorted(p.name for p in files) == ["big.zip", "big.zip.sha256"]  # no leftover .part files


def test_a_missing_local_path_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(D.DownloadError, match=r"^local path data/HotProtein does not exist"):
        D.run("data/HotProtein", tmp_path / "s.json", tmp_path / "cache")
    with pytest.raises(D.DownloadError, match="local path ./nowhere does not exist"):
        D.run(spec("./nowhere"), tmp_path / "s.json", tmp_path / "cache")


def test_a_local_file_pin_is_verified(tmp_path):
    f = tmp_path / "esm_if1.pt"
    f.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    assert D.run(spec(str(f), sha256=good), tmp_path / "s.json", tmp_path / "cache")["pin"] == good
    with pytest.raises(D.DownloadError, match=f"expected {'1' * 64}, actual {good}"):
        D.run(spec(str(f), sha256="1" * 64), tmp_path / "s.json", tmp_path / "cache")


def test_source_specifications():
    s = D.SourceSpec.parse(spec("FacebookAI/roberta-large", revision="a" * 40, files=["config.json", "*.safetensors"]))
    assert (s.source, s.revision, s.files) == ("FacebookAI/roberta-large", "a" * 40, ("config.json", "*.safetensors"))
    assert D.classify(s) == "hub"
    s = D.SourceSpec.parse("facebook/mbart-large-cc25@refs/pr/7")
    assert (s.source, s.revision) == ("facebook/mbart-large-cc25", "refs/pr/7") and D.classify(s) == "hub"
    assert D.classify("FacebookAI/roberta-large") == "local"  # unpinned: never fetched from the Hub
    assert D.classify("synthetic") == "synthetic"
    with pytest.raises(D.DownloadError, match="64 hex"):
        D.SourceSpec.parse(spec("https://x.org/a.zip", sha256="abc"))
    with pytest.raises(D.DownloadError, match="unknown keys"):
        D.SourceSpec.parse(json.dumps({"source": "x", "revison": "main"}))
    a = D.SourceSpec.parse("https://x.org/a/svamp.zip").cache_key()
    assert a != D.SourceSpec.parse("https://x.org/b/svamp.zip").cache_key()
    assert a != D.SourceSpec.parse(f"https://x.org/a/svamp.zip#sha256={'2' * 64}").cache_key()
