"""The torch-free client of :mod:`smcbench.server`: hand this process's job to the warm server.

Returns the job's exit code, or ``None`` when no server answers (the caller then runs the step
in-process, exactly as without a server).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys


def _recv_int(s: socket.socket) -> int | None:
    data = b""
    while len(data) < 4:
        chunk = s.recv(4 - len(data))
        if not chunk:
            return None
        data += chunk
    return struct.unpack("!i", data)[0]


def _server_starting() -> bool:
    """True while the server named by ``SMCBENCH_SERVER_PID`` (set by ``smcbench demo``, which
    starts Snakemake while the server is still importing) is alive: its socket is still to come."""
    try:
        os.kill(int(os.environ["SMCBENCH_SERVER_PID"]), 0)
        return True
    except (KeyError, ValueError, OSError):
        return False


def _connect(socket_path: str, wait_s: float = 120.0) -> socket.socket | None:
    import time

    deadline = time.monotonic() + wait_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(socket_path)
            return s
        except OSError:
            s.close()
            if os.path.exists(socket_path) or not _server_starting() or time.monotonic() > deadline:
                return None
            time.sleep(0.05)


def run_via_server(socket_path: str, argv: list[str]) -> int | None:
    payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    s = _connect(socket_path)
    if s is None:
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        socket.send_fds(s, [struct.pack("!I", len(payload)) + payload[: 1 << 16]], [0, 1, 2])
        if len(payload) > 1 << 16:
            s.sendall(payload[1 << 16:])
        child = _recv_int(s)  # the server's child runs the job in its own process group
        if child is None:
            print("smcbench: the job server closed the connection before starting the job", file=sys.stderr)
            return 1

        def forward(signum, _frame):
            # Snakemake stopping this job stops the child that really runs it.
            try:
                os.killpg(child, signum)
            except OSError:
                pass
            os._exit(128 + signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = _recv_int(s)
        if code is None:
            print("smcbench: the job server closed the connection without an exit code", file=sys.stderr)
            return 1
        return code
    finally:
        s.close()
