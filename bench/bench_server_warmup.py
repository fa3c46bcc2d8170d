"""What the job server's warm-up buys a forked training job: the CPU seconds of one demo training
job (default: demo_cs_easy, omp_after, k = 1) forked from a cold server image vs a warmed one,
through the server's own code and without Snakemake.

    PYTHONPATH=src .venv/bin/python bench/bench_server_warmup.py [--dataset demo_cs_easy]
        [--method omp_after] [--level 1] [--repeats 3] [--config workflow/configs/demo.yaml] [--work DIR]

1. Setup, in a forked child (this process never imports torch): prepare the dataset and its
   pre-trained model with the family's ``prepare`` / ``make_pretrained``, then train dense once
   through ``smcbench.cli.main(["train", …])`` so the method has its start weights.
2. A base process imports the server's preload list (``server._preload(server.default_preload())``)
   as ``smcbench serve`` does: the cold image. It forks a second base that also runs
   ``server._warm_up`` on the job's request: the warm image. Each repeat (cold and warm
   interleaved) forks one job from each image and runs it with ``server._run_child`` — the
   server's own child code — into a fresh out dir. A job's CPU seconds are its own rusage
   (user + sys, from ``os.wait4``), so the base's imports and warm-up are not counted.
3. The cold and warm jobs must report the same test metrics (printed).

Prints the load average, the setup times, one line per job (CPU s, wall s, test metric), the
medians and their ratio (cold / warm). One thread (both images call ``torch.set_num_threads(1)``
before forking; jobs get ``--threads 1`` as in the demo), quiet (TQDM_DISABLE, HF_HUB_OFFLINE,
SMCBENCH_NO_PROGRESS). Exit code 1 if the cold and warm metrics differ. About 1 minute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quiet() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("SMCBENCH_NO_PROGRESS", "1")  # the training bar (as `smcbench demo` sets it)
    # what `serve` sets before preloading
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")


def _train_argv(params: str, data: Path, pre: Path, out: Path, seed: int, start: Path | None,
                save_model: bool) -> list[str]:
    """The argv of a `smcbench train` job, as workflow/rules/train.smk writes it (threads: 1, the
    demo's train resources)."""
    argv = ["train", "--params", params, "--data", str(data), "--pretrained", str(pre), "--seed", str(seed),
            "--out", str(out), "--threads", "1", "--log", str(out / "log.txt")]
    if start is not None:
        argv += ["--start-weights", str(start)]
    if save_model:
        argv.append("--save-model")
    return argv


def _fork(fn) -> int:
    """Fork; the child runs ``fn()`` and exits with its code (1 on an exception, printed). Returns
    the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn() or 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _in_child(fn) -> None:
    """Run ``fn()`` in a forked child and wait for it; a failure ends the benchmark."""
    _, status = os.waitpid(_fork(fn), 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed ({os.waitstatus_to_exitcode(status)})")


def setup(a, work: Path) -> dict:
    """Prepare data, the pre-trained model and the dense run (in a forked child); return the
    method job's request, with its out dir to be filled in per repeat."""
    from smcbench import config as C

    cfg = C.validate_config(C.load_config(a.config))
    d = cfg["datasets"][a.dataset]
    model = a.model or d["models"][0]
    data, pre, dense = work / "data", work / "pretrained" / model, work / "dense"
    seed = a.seed

    def run_setup() -> int:
        import torch

        torch.set_num_threads(1)
        from smcbench.cli import main
        from smcbench.tasks import family_module
        from smcbench.tasks.base import write_json_atomic

        fam = family_module(d["family"])
        t0 = time.perf_counter()
        write_json_atomic(data / "meta.json", fam.prepare(a.dataset, "synthetic", data, dict(d.get("settings") or {})))
        t1 = time.perf_counter()
        write_json_atomic(pre / "pretrained.json", fam.make_pretrained(model, cfg["models"][model], "synthetic", pre))
        t2 = time.perf_counter()
        dense.mkdir(parents=True)
        params = C.train_params(cfg, a.dataset, model, "dense", d.get("scope", "paper"), "s0")
        code = main(_train_argv(params, data, pre, dense, seed, None, save_model=True))
        print(f"setup: prepare {a.dataset} {t1 - t0:.1f} s, pretrained {model} {t2 - t1:.1f} s, "
              f"dense {time.perf_counter() - t2:.1f} s (wall)", flush=True)
        return code

    _in_child(run_setup)
    params = C.train_params(cfg, a.dataset, model, a.method, d.get("scope", "paper"), C.level_tag(a.level))
    start = dense / "model.safetensors" if C.METHODS[a.method].start_from == "dense" else None
    argv = _train_argv(params, data, pre, work / "PLACEHOLDER", seed, start, save_model=False)
    return {"argv": argv, "cwd": str(ROOT), "env": dict(os.environ)}


def _for_out(request: dict, out: Path) -> dict:
    argv = list(request["argv"])
    argv[argv.index("--out") + 1] = str(out)
    argv[argv.index("--log") + 1] = str(out / "log.txt")
    return {**request, "argv": argv}


def run_job(request: dict, out: Path) -> tuple[float, float]:
    """Fork one job from this process and run it with the server's child code; returns (CPU s of
    the child, wall s)."""
    from smcbench import server

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ours, theirs = socket.socketpair()
    stdio = open(out.parent / f"{out.name}.stdio.txt", "wb")
    fds = [os.open(os.devnull, os.O_RDONLY), os.dup(stdio.fileno()), os.dup(stdio.fileno())]
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        ours.close()
        server._run_child(theirs, _for_out(request, out), fds)  # never returns
    theirs.close()
    for fd in fds:
        os.close(fd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    reply = ours.recv(8, socket.MSG_WAITALL)
    ours.close()
    stdio.close()
    code = struct.unpack("!ii", reply)[1] if len(reply) == 8 else os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"job into {out} failed ({code}); see {out.parent / (out.name + '.stdio.txt')}")
    return usage.ru_utime + usage.ru_stime, wall


def test_metrics(out: Path) -> str:
    m = json.loads((out / "metrics.json").read_text())
    prim = m.get("primary_metric")
    rows = [r for r in m["rows"] if r["split"].startswith("test") and r["metric"] == prim]
    return " ".join(f"{r['split']} {prim}={r['value']:.4f}" for r in rows)


def _send(fd: int, obj) -> None:
    data = json.dumps(obj).encode()
    os.write(fd, struct.pack("!I", len(data)) + data)


def _recv(fd: int):
    def read(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    (n,) = struct.unpack("!I", read(4))
    return json.loads(read(n))


def measure(request: dict, work: Path, repeats: int) -> int:
    """In the base process: preload as `serve` does (cold image); fork the warm image; interleave
    the repeats. Returns an exit code."""
    import torch

    from smcbench import server

    t0 = time.process_time()
    failed = server._preload(server.default_preload())
    for f in failed:
        print(f"could not preload {f}", flush=True)
    torch.set_num_threads(1)  # jobs run with --threads 1; both images set it before any fork
    print(f"cold image: preloaded {len(server.default_preload())} modules ({time.process_time() - t0:.1f} CPU s)",
          flush=True)

    to_warm_r, to_warm_w = os.pipe()
    from_warm_r, from_warm_w = os.pipe()

    def warm_image() -> int:  # warm up once, then run jobs on request
        os.close(to_warm_w)
        os.close(from_warm_r)
        t0 = time.process_time()
        warmed: set = set()
        server._warm_up(_for_out(request, work / "never-used"), warmed)
        if not warmed:
            raise RuntimeError("server._warm_up did not run for this request")
        print(f"warm image: server._warm_up ran ({time.process_time() - t0:.1f} CPU s, "
              f"{server.WARM_UP_STEPS} steps)", flush=True)
        _send(from_warm_w, "ready")
        while True:
            try:
                out = _recv(to_warm_r)
            except EOFError:
                return 0
            _send(from_warm_w, run_job(request, Path(out)))

    warm_pid = _fork(warm_image)
    os.close(to_warm_r)
    os.close(from_warm_w)
    if _recv(from_warm_r) != "ready":
        raise SystemExit("warm image failed")

    results: dict[str, list[tuple[float, float, str]]] = {"cold": [], "warm": []}
    for r in range(repeats):
        for kind in ("cold", "warm"):
            out = work / f"{kind}-r{r}"
            if kind == "cold":
                cpu, wall = run_job(request, out)
            else:
                _send(to_warm_w, str(out))
                cpu, wall = _recv(from_warm_r)
            metric = test_metrics(out)
            results[kind].append((cpu, wall, metric))
            print(f"{kind} repeat {r}: {cpu:.2f} CPU s, {wall:.2f} s wall, {metric}", flush=True)
    os.close(to_warm_w)
    os.waitpid(warm_pid, 0)

    med = {k: statistics.median(c for c, _, _ in v) for k, v in results.items()}
    med_wall = {k: statistics.median(w for _, w, _ in v) for k, v in results.items()}
    for k in ("cold", "warm"):
        print(f"{k}: CPU s " + " ".join(f"{c:.2f}" for c, _, _ in results[k])
              + f"  median {med[k]:.2f} CPU s ({med_wall[k]:.2f} s wall)", flush=True)
    print(f"ratio cold/warm: {med['cold'] / med['warm']:.2f}x CPU, {med_wall['cold'] / med_wall['warm']:.2f}x wall; "
          f"saved per job: {med['cold'] - med['warm']:.2f} CPU s", flush=True)
    metrics = {m for v in results.values() for _, _, m in v}
    same = len(metrics) == 1
    print(f"test metrics: {'identical' if same else 'DIFFER'} across all {2 * repeats} jobs: "
          + " | ".join(sorted(metrics)), flush=True)
    return 0 if same else 1


def main() -> int:
    _quiet()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="demo_cs_easy")
    ap.add_argument("--model", default=None, help="default: the dataset's first model")
    ap.add_argument("--method", default="omp_after")
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--config", default=str(ROOT / "workflow" / "configs" / "demo.yaml"))
    ap.add_argument("--work", default=None, help="default: a temporary folder, deleted afterwards")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    a = ap.parse_args()

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="smcbench-warmup-"))
    if a.work and work.exists() and any(work.iterdir()):
        ap.error(f"--work {work} is not empty: give a new or empty folder")
    work.mkdir(parents=True, exist_ok=True)
    print(f"{a.dataset} {a.method} k={a.level} seed {a.seed}, {a.repeats} repeats, work {work}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    try:
        request = setup(a, work)
        code = 1

        def base() -> int:
            return measure(request, work, a.repeats)

        try:
            _in_child(base)  # the base image is a child: this process stays torch-free
            code = 0
            print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        except SystemExit as e:
            print(e, file=sys.stderr)
        return code
    finally:
        if not a.work and not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
