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

    def reap(*_):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    stop = {"flag": False}

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
            except InterruptedError:
                continue
            except OSError:
                break
            try:
                request, fds = _recv_request(conn)
            except Exception as e:
                print(f"smcbench serve: bad request ({e})", file=sys.stderr)
                conn.close()
                continue
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
