"""The demo's warm job server runs a step exactly as the command line would: same files, same exit
code, stderr passed through, and no server → the step runs in-process."""

import json
import os
import subprocess
import sys
import time

import pytest

SETTINGS = {"variant": "easy", "world_seed": 7, "n_train": 40, "n_test": 20, "validation_fraction": 0.2,
            "max_length": 32}


def run_step(args, env):
    return subprocess.run([sys.executable, "-m", "smcbench", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture()
def server(tmp_path):
    sock = tmp_path / "s.sock"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "smcbench", "serve", "--socket", str(sock), "--preload",
                             "smcbench.cli"], env=env, stderr=subprocess.PIPE)
    t0 = time.time()
    while not sock.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() - t0 < 60
        time.sleep(0.05)
    yield str(sock)
    proc.terminate()
    proc.wait(timeout=10)
    assert not sock.exists()


def test_server_runs_the_step_like_the_command_line(server, tmp_path):
    args = ["prepare", "demo_cs_easy", "--source", "synthetic", "--settings", json.dumps(SETTINGS)]
    base = {**os.environ, "HF_HUB_OFFLINE": "1"}
    direct = run_step(args + ["--out", str(tmp_path / "direct")], base)
    served = run_step(args + ["--out", str(tmp_path / "served")], {**base, "SMCBENCH_SERVER": server})
    assert direct.returncode == served.returncode == 0, served.stderr
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
        assert (tmp_path / "direct" / name).read_bytes() == (tmp_path / "served" / name).read_bytes()


def test_server_passes_errors_and_exit_codes_through(server, tmp_path):
    env = {**os.environ, "SMCBENCH_SERVER": server}
    out = run_step(["prepare", "no_such_dataset", "--source", "synthetic", "--out", str(tmp_path / "x")], env)
    assert out.returncode == 2
    assert "unknown dataset 'no_such_dataset'" in out.stderr


def test_no_server_means_in_process(tmp_path):
    env = {**os.environ, "SMCBENCH_SERVER": str(tmp_path / "missing.sock")}
    out = run_step(["prepare", "no_such_dataset", "--source", "synthetic", "--out", str(tmp_path / "x")], env)
    assert out.returncode == 2 and "unknown dataset" in out.stderr
