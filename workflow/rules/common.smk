# Shared helpers: the run plan from smcbench.config (torch-free), wildcard constraints, input
# functions. Every job gets only its own settings, as canonical JSON, through params.

import re

from smcbench import config as C
from smcbench.sparsity.registry import METHODS

try:
    C.validate_config(config)
except C.ConfigError as e:
    raise WorkflowError(f"config: {e}")

SUITE = config["suite"]
RUNS = list(C.iter_runs(config))
ITERATIVE = [m for m, info in METHODS.items() if info.iterative]
ONE_PASS = [m for m, info in METHODS.items() if not info.iterative and m != "dense"]
INIT_METHODS = sorted({info.init_mask_from for info in METHODS.values() if info.init_mask_from})


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    suite=r"[\w-]+",
    dataset=r"[\w-]+",
    fold=r"all|\d+",
    model=r"[\w-]+",
    seed=r"\d+",
    level=r"[st]0\.\d{4}",
    scope=r"[\w]+|modules-[A-Z+]+",
    method=_alternatives(ONE_PASS),
    imp=_alternatives(ITERATIVE),
    init=_alternatives(INIT_METHODS),


def res(rule_name, key, default):
    """Per-rule resources from config `resources: {<rule>: {gpu, runtime, mem_mb, threads}}`."""
    return (config.get("resources") or {}).get(rule_name, {}).get(key, default)


def data_dir(w):
    return f"results/{w.suite}/data/{w.dataset}/{w.fold}"


def pretrained_dir(w):
    return f"results/{w.suite}/pretrained/{w.model}"


def level_k(level):
    return C.parse_level(level)[0]


def scope_name(w):
    return C.scope_from_path(w.scope)


def dense_run(w):
    return f"results/{w.suite}/runs/{w.dataset}/{w.fold}/{w.model}/dense/seed{w.seed}"


def mask_path(w, init):
    return (f"results/{w.suite}/masks/{w.dataset}/{w.fold}/{w.model}/{init}/{w.scope}/{w.level}/"
            f"seed{w.seed}/mask.safetensors")


def train_inputs(w):
    """Data + pre-trained model, plus what the method starts from (dense fine-tune or a mask)."""
    info = METHODS[w.method]
    inputs = {"data": f"{data_dir(w)}/meta.json", "pretrained": f"{pretrained_dir(w)}/pretrained.json"}
    if info.start_from == "dense":
        inputs["start"] = f"{dense_run(w)}/model.safetensors"
    if info.init_mask_from:
        inputs["mask"] = mask_path(w, info.init_mask_from)
    return inputs


def imp_inputs(w):
    """IMP round k starts from round k-1's trained weights and mask (round 1: the dense fine-tune)."""
    k = level_k(w.level)
    inputs = {"data": f"{data_dir(w)}/meta.json", "pretrained": f"{pretrained_dir(w)}/pretrained.json"}
    if k <= 1:
        inputs["start"] = f"{dense_run(w)}/model.safetensors"
    else:
        prev = (f"results/{w.suite}/runs/{w.dataset}/{w.fold}/{w.model}/{w.imp}/{w.scope}/"
                f"{C.level_tag(k - 1)}/seed{w.seed}")
        inputs["start"] = f"{prev}/model.safetensors"
        inputs["mask"] = f"{prev}/mask.safetensors"
    return inputs


def run_metrics(run):
    return f"results/{SUITE}/{run.run_dir}/metrics.json"


def extras_json():
    """run_dir -> extra-run name, for runs outside the main grid (canonical JSON)."""
    return C.canonical_json({f"results/{SUITE}/{r.run_dir}": r.extra for r in RUNS if r.extra != "main"})


def _check_slurm_account():
    """Refuse a SLURM profile whose account is still the shipped placeholder (before submitting)."""
    try:
        args = workflow.resource_settings.default_resources.args or []
    except AttributeError:  # another Snakemake API: the executor plugin checks the account itself
        return
    if any("REPLACE_WITH" in str(a) for a in args):
        raise WorkflowError("the slurm profile (profiles/slurm/config.yaml): set default-resources.slurm_account to your SLURM account "
                            "(`sacctmgr show assoc user=$USER`; see docs/cluster.md)")


_check_slurm_account()
