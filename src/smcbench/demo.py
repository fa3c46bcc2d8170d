"""``smcbench demo`` (what ``make demo`` runs): the whole workflow on the built-in synthetic suite.

It starts the warm job server (see :mod:`smcbench.server`), runs Snakemake on the demo config to
``all_figures``, builds the HTML report, stops the server and prints where the time went.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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
        # Snakemake starts while the server is still importing: a job that comes before the socket
        # waits for it as long as the server process lives (smcbench.client), else runs in-process.
        server = subprocess.Popen([sys.executable, "-m", "smcbench", "serve", "--socket", str(sock)], env=env)
        env["SMCBENCH_SERVER"] = str(sock)
        env["SMCBENCH_SERVER_PID"] = str(server.pid)
    try:
        cmd = snakemake_cmd() + ["--configfile", configfile, "--cores", str(cores), "--scheduler", "greedy",
                                 "--rerun-incomplete", "--keep-going", "--show-failed-logs",
                                 # one token: Snakemake 9's --quiet takes several values and would
                                 # swallow a target that follows it (`--quiet rules all_figures`)
                                 "--quiet=rules", *extra, *targets]
        print("+ " + " ".join(cmd), file=sys.stderr)
        t_setup = time.time() - t0
        t_snake = time.time()
        code = subprocess.call(cmd, env=env)
        if server is not None and server.poll() is not None:
            print(f"smcbench demo: the job server exited early (code {server.returncode}); jobs ran without it, "
                  "each importing torch itself", file=sys.stderr)
        t_run = time.time() - t0
        if code == 0 and not dry_run:
            suite = _suite(configfile)
            report = f"results/{suite}/report.html"
            t_rep = time.time()
            rc = subprocess.call(snakemake_cmd() + ["--configfile", configfile, *extra, "--report", report, *targets],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t_rep = time.time() - t_rep
            workdir = _workdir(extra)
            print(f"\nsmcbench demo: workflow done in {t_run:.0f}s; figures in {workdir / 'results' / suite / 'figures'}/, "
                  f"tables in {workdir / 'results' / suite / 'tables'}/"
                  + (f", report {workdir / report}" if rc == 0 else " (the HTML report failed; run snakemake --report)"),
                  file=sys.stderr)
            _print_matching_table(workdir / "results" / suite / "results.csv")
            try:
                log = _snakemake_log(workdir, t_snake)
                split = time_split(log, workdir / "results" / suite / "results.csv", t_snake) if log else None
            except (OSError, ValueError) as e:  # the summary must never fail the demo
                split = None
                print(f"smcbench demo: no time split ({e})", file=sys.stderr)
            if split is not None:
                print("\n" + format_time_split(split, setup=t_setup, report=t_rep, total=time.time() - t0))
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


def _snakemake_log(workdir: Path, since: float) -> Path | None:
    """The log Snakemake wrote for the run that started at ``since`` (``.snakemake/log/`` of its directory)."""
    logs = [p for p in (workdir / ".snakemake" / "log").glob("*.snakemake.log") if p.stat().st_mtime >= since - 1]
    return min(logs, key=lambda p: p.stat().st_mtime) if logs else None


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_DONE = re.compile(r"^Finished jobid: \d+ \(Rule: (\w+)\)")
_SETUP_RULES = {"download_dataset", "download_model", "prepare", "pretrained"}
_TRAIN_RULES = {"dense", "train", "train_imp"}


def time_split(log: Path, results_csv: Path | None, started: float) -> dict:
    """Where a Snakemake run's wall time went.

    From Snakemake's log (one-second time stamps of each finished job; the demo runs Snakemake with
    ``--quiet=rules``, so finish times are all it records): ``planning`` (start to the first job
    finishing, the first jobs being near-instant downloads), the wall span of the data/pre-training
    jobs, of the training jobs and of the analyses (from the last training job to the end). From
    ``results.csv``: per family the training runs and their job-seconds (each job's own wall time,
    ``wall_time_s`` of its metrics.json).
    """
    done: list[tuple[str, float]] = []
    stamp = None
    for line in log.read_text(errors="replace").splitlines():
        if m := _STAMP.match(line):
            stamp = time.mktime(time.strptime(m.group(1), "%a %b %d %H:%M:%S %Y"))
        elif (m := _DONE.match(line)) and stamp is not None:
            done.append((m.group(1), stamp))
    if not done:
        raise ValueError(f"{log}: no finished job")
    first, last = done[0][1], done[-1][1]

    def span(rules, start=None):
        t = [ts for r, ts in done if r in rules]
        return {"n": len(t), "wall": (max(t) - (start if start is not None else min(t))) if t else 0.0}

    setup = span(_SETUP_RULES, started)
    train = span(_TRAIN_RULES)
    t_train_end = max((ts for r, ts in done if r in _TRAIN_RULES), default=first)
    rest = {r for r, _ in done} - _SETUP_RULES - _TRAIN_RULES
    analysis = span(rest, t_train_end)
    families: dict[str, dict] = {}
    if results_csv is not None and results_csv.is_file():
        import csv

        seen = set()
        with open(results_csv, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("run_dir") in seen or not row.get("wall_time_s"):
                    continue
                seen.add(row.get("run_dir"))
                g = families.setdefault(row["family"], {"n": 0, "job_s": 0.0})
                g["n"] += 1
                g["job_s"] += float(row["wall_time_s"])
    return {"planning": max(0.0, first - started), "jobs": last - first, "n_jobs": len(done),
            "setup_jobs": setup, "training": train, "analysis": analysis, "families": families}


def format_time_split(split: dict, setup: float, report: float, total: float) -> str:
    s, t, a = split["setup_jobs"], split["training"], split["analysis"]
    rows = [("set-up (until Snakemake starts; server alongside)", setup),
            ("Snakemake planning (until the first job ended)", split["planning"]),
            (f"{split['n_jobs']} jobs, first to last", split["jobs"]),
            (f"  data + pre-training, {s['n']} jobs (from the start)", s["wall"]),
            (f"  training, {t['n']} jobs (first to last)", t["wall"]),
            (f"  results + analyses, {a['n']} jobs (after training)", a["wall"]),
            ("HTML report", report), ("total", total)]
    lines = ["smcbench demo: where the wall time went (seconds; Snakemake's log has 1 s time stamps)"]
    lines += [f"  {label:52s}{sec:7.0f}" for label, sec in rows]
    if split["families"]:
        lines.append("  training runs by family: runs, job-seconds (each job's own wall time; jobs run side by side)")
        for fam, g in sorted(split["families"].items(), key=lambda kv: -kv[1]["job_s"]):
            lines.append(f"    {fam:14s}{g['n']:5d}{g['job_s']:8.0f}")
    return "\n".join(lines)


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
