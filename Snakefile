# smcbench — SMC-Bench as a Snakemake workflow. Thin on purpose: config + validation, the rule
# files, and the target rules. No torch here (every cluster job re-reads this file).
#
#   snakemake --profile slurm all_figures                                # the paper grid (config.yaml)
#   snakemake --configfile workflow/configs/demo.yaml -c2 all_figures     # the offline demo (make demo)

import gc
import os
import shlex
import sys

from snakemake.utils import min_version

min_version("9.0")

if not config:  # an explicit --configfile replaces the paper grid instead of merging into it
    configfile: os.path.join(workflow.basedir, "config.yaml")

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)  # the planning code below (smcbench.config, the registries) is torch-free
# Jobs run `python -m smcbench <step>`. Without conda, `python` is the one running Snakemake (the
# venv's). With --sdm conda, activating the rule's env puts the env's python first again, and
# Snakemake deletes PYTHONPATH from the job's environment: the shell prefix sets it after the
# activation, so every job, in every env, imports this checkout's src/ (the code its version
# param hashes, see smcbench.versions).
os.environ.update(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
shell.prefix("set -euo pipefail; export PYTHONPATH=%s${{PYTHONPATH:+:$PYTHONPATH}}; " % shlex.quote(SRC))

# Planning the paper grid (~3,700 jobs, ~15,000 files) allocates millions of short-lived objects,
# and with Python's default GC thresholds (700, 10, 10) the cyclic collector runs ~1,500 times and
# rescans the growing heap: ~2 s of CPU on config.yaml, a fifth of the whole dry run, with no memory
# returned (reference counting frees the rest; peak RSS is the same). Freeze what is loaded so far
# and collect less often (bench/README.md, "Planning the paper grid"; 0.3 s of GC instead).
gc.freeze()
gc.set_threshold(50_000, 20, 100)

# The config is checked by smcbench.config.validate_config, first thing in common.smk: the typed
# settings the JSON schema (workflow/schemas/config.schema.yaml, for editors) is generated from,
# with messages that name the key path and the closest valid key ("did you mean 'training'?").
# Snakemake's `validate(config, schema)` would repeat the same checks with poorer messages.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        f"results/{SUITE}/results.csv",


rule all_figures:
    input:
        f"results/{SUITE}/results.csv",
        analysis_targets(SUITE),
