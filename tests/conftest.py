"""Fixtures shared by the tests: a served folder for the download tests of every family, and a
tiny prepared demo commonsense run (data + pre-trained model) for the training tests."""

import functools
import http.server
import os
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


def tiny_commonsense_run(root, dataset_settings: dict, training: dict, pretrain_steps: int) -> dict:
    """Prepare ``demo_cs_easy`` under ``root/data`` and pre-train ``demo_roberta`` under ``root/pre``
    from the demo config, with ``dataset_settings`` / ``training`` / ``pretrain_steps`` overriding
    it (sizes small enough for a test). Returns that config (for ``smcbench.config.train_params``)."""
    from smcbench import config as C
    from smcbench.tasks import family_module
    from smcbench.tasks.base import write_json_atomic

    cfg = C.load_config(os.path.join(os.path.dirname(__file__), "..", "workflow", "configs", "demo.yaml"))
    ds = cfg["datasets"]["demo_cs_easy"]
    ds["settings"].update(dataset_settings)
    ds["training"].update(training)
    model = cfg["models"]["demo_roberta"]
    model["settings"].update(pretrain_steps=pretrain_steps)
    family = family_module("commonsense")
    write_json_atomic(root / "data" / "meta.json", family.prepare("demo_cs_easy", "synthetic", root / "data", ds["settings"]))
    write_json_atomic(root / "pre" / "pretrained.json",
                      family.make_pretrained("demo_roberta", {**model, "family": "commonsense"}, "synthetic", root / "pre"))
    return cfg
