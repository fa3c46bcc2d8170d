#!/usr/bin/env bash
# End-to-end check of profiles/slurm on a real (one-node) SLURM cluster: `make test-slurm`.
#
#   tests/slurm/run.sh [--keep]
#
# 1. starts the test cluster (tests/slurm/up.sh: installs slurm-wlm + munge with apt if needed);
# 2. runs a slice of the offline demo, shrunk (download -> prepare -> pretrained -> dense -> one
#    sparse run: 6 SLURM jobs) through --profile profiles/slurm --profile profiles/ci-slurm in a
#    scratch workdir;
# 3. runs the same slice locally (--profile profiles/local) in another scratch workdir;
# 4. checks: every job went through sbatch, GPU rules asked for --gpus=1 and SLURM gave them a GPU
#    (JOB_GRES=gpu:1), CPU rules asked for none, and the value columns of the slice's results
#    table (value, baseline, sparsities, config hash, keyed by dataset/model/method/level/seed/
#    split/metric) are identical in both runs (training is deterministic on CPU).
# The cluster is left running for the next call; stop it with tests/slurm/down.sh.
# Needs root, apt (first run), and snakemake-executor-plugin-slurm in .venv.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=$ROOT/.venv/bin/python
SNAKEMAKE=$ROOT/.venv/bin/snakemake
KEEP=0
[[ ${1:-} == --keep ]] && KEEP=1

say() { printf '[test-slurm] %s\n' "$*"; }
fail() { printf '[test-slurm] FAIL: %s\n' "$*" >&2; exit 1; }

[[ -x $SNAKEMAKE ]] || fail "$SNAKEMAKE not found: run 'make venv' first"
"$PY" -c "import snakemake_executor_plugin_slurm, snakemake_executor_plugin_slurm_jobstep" 2>/dev/null \
  || fail "the SLURM executor plugin is not installed: $ROOT/.venv/bin/pip install snakemake-executor-plugin-slurm==2.8.0 snakemake-executor-plugin-slurm-jobstep==0.6.1"

t0=$(date +%s)
"$ROOT/tests/slurm/up.sh"

