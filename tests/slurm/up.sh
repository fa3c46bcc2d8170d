#!/usr/bin/env bash
# Bring up a throw-away one-node SLURM cluster on this machine, for `make test-slurm`.
#
#   tests/slurm/up.sh            install (if needed), configure, start; idempotent
#
# What it builds: munged + slurmctld + slurmd on localhost, one partition `debug`, no accounting
# database (so Snakemake must poll with `squeue`, see profiles/ci-slurm), and two fake GPUs
# declared as GRES backed by /dev/null and /dev/zero, so `--gpus=1` requests are scheduled the way
# a GPU cluster schedules them. Needs root and Debian/Ubuntu (apt). Daemons are stopped by
# tests/slurm/down.sh, by pid file. Nothing here is used by `make test`.
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "up.sh: must run as root (starts system daemons)" >&2; exit 2; }

log() { printf '[slurm-up] %s\n' "$*"; }

# --- 1. packages ------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
  command -v apt-get >/dev/null || { echo "up.sh: slurm is not installed and apt-get is missing" >&2; exit 2; }
  log "installing slurmctld slurmd slurm-client munge (apt)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi

# --- 2. configuration (written to temporary files, installed only when they changed) ------------
node=$(hostname -s)
ncpu=$(nproc)
# slurmd drains the node when RealMemory exceeds what it detects; stay at 90 % of MemTotal.
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm

conf_dir=$(mktemp -d)
trap 'rm -rf "$conf_dir"' EXIT
cat > "$conf_dir/slurm.conf" <<CONF
# Written by smcbench tests/slurm/up.sh: a one-node test cluster, not for production.
ClusterName=smcbench-ci
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
# No cgroups in containers: track processes by pid, no task confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job without --mem takes the whole node.
DefMemPerCPU=1024
# Finished jobs stay visible to 'squeue --states=all' this long; Snakemake's squeue polling needs
# MinJobAge >= 3 x slurm-init-seconds-before-status-checks; an hour also lets run.sh inspect every
# job of a slow run afterwards.
MinJobAge=3600
# No slurmdbd: sacct/sacctmgr do not work here, hence slurm-status-command: squeue.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${ncpu} RealMemory=${mem_mb} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# A GPU GRES without File= is dropped by slurmd (node DRAIN); any character device does.
cat > "$conf_dir/gres.conf" <<CONF
AutoDetect=off
NodeName=${node} Name=gpu File=/dev/null
NodeName=${node} Name=gpu File=/dev/zero
CONF

changed=0
for f in slurm.conf gres.conf; do
  if ! cmp -s "$conf_dir/$f" "/etc/slurm/$f"; then install -m 0644 "$conf_dir/$f" "/etc/slurm/$f"; changed=1; fi
done

# --- 3. already up? -------------------------------------------------------------------------------
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if alive /run/munge/munged.pid && alive /run/slurmctld.pid && alive /run/slurmd.pid \
   && sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)$'; then
  if (( changed )); then log "configuration changed: scontrol reconfigure"; scontrol reconfigure; fi
  log "cluster already up"; sinfo; exit 0
fi

# --- 4. daemons (no systemd: each forks and writes a pid file) --------------------------------
if ! alive /run/munge/munged.pid; then
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
fi
munge -n | unmunge >/dev/null || { echo "up.sh: munge credential round trip failed" >&2; exit 1; }
alive /run/slurmctld.pid || /usr/sbin/slurmctld
alive /run/slurmd.pid || /usr/sbin/slurmd

for _ in $(seq 1 150); do
  state=$(sinfo -h -o '%T' 2>/dev/null || true)
  case $state in
    idle|mixed|allocated) log "cluster up"; sinfo; sinfo -h -o 'gres: %G'; exit 0 ;;
    drain*|down*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.2
done
echo "up.sh: node $node did not become idle; reasons:" >&2
sinfo -R >&2 || true
tail -n 20 /var/log/slurm/slurmd.log /var/log/slurm/slurmctld.log >&2 || true
exit 1
