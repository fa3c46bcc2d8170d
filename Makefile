# smcbench — the two commands of the Quickstart, and a few helpers.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CORES   ?= 2
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test venv bench test-slurm dryrun-paper clean-demo

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make demo: the whole pipeline on the built-in synthetic suite, offline, to its figures
demo: $(STAMP)
	$(BIN)/python -m smcbench demo --cores $(CORES)

## make test: the test suite (CPU, offline)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(CORES) tests

## make test-slurm: the SLURM profile end to end on a one-node test cluster (root, apt; not in `make test`)
test-slurm: $(STAMP)
	$(BIN)/python -c "import snakemake_executor_plugin_slurm" 2>/dev/null || \
	  $(BIN)/python -m pip install -q snakemake-executor-plugin-slurm==2.8.0 snakemake-executor-plugin-slurm-jobstep==0.6.1
	tests/slurm/run.sh

bench: $(STAMP)
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_mask_step.py
	$(BIN)/python bench/bench_global_threshold.py

dryrun-paper: $(STAMP)
	$(BIN)/snakemake -n -q --cores 1 all_figures

clean-demo:
	rm -rf results/demo

## make smoke-real: every paper model at its real size (random init) through the real rules on real
## dataset records, a few steps each (~30 min on 2 cores; not in `make test`). docs/smoke-real.md
## Records: SMCBENCH_REAL_SAMPLES=<folder> (default: shared/real-samples beside the repository).
.PHONY: smoke-real
smoke-real: $(STAMP)
	$(BIN)/python -m smcbench.smoke_real run --cores $(CORES)
