#!/usr/bin/env bash
# Preemption on the real test cluster: kill a training job the way SLURM does at its time limit or
# on preemption (SIGTERM to the job's processes), and check that Snakemake's retry resumes it from
# its checkpoint and ends with the same results as an uninterrupted local run.
#
#   tests/slurm/preempt.sh [--keep]
#
# Runs the demo slice (tests/slurm/slice.yaml) up to one sparse run (random_after, s = 0.2) through
# the SLURM profiles with --retries 1 and SMCBENCH_CHECKPOINT_MINUTES=0 (save only on a signal),
# sends SIGTERM to the training job once its checkpointer is installed, then runs the same target
# locally. Not part of `make test-slurm` (it adds several minutes); needs the cluster of up.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KEEP=0
[[ ${1:-} == --keep ]] && KEEP=1
export PATH=$ROOT/.venv/bin:$PATH SMCBENCH_NO_PROGRESS=1 SMCBENCH_CHECKPOINT_MINUTES=0
TARGET=results/demo/runs/demo_cs_easy/all/demo_roberta/random_after/paper/s0.2000/seed0/metrics.json
COMMON=(--snakefile "$ROOT/Snakefile" --configfile "$ROOT/workflow/configs/demo.yaml"
        "$ROOT/tests/slurm/slice.yaml" --nolock)
say() { printf '[preempt] %s\n' "$*"; }
fail() { printf '[preempt] FAIL: %s\n' "$*" >&2; KEEP=1; exit 1; }

"$ROOT/tests/slurm/up.sh" >/dev/null
WORK=$(mktemp -d /tmp/smcbench-preempt.XXXXXX)
cleanup() { if (( KEEP )); then say "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# The caught-signal mask of a process has SIGUSR1 (bit 9) once the Checkpointer is installed.
has_checkpointer() {
  local m
  m=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $m ]] && (( (16#$m >> 9) & 1 ))
}

t0=$(date +%s)
(cd "$ROOT" && snakemake "${COMMON[@]}" --directory "$WORK/slurm" --profile "$ROOT/profiles/slurm" \
   --profile "$ROOT/profiles/ci-slurm" --retries 1 "$TARGET") >"$WORK/slurm.log" 2>&1 &
smk=$!
say "snakemake (pid $smk) runs the slice on SLURM; waiting for the random_after training process"
killed=""
for _ in $(seq 1 2400); do
  pid=""
  for cand in $(pgrep -f "smcbench train .*random_after" || true); do  # the python, not its shell
    if has_checkpointer "$cand"; then pid=$cand; break; fi
  done
  if [[ -n $pid ]]; then
    sleep 1
    jid=$(grep -oE 'submitted with SLURM jobid [0-9]+ \(log: [^)]*rule_train/' "$WORK/slurm.log" | tail -1 \
          | awk '{print $5}')
    say "training (pid $pid) has its checkpointer: scancel --signal=TERM $jid"
    scancel --signal=TERM "$jid"
    killed=$jid
    break
  fi
  kill -0 "$smk" 2>/dev/null || break
  sleep 0.5
done
[[ -n $killed ]] || { kill "$smk" 2>/dev/null || true; fail "the training process was never seen"; }
wait "$smk" || { tail -n 30 "$WORK/slurm.log" >&2; fail "snakemake failed (log: $WORK/slurm.log)"; }
say "SLURM run with one preemption: $(( $(date +%s) - t0 )) s"
# The killed attempt's SLURM log holds its save (Snakemake resets the run's log.txt for the retry).
first_log=$(ls "$WORK"/slurm/logs/slurm/rule_train/*/"$killed".log)
run_log=$WORK/slurm/${TARGET%/metrics.json}/log.txt
grep -hE "^checkpoint:" "$first_log" "$run_log" | sed 's/^/[preempt]   /' || true
grep -q "checkpoint: saved step" "$first_log" || fail "the killed job saved no checkpoint ($first_log)"
grep -q "checkpoint: resuming from step" "$run_log" || fail "the retry did not resume from the checkpoint"
[[ ! -d $WORK/slurm/${TARGET%/metrics.json}/.checkpoint ]] || fail "the checkpoint was not cleared"

say "the same run locally, uninterrupted"
(cd "$ROOT" && snakemake "${COMMON[@]}" --directory "$WORK/local" --profile "$ROOT/profiles/local" --cores 2 \
   "$TARGET") >"$WORK/local.log" 2>&1 || fail "local run failed (log: $WORK/local.log)"
python - "$WORK/slurm/$TARGET" "$WORK/local/$TARGET" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for key in ("rows", "history", "selection", "realized_sparsity", "final_train_loss"):
    assert a[key] == b[key], (key, a[key], b[key])
print("[preempt] OK: preempted + resumed on SLURM == uninterrupted locally:",
      [(r["split"], r["metric"], r["value"]) for r in a["rows"]])
PY
