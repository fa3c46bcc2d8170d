#!/usr/bin/env bash
# Preemption on the real test cluster: kill a training job the way SLURM does at its time limit
# (SIGTERM to the job's steps), and check that Snakemake's retry resumes it from its checkpoint and
# ends with the same results as an uninterrupted local run.
#
#   tests/slurm/preempt.sh WORKDIR
#
# WORKDIR is a workdir kept by `tests/slurm/run.sh --keep` (it holds slurm/ and local/ with the
# demo slice up to the dense run). Not part of `make test-slurm` (it adds a few minutes).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:?usage: preempt.sh WORKDIR (from tests/slurm/run.sh --keep)}
export PATH=$ROOT/.venv/bin:$PATH SMCBENCH_NO_PROGRESS=1 SMCBENCH_CHECKPOINT_MINUTES=0
TARGET=results/demo/runs/demo_cs_easy/all/demo_roberta/random_after/paper/s0.2000/seed0/metrics.json
COMMON=(--snakefile "$ROOT/Snakefile" --configfile "$ROOT/workflow/configs/demo.yaml" --nolock)
say() { printf '[preempt] %s\n' "$*"; }

# caught-signal mask of a pid has SIGUSR1 (bit 9) once the Checkpointer is installed
has_checkpointer() { local m; m=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $m ]] && (( (16#$m >> 9) & 1 )); }

(cd "$ROOT" && snakemake "${COMMON[@]}" --directory "$WORK/slurm" --profile "$ROOT/profiles/slurm" \
   --profile "$ROOT/profiles/ci-slurm" --retries 1 "$TARGET") >"$WORK/preempt.log" 2>&1 &
smk=$!
say "snakemake pid $smk; waiting for the training process"
killed=""
for _ in $(seq 1 1200); do
  pid=""
  for cand in $(pgrep -f "smcbench train .*random_after" || true); do  # the python, not its shell
    if has_checkpointer "$cand"; then pid=$cand; break; fi
  done
  if [[ -n $pid ]]; then
    sleep 1
    jid=$(squeue -h -o '%i %k' | awk '/random_after/ {print $1; exit}')
    [[ -n $jid ]] || jid=$(squeue -h -o %i | tail -1)
    say "training pid $pid has its checkpointer; scancel --signal=TERM $jid"
    scancel --signal=TERM "$jid"
    killed=$jid
    break
  fi
  sleep 0.5
done
[[ -n $killed ]] || { kill "$smk"; say "FAIL: training never started"; exit 1; }
wait "$smk" || { tail -n 30 "$WORK/preempt.log"; say "FAIL: snakemake failed"; exit 1; }
run_log=$WORK/slurm/${TARGET%/metrics.json}/log.txt
grep -E "checkpoint:" "$run_log" || true
grep -q "checkpoint: saved step" "$run_log" || { say "FAIL: no checkpoint saved"; exit 1; }
grep -q "checkpoint: resuming from step" "$run_log" || { say "FAIL: the retry did not resume"; exit 1; }

say "the same run locally, uninterrupted"
(cd "$ROOT" && snakemake "${COMMON[@]}" --directory "$WORK/local" --profile "$ROOT/profiles/local" --cores 2 \
   "$TARGET") >"$WORK/preempt-local.log" 2>&1
python - "$WORK/slurm/$TARGET" "$WORK/local/$TARGET" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for key in ("rows", "history", "selection", "realized_sparsity", "final_train_loss"):
    assert a[key] == b[key], (key, a[key], b[key])
print("[preempt] OK: the preempted + resumed run equals the uninterrupted one:",
      [(r["split"], r["metric"], r["value"]) for r in a["rows"]][:2])
PY
