"""``smcbench demo`` (what ``make demo`` runs): the whole workflow on the built-in synthetic suite.

It starts the warm job server (see :mod:`smcbench.server`), runs Snakemake on the demo config to
``all_figures``, builds the HTML report, stops the server and prints where the time went.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def snakemake_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("snakemake")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]


def run_demo(cores: int = 2, configfile: str = "workflow/configs/demo.yaml", targets: list[str] | None = None,
             extra: list[str] | None = None, use_server: bool = True) -> int:
    targets = targets or ["all_figures"]
    extra = [a for a in (extra or []) if a != "--"]
    dry_run = any(a in ("-n", "--dry-run", "--dryrun") for a in extra)
    use_server = use_server and not dry_run  # a dry run starts no job
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("SMCBENCH_NO_PROGRESS", "1")  # many short jobs in parallel: Snakemake shows progress
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    t0 = time.time()
    server = None
    sock_dir = tempfile.mkdtemp(prefix="smcbench-")
    sock = Path(sock_dir) / "server.sock"
    if use_server:
        server = subprocess.Popen([sys.executable, "-m", "smcbench", "serve", "--socket", str(sock)], env=env)
        if _wait_for(sock, server):
            env["SMCBENCH_SERVER"] = str(sock)
            print(f"smcbench demo: job server warm after {time.time() - t0:.1f}s", file=sys.stderr)
        else:
            print("smcbench demo: job server did not start; every job imports torch itself", file=sys.stderr)
    try:
        cmd = snakemake_cmd() + ["--configfile", configfile, "--cores", str(cores), "--scheduler", "greedy",
                                 "--rerun-incomplete", "--keep-going", "--show-failed-logs",
                                 # one token: Snakemake 9's --quiet takes several values and would
                                 # swallow a target that follows it (`--quiet rules all_figures`)
                                 "--quiet=rules", *extra, *targets]
        print("+ " + " ".join(cmd), file=sys.stderr)
        code = subprocess.call(cmd, env=env)
        t_run = time.time() - t0
        if code == 0 and not dry_run:
            suite = _suite(configfile)
            report = f"results/{suite}/report.html"
            rc = subprocess.call(snakemake_cmd() + ["--configfile", configfile, *extra, "--report", report, *targets],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"\nsmcbench demo: workflow done in {t_run:.0f}s; figures in results/{suite}/figures/, "
                  f"tables in results/{suite}/tables/"
                  + (f", report {report}" if rc == 0 else " (the HTML report failed; run snakemake --report)"),
                  file=sys.stderr)
            _print_matching_table(_workdir(extra) / "results" / suite / "results.csv")
        return code
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        try:
            sock.unlink(missing_ok=True)
            os.rmdir(sock_dir)
        except OSError:
            pass


def _workdir(extra: list[str]) -> Path:
    """The working directory Snakemake ran in (`--directory X` / `-d X` among the extra args)."""
    for i, arg in enumerate(extra):
        if arg in ("--directory", "-d") and i + 1 < len(extra):
            return Path(extra[i + 1])
        if arg.startswith("--directory="):
            return Path(arg.split("=", 1)[1])
    return Path(".")


def _print_matching_table(results_csv: Path) -> None:
    """SPEC §5: the demo ends with the matching-sparsity table in the terminal."""
    try:
        from .analysis.matching import format_terminal_table
    except ImportError as e:  # the analysis extras are missing: the figures still exist
        print(f"smcbench demo: no terminal table ({e})", file=sys.stderr)
        return
    print("\n" + format_terminal_table(str(results_csv)))


def _suite(configfile: str) -> str:
    import yaml

    return yaml.safe_load(Path(configfile).read_text()).get("suite", "demo")
