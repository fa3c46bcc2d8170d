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


def test_a_warmed_up_server_trains_like_the_command_line(tmp_path):
    """The server runs the first training job of a family once in its own process (shortened, into
    a temporary folder) before forking it; neither that job nor the next may differ from the CLI."""
    from conftest import tiny_commonsense_run
    from smcbench import config as C

    cfg = tiny_commonsense_run(tmp_path, dict(n_train=48, n_test=16, validation_fraction=0.25),
                               dict(epochs=1, batch_size=16), pretrain_steps=2)
    params = C.train_params(cfg, "demo_cs_easy", "demo_roberta", "omp_before", "paper", C.level_tag(3))

    def args(out):
        return ["train", "--params", params, "--data", str(tmp_path / "data"), "--pretrained", str(tmp_path / "pre"),
                "--seed", "0", "--threads", "1", "--out", str(tmp_path / out), "--log", str(tmp_path / f"{out}.log")]

    base = {**os.environ, "HF_HUB_OFFLINE": "1", "SMCBENCH_NO_PROGRESS": "1"}
    sock = tmp_path / "s.sock"
    proc = subprocess.Popen([sys.executable, "-m", "smcbench", "serve", "--socket", str(sock)], env=base,
                            stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not sock.exists():
            assert proc.poll() is None and time.time() - t0 < 120
            time.sleep(0.05)
        served = [run_step(args(f"served{i}"), {**base, "SMCBENCH_SERVER": str(sock)}) for i in range(2)]
    finally:
        proc.terminate()  # still stops on SIGTERM after a warm-up (the run installs its own handler)
        _, server_log = proc.communicate(timeout=30)
    direct = run_step(args("direct"), base)
    assert direct.returncode == 0 and all(s.returncode == 0 for s in served), [s.stderr for s in served]
    assert "smcbench serve: warmed up for commonsense jobs" in server_log, server_log

    def result(out):
        from safetensors import safe_open

        m = json.loads((tmp_path / out / "metrics.json").read_text())
        # tensors and metadata, not bytes: safetensors writes its metadata map in a per-process order
        with safe_open(str(tmp_path / out / "mask.safetensors"), "pt") as f:
            mask = {n: f.get_tensor(n).tolist() for n in f.keys()}, f.metadata()
        return m["rows"], m["selection"], m["realized_sparsity"], mask

    assert result("served0") == result("direct") == result("served1")
    assert not list(tmp_path.glob("smcbench-warm-*"))


def test_a_job_waits_for_a_server_that_is_still_starting(tmp_path, monkeypatch):
    """`smcbench demo` starts Snakemake while the server imports: a job waits for the socket while
    the server process (SMCBENCH_SERVER_PID) lives, and runs in-process at once without one."""
    import socket
    import threading

    from smcbench import client

    path = str(tmp_path / "late.sock")
    monkeypatch.delenv("SMCBENCH_SERVER_PID", raising=False)
    t0 = time.monotonic()
    assert client._connect(path) is None and time.monotonic() - t0 < 1  # no server starting: no wait

    def listen_later():
        time.sleep(0.5)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        conn, _ = srv.accept()
        conn.close()
        srv.close()

    worker = threading.Thread(target=listen_later)
    worker.start()
    monkeypatch.setenv("SMCBENCH_SERVER_PID", str(os.getpid()))  # a live "server"
    s = client._connect(path, wait_s=30)
    assert s is not None and time.monotonic() - t0 >= 0.5
    s.close()
    worker.join()
    monkeypatch.setenv("SMCBENCH_SERVER_PID", "999999999")  # a server that died: no wait
    t1 = time.monotonic()
    assert client._connect(str(tmp_path / "never.sock")) is None and time.monotonic() - t1 < 1
