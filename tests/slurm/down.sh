#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/up.sh: each daemon by its pid file, newest first.
# Never kills by process name. Safe to run when nothing is running.
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  [[ -s $pidfile ]] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[slurm-down] $pidfile: pid $pid still alive after 10 s" >&2
      continue
    fi
    echo "[slurm-down] stopped $pidfile (pid $pid)"
  fi
  # slurmctld leaves its pid file behind; remove it so a recycled pid is never signalled.
  rm -f "$pidfile"
done