WORK=$(mktemp -d /tmp/smcbench-test-slurm.XXXXXX)
cleanup() { if (( KEEP )); then say "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# The demo config, made smaller by tests/slurm/slice.yaml (merged into it key by key); both runs
# use the same two files.
CONFIG=$ROOT/workflow/configs/demo.yaml
SLICE=$ROOT/tests/slurm/slice.yaml
RUN=results/demo/runs/demo_cs_easy/all/demo_roberta
TARGETS=("$RUN/dense/seed0/metrics.json" "$RUN/omp_after/paper/s0.2000/seed0/metrics.json")
COMMON=(--snakefile "$ROOT/Snakefile" --configfile "$CONFIG" "$SLICE" --nolock)
# Jobs call `python -m smcbench ...`: the venv must come first on PATH, here and inside the SLURM
# jobs (the plugin submits with --export=ALL).
export PATH=$ROOT/.venv/bin:$PATH
export SMCBENCH_NO_PROGRESS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# --- the slice on SLURM ---------------------------------------------------------------------------
say "slice through SLURM in $WORK/slurm"
t1=$(date +%s)
if ! (cd "$ROOT" && "$SNAKEMAKE" "${COMMON[@]}" --directory "$WORK/slurm" \
        --profile "$ROOT/profiles/slurm" --profile "$ROOT/profiles/ci-slurm" --verbose \
        "${TARGETS[@]}") >"$WORK/slurm.log" 2>&1; then
  grep -E "Error|error|FAILED|Traceback" "$WORK/slurm.log" | tail -n 30 >&2
  KEEP=1; fail "snakemake on SLURM failed; log: $WORK/slurm.log"
fi
t2=$(date +%s)
say "SLURM run: $((t2 - t1)) s"
# what SLURM allocated to each job, read now (finished jobs stay visible for MinJobAge)
for jid in $(grep -oE 'submitted with SLURM jobid [0-9]+' "$WORK/slurm.log" | awk '{print $NF}'); do
  echo "== $jid"; scontrol show job -d "$jid" || true
done >"$WORK/scontrol.txt"

# --- the same slice locally -----------------------------------------------------------------------
say "same slice locally in $WORK/local"
if ! (cd "$ROOT" && "$SNAKEMAKE" "${COMMON[@]}" --directory "$WORK/local" --profile "$ROOT/profiles/local" \
        --cores 2 "${TARGETS[@]}") >"$WORK/local.log" 2>&1; then
  tail -n 30 "$WORK/local.log" >&2
  KEEP=1; fail "local snakemake failed; log: $WORK/local.log"
fi
t3=$(date +%s)
say "local run: $((t3 - t2)) s"

# --- checks ---------------------------------------------------------------------------------------
"$PY" - "$WORK" "${TARGETS[@]}" <<'PY'
import csv, re, subprocess, sys
from pathlib import Path

work, targets = Path(sys.argv[1]), sys.argv[2:]
log = (work / "slurm.log").read_text()
problems = []

# which rules were submitted, with which flags
calls = re.findall(r"sbatch call: (sbatch .*?) --wrap=", log)
by_rule = {}
for c in calls:
    rule = re.search(r"--comment rule_(\w+?)(?:_wildcards|\s)", c).group(1)
    by_rule.setdefault(rule, []).append(c)
print("[test-slurm] submitted:", {r: len(v) for r, v in sorted(by_rule.items())})
for rule in ("prepare", "pretrained", "dense", "train"):
    if rule not in by_rule:
        problems.append(f"rule {rule} was not submitted to SLURM")
for rule, cs in by_rule.items():
    for c in cs:
        wants_gpu = rule in ("dense", "mask", "train", "train_imp")
        if wants_gpu != ("--gpus=1" in c):
            problems.append(f"{rule}: GPU flag {'missing' if wants_gpu else 'unexpected'}: {c}")
        if "--gres" in c or " -p debug" not in c or " -A smcbench-ci" not in c:
            problems.append(f"{rule}: unexpected sbatch flags: {c}")
# SLURM itself allocated a (fake) GPU to the GPU jobs
jobids = dict(re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: .*?rule_(\w+)/", log))
shown = dict(re.findall(r"== (\d+)\n(.*?)(?=\n== |\Z)", (work / "scontrol.txt").read_text(), flags=re.S))
for jid, rule in jobids.items():
    out = shown.get(jid, "")
    gres = re.search(r"JOB_GRES=(\S+)", out)
    if gres is None:
        problems.append(f"SLURM job {jid} ({rule}) is gone from scontrol (MinJobAge too short?)")
    elif (gres.group(1) == "gpu:1") != (rule in ("dense", "train")):
        problems.append(f"SLURM job {jid} ({rule}) was allocated GRES {gres.group(1)}")
print(f"[test-slurm] SLURM allocated gpu:1 to", sorted(r for r in jobids.values() if r in ("dense", "train")))

# the slice's results table, on SLURM and locally: the identity and value columns
COMPARED = ["dataset", "model", "method", "scope", "level", "seed", "fold", "split", "metric", "value",
            "value_best_on_test", "baseline", "target_sparsity", "realized_sparsity", "config_hash"]

def table(side):
    out = work / side / "slice.csv"
    subprocess.run([sys.executable, "-m", "smcbench", "results", "--metrics", *targets, "--out", str(out)],
                   cwd=work / side, check=True, capture_output=True)
    with open(out) as f:
        return [{k: r[k] for k in COMPARED} for r in csv.DictReader(f)]

slurm_rows, local_rows = table("slurm"), table("local")
if not slurm_rows:
    problems.append("the SLURM slice produced no result rows")
elif slurm_rows != local_rows:
    for a, b in zip(slurm_rows, local_rows):
        diff = {k: (a[k], b[k]) for k in a if a[k] != b.get(k)}
        if diff:
            problems.append(f"SLURM and local results differ: {diff}")
            break
    else:
        problems.append(f"row counts differ: {len(slurm_rows)} vs {len(local_rows)}")
else:
    vals = [(r["method"], r["split"], r["metric"], r["value"]) for r in slurm_rows if r["split"] != "validation"]
    print(f"[test-slurm] {len(slurm_rows)} result rows identical on SLURM and locally, e.g. {vals[:2]}")
if problems:
    print("\n".join("[test-slurm] FAIL: " + p for p in problems), file=sys.stderr)
    sys.exit(1)
PY
say "OK in $(( $(date +%s) - t0 )) s"
