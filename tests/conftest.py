"""Fixtures shared by the download tests of every family."""

import functools
import http.server
import threading

import pytest


@pytest.fixture
def http_root(tmp_path):
    """A folder served by ``http.server`` on 127.0.0.1 for one test; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served(http_root):
    """The same served folder under the name the arithmetic and protein tests use."""
    return http_root
