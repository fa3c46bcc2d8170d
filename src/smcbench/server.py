"""A warm job server: import torch/transformers once, then fork one child per job.

Why: in the demo a training run takes well under a second, while starting Python and importing
torch + transformers takes ~2-6 s per job on 2 cores. The workflow stays the same — every rule
still runs ``python -m smcbench <step> …`` as its own job with its own params, outputs, log and
benchmark file — but when ``SMCBENCH_SERVER`` names this server's socket, the (torch-free) client
in ``smcbench.__main__`` hands its argv, working directory, environment and stdio to the server,
which forks a child that runs the step exactly as the command line would and reports the exit code.

The parent never runs torch code (no thread pools exist before the fork), so children start clean.
Children reseed from their own arguments, as every step does. Used by ``smcbench demo``; on a
cluster each job is its own process and the server is not used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

MAX_MSG = 1 << 20
BASE_PRELOAD = ["torch", "transformers", "safetensors.torch", "tqdm", "smcbench.cli", "smcbench.train",
                "smcbench.sparsity.scopes", "pandas", "matplotlib.pyplot", "seaborn", "smcbench.analysis.cli"]


def default_preload() -> list[str]:
    """What a job imports, from the registries: every method's module and every family's heavy
    module (``<package>.task`` of a family package, whose ``__init__`` is kept light)."""
    from importlib.util import find_spec

    from .sparsity.registry import METHODS
    from .tasks import FAMILIES

    methods = sorted({info.cls.split(":")[0] for info in METHODS.values()})
    families = []
    for module in FAMILIES.values():
        spec = find_spec(module)
        is_package = spec is not None and spec.submodule_search_locations is not None
        families.append(f"{module}.task" if is_package and find_spec(f"{module}.task") else module)
    return BASE_PRELOAD + methods + families


def _preload(modules: list[str]) -> list[str]:
    import importlib

    failed = []
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as e:  # a family that is not installed just isn't warm
            failed.append(f"{m} ({type(e).__name__}: {e})")
    # Touch the transformers model classes the families use, so their lazy imports are warm too.
    try:
        import transformers

        for cls in ("RobertaForMultipleChoice", "RobertaForMaskedLM", "RobertaModel", "EsmModel",
                    "EsmForMaskedLM", "BertModel", "MBartForConditionalGeneration"):
            getattr(transformers, cls, None)
    except Exception:
        pass
    return failed


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    msg, fds, _flags, _addr = socket.recv_fds(conn, MAX_MSG, 3)
    (length,) = struct.unpack("!I", msg[:4])
    data = msg[4:]
    while len(data) < length:
        chunk = conn.recv(length - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return json.loads(data.decode()), list(fds)


def _run_child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the job, run the step, send the exit code, exit."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setpgrp()
        conn.sendall(struct.pack("!i", os.getpid()))
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["smcbench"] + request["argv"]
        from smcbench.cli import main

        try:
            code = main(request["argv"]) or 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        try:
            conn.sendall(struct.pack("!i", int(code)))
        except OSError:
            pass
        os._exit(int(code) & 0xFF)


#: Steps of a warm-up run (see :func:`_warm_up`).
WARM_UP_STEPS = 2


def _warm_up(request: dict, warmed: set) -> None:
    """Before the first training job of a family is forked, run that job once in this process,
    shortened to :data:`WARM_UP_STEPS` steps and writing to a temporary folder that is then deleted.

    Why: a forked job inherits what the server has imported but pays every lazy first-call cost
    itself (the tokenizer's, ``from_pretrained``'s, the first forward and backward, the first
    selection): on the demo's small runs that was ~0.8 CPU s of a ~1.9 s job. Done once here, every
    later job of the family forks from a warm image. The warm-up's outputs are never read and each
    job seeds itself, so no job's result depends on it (tests/test_pipeline_server.py). Any failure
    only means no warm-up. ``SMCBENCH_WARM_UP=0`` turns it off."""
    import contextlib
    import gc
    import io
    import shutil
    import tempfile
    import time

    argv = list(request.get("argv") or [])
    if os.environ.get("SMCBENCH_WARM_UP", "1") == "0" or not argv or argv[0] != "train" or "--params" not in argv:
        return
    try:
        i = argv.index("--params") + 1
        params = json.loads(argv[i])
        family = params.get("family")
    except (ValueError, IndexError, AttributeError):
        return
    if not family or family in warmed:
        return
    warmed.add(family)
    params.setdefault("task", {}).setdefault("training", {})["max_steps"] = WARM_UP_STEPS
    argv[i] = json.dumps(params)
    tmp = tempfile.mkdtemp(prefix="smcbench-warm-")
    for flag, value in (("--out", tmp), ("--log", os.path.join(tmp, "log.txt"))):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            argv[argv.index(flag) + 1] = value
    cwd = os.getcwd()
    import torch

    threads = torch.get_num_threads()
    # the training loop installs its own SIGTERM/SIGUSR1 handlers (checkpoint on preemption): the
    # server's own handlers must be back afterwards, or it would no longer stop on SIGTERM
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGCHLD)}
    sink = io.StringIO()
    t0 = time.process_time()
    try:
        os.chdir(request["cwd"])
        from smcbench.cli import main

        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = main(argv)
        if code:
            raise RuntimeError(f"exit code {code}: {sink.getvalue().strip()[-300:]}")
        print(f"smcbench serve: warmed up for {family} jobs ({time.process_time() - t0:.1f} CPU s)",
              file=sys.stderr, flush=True)
    except BaseException as e:  # noqa: BLE001 - a failed warm-up only costs the speed-up
        print(f"smcbench serve: no warm-up for {family} ({type(e).__name__}: {e})", file=sys.stderr)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        shutil.rmtree(tmp, ignore_errors=True)
        gc.collect()  # the run's objects (and finalizers) go now, not in a forked job
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def serve(socket_path: str, preload: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT. Removes the socket file on exit."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are files; never a display
    failed = _preload(default_preload() if preload is None else preload)
    for f in failed:
        print(f"smcbench serve: could not preload {f}", file=sys.stderr)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(socket_path)
    srv.listen(64)
    # accept() wakes up twice a second to look at the stop flag: once a warm-up has run (or any
    # library started threads), SIGTERM may be delivered to another thread, which would leave a
    # plain blocking accept() waiting for a connection that never comes
    srv.settimeout(0.5)

    def reap(*_):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    stop = {"flag": False}
    warmed: set = set()  # families whose first training job already ran once here (_warm_up)

    def terminate(*_):
        stop["flag"] = True
        srv.close()

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    print(f"smcbench serve: ready on {socket_path}", file=sys.stderr, flush=True)
    try:
        while not stop["flag"]:
            try:
                conn, _ = srv.accept()
                conn.settimeout(None)
            except (InterruptedError, socket.timeout):
                continue
            except OSError:
                break
            try:
                request, fds = _recv_request(conn)
            except Exception as e:
                print(f"smcbench serve: bad request ({e})", file=sys.stderr)
                conn.close()
                continue
            _warm_up(request, warmed)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                srv.close()
                _run_child(conn, request, fds)
            for fd in fds:
                os.close(fd)
            conn.close()
    finally:
        if os.path.exists(socket_path):
            os.unlink(socket_path)
    return 0
