# Shared helpers: the run plan from smcbench.config (torch-free), wildcard constraints, input
# functions. Every job gets only its own settings, as canonical JSON, through params.

import functools
import inspect
import re

from smcbench import config as C
from smcbench import versions as V
from smcbench.sparsity.registry import METHODS

try:
    C.validate_config(config)
except C.ConfigError as e:
    raise WorkflowError(f"config: {e}")

try:  # Snakemake reads a callable's signature on every call (once per job and directive)
    from snakemake.common import overwrite_function_params as _pin_params
except ImportError:  # another Snakemake: it inspects each call itself
    _pin_params = None


def cheap(fn):
    """`fn` with its signature read once: Snakemake otherwise runs inspect.signature each time it
    calls a params/input/resources function, i.e. several times per job while planning."""
    if _pin_params is not None:
        _pin_params(fn, inspect.signature(fn).parameters)
    return fn


SUITE = config["suite"]


def in_suite(rel):
    """`results/<suite>/<rel>`: the suite is a constant of the run, not a wildcard (one wildcard
    fewer in every path, and a literal prefix Snakemake's output lookup can use)."""
    return f"results/{SUITE}/{rel}"


RUNS = list(C.iter_runs(config))
ITERATIVE = [m for m, info in METHODS.items() if info.iterative]
ONE_PASS = [m for m, info in METHODS.items() if not info.iterative and m != "dense"]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    dataset=r"[\w-]+",
    fold=r"all|\d+",
    model=r"[\w-]+",
    seed=r"\d+",
    level=r"[st]0\.\d{4}",
    scope=r"[\w]+|modules-[A-Z+]+",
    method=_alternatives(ONE_PASS),
    imp=_alternatives(ITERATIVE),


# --- software envs (--sdm conda) ------------------------------------------------------------
# Paths are relative to this folder. Architectures whose code needs packages beyond the torch env
# get their own env (tests/test_conda_envs.py checks every rule's env against what its code imports).
ENV_TORCH = "../../envs/torch.yaml"
ENV_ANALYSIS = "../../envs/analysis.yaml"
ENV_BY_ARCH = {"esm_if1": "../../envs/esmif.yaml"}  # fair-esm's inverse folding (ESM-IF1)


def _model_env(w):
    """The env of a job that builds model `w.model`: the torch env, or its arch's own env."""
    return ENV_BY_ARCH.get(config["models"][w.model].get("arch"), ENV_TORCH)


# A function env is evaluated per job (Snakemake cannot cache it): use it only when a planned run
# needs another env than the torch one.
model_env = (cheap(_model_env) if any(config["models"][r.model].get("arch") in ENV_BY_ARCH for r in RUNS)
             else ENV_TORCH)


# --- resources ---------------------------------------------------------------------------------
# config `resources:` keys: a rule group (download, prepare, pretrained, train), then
# `<group>/<name>` for a model, a dataset or a method of that group's jobs; later keys win in the
# order group < model < dataset < method. `threads` is also the CPUs SLURM allocates
# (--cpus-per-task) and the OMP/MKL threads Snakemake exports to the job; `runtime` (minutes) is
# multiplied by the attempt, so a job that hit its time limit gets more on a retry.
RESOURCE_DEFAULTS = {
    "download": {"gpu": 0, "threads": 1, "runtime": 120, "mem_mb": 4000},
    "prepare": {"gpu": 0, "threads": 1, "runtime": 60, "mem_mb": 8000},
    "pretrained": {"gpu": 0, "threads": 2, "runtime": 60, "mem_mb": 16000},
    "train": {"gpu": 1, "threads": 4, "runtime": 240, "mem_mb": 32000},
}


@functools.lru_cache(maxsize=None)
def _resources(group, names):
    """The resources of a job of `group` whose model/dataset/method names are `names`."""
    table = config.get("resources") or {}
    merged = {**RESOURCE_DEFAULTS[group], **(table.get(group) or {})}
    for name in names:
        merged.update(table.get(f"{group}/{name}") or {})
    return merged


def _resource_names(w):
    keys = w.keys()
    return tuple(w[key] for key in ("model", "dataset", "method", "imp") if key in keys)


def resource(group, key):
    """A job's `key` resource of rule group `group` (see RESOURCE_DEFAULTS), from the config."""
    return cheap(lambda w: _resources(group, _resource_names(w))[key])


def runtime(group):
    """Minutes: the configured runtime times the attempt (1 on the first try)."""
    base = resource(group, "runtime")
    return cheap(lambda w, attempt: base(w) * attempt)


def data_dir(w):
    return f"results/{SUITE}/data/{w.dataset}/{w.fold}"


def pretrained_dir(w):
    return f"results/{SUITE}/pretrained/{w.model}"


def level_k(level):
    return C.parse_level(level)[0]


def scope_name(w):
    return C.scope_from_path(w.scope)


def dense_run(w):
    return f"results/{SUITE}/runs/{w.dataset}/{w.fold}/{w.model}/dense/seed{w.seed}"


@cheap
def train_inputs(w):
    """Data + pre-trained model, plus the dense fine-tune where the method starts from it or
    distills from it (a before-training mask is computed inside the job)."""
    info = METHODS[w.method]
    inputs = {"data": f"{data_dir(w)}/meta.json", "pretrained": f"{pretrained_dir(w)}/pretrained.json"}
    if info.start_from == "dense":
        inputs["start"] = f"{dense_run(w)}/model.safetensors"
    if getattr(info, "distill_from_dense", False):
        inputs["teacher"] = f"{dense_run(w)}/model.safetensors"
    return inputs


@functools.lru_cache(maxsize=None)
def job_version(dataset, method):
    """The code version of a training job (smcbench.versions): shared loop, family, method."""
    return V.job_version(config["datasets"][dataset]["family"], method)


@functools.lru_cache(maxsize=None)
def _train_params(dataset, model, method, scope, level):
    return C.train_params(config, dataset, model, method, C.scope_from_path(scope), level)


def _job(w, method, scope, level, inputs=()):
    """A training job's one param (a dict, tracked by Snakemake's params trigger): `settings`, the
    canonical JSON the job receives; `code`, the version of the code that defines it (not passed,
    only tracked); `starts`, the command-line flags of its start files (from the same input
    function as its inputs, so the two cannot disagree)."""
    return {"settings": _train_params(w.dataset, w.model, method, scope, level),
            "code": job_version(w.dataset, method), "starts": start_args(inputs)}


# the params of the training rules: one callable per job, a few dict lookups once computed
dense_job = cheap(lambda w: _job(w, "dense", "-", "s0"))
train_job = cheap(lambda w: _job(w, w.method, w.scope, w.level, train_inputs(w)))
imp_job = cheap(lambda w: _job(w, w.imp, w.scope, w.level, imp_inputs(w)))
prepare_settings = cheap(lambda w: C.prepare_params(config, w.dataset))
prepare_family = cheap(lambda w: config["datasets"][w.dataset]["family"])
prepare_code = cheap(lambda w: V.family_version(config["datasets"][w.dataset]["family"]))
pretrained_entry = cheap(lambda w: C.pretrained_params(config, w.model))
pretrained_code = cheap(lambda w: V.family_version(config["models"][w.model]["family"]))


def download_spec(entry):
    """What the download step fetches, as canonical JSON: the source and its pins."""
    keys = ("source", "revision", "sha256", "files")
    return C.canonical_json({k: entry[k] for k in keys if entry.get(k) is not None})


def start_args(inputs):
    """`smcbench train` arguments for the job's optional inputs (a dict from train_inputs /
    imp_inputs)."""
    flags = {"start": "--start-weights", "mask": "--prev-mask", "teacher": "--teacher-weights"}
    return " ".join(f"{flag} {inputs[key]}" for key, flag in flags.items() if key in inputs)


@cheap
def imp_inputs(w):
    """IMP round k starts from round k-1's trained weights and mask (round 1: the dense fine-tune)."""
    k = level_k(w.level)
    inputs = {"data": f"{data_dir(w)}/meta.json", "pretrained": f"{pretrained_dir(w)}/pretrained.json"}
    if k <= 1:
        inputs["start"] = f"{dense_run(w)}/model.safetensors"
    else:
        prev = (f"results/{SUITE}/runs/{w.dataset}/{w.fold}/{w.model}/{w.imp}/{w.scope}/"
                f"{C.level_tag(k - 1)}/seed{w.seed}")
        inputs["start"] = f"{prev}/model.safetensors"
        inputs["mask"] = f"{prev}/mask.safetensors"
    if getattr(METHODS[w.imp], "distill_from_dense", False):
        inputs["teacher"] = f"{dense_run(w)}/model.safetensors"
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


# --- analyses (analysis.smk) ----------------------------------------------------------------
# The analyses' fixed output names (per-family figures for layerwise sparsity and mask IoU) come
# from the analysis package itself (a light import, no pandas), so they cannot diverge.
from smcbench.analysis.reports import OUTPUTS as ANALYSIS_OUTPUTS
from smcbench.analysis.reports import FAMILIES as ANALYSIS_FAMILIES


def analysis_targets(suite):
    """Every figure and table of the analyses of `suite` (the inputs of `all_figures`)."""
    return [f"results/{suite}/{rel}" for outs in ANALYSIS_OUTPUTS.values() for rel in outs]


ANALYSIS_INPUT = {
    "results": in_suite("results.csv"),
    "primary": in_suite("primary_metrics.json"),
    "config": in_suite("config.json"),
}


# per-run files an analysis reads besides results.csv, primary_metrics.json and config.json (the
# cost analysis takes wall time and peak memory from results.csv; the layerwise and IoU analyses
# read every run's per-tensor sparsity from results/<suite>/layerwise.csv, written by `results`)
ANALYSIS_RUN_FILES = {"iou": ["mask.safetensors"], "drift": ["drift.csv"]}


def _figure_levels():
    levels = (config.get("analysis") or {}).get("layerwise_levels")
    return set(levels) if levels else None


def analysis_run_files(name):
    """The run files analysis `name` reads: the masks of sparse runs at the figure levels
    (`analysis.layerwise_levels`, default all), drift of runs that record it."""
    levels = _figure_levels()
    files = []
    for fname in ANALYSIS_RUN_FILES.get(name, []):
        for r in RUNS:
            if fname == "mask.safetensors" and (r.method == "dense" or (
                    levels is not None and C.parse_level(r.level)[0] not in levels)):
                continue
            if fname == "drift.csv" and not METHODS[r.method].records_drift:
                continue
            files.append(f"results/{SUITE}/{r.run_dir}/{fname}")
    return files


def analysis_view(cfg):
    """The part of the config the analyses read (results/<suite>/config.json): the grid and the
    analysis options, not training settings or resources, so editing those reruns no aggregate."""
    resolved = C.resolved_config(cfg)
    # registry order, not the YAML's key order (reordering the config reruns nothing)
    chosen = set(resolved.get("run_methods") or cfg["methods"])
    resolved["run_methods"] = [m for m in METHODS if m in chosen]
    top = ("suite", "seeds", "levels", "run_methods", "matching_tolerance", "analysis", "extra_runs")
    dataset_keys = ("family", "models", "levels", "run_methods", "enabled", "difficulty", "scope", "folds")
    datasets = {}
    for name, entry in (resolved.get("datasets") or {}).items():
        view = {k: entry[k] for k in dataset_keys if k in entry}
        variant = (entry.get("settings") or {}).get("variant")
        if variant is not None:
            view["settings"] = {"variant": variant}
        datasets[name] = view
    models = {name: {k: e[k] for k in ("family", "arch") if k in e} for name, e in (resolved.get("models") or {}).items()}
    return {**{k: resolved[k] for k in top if k in resolved}, "datasets": datasets, "models": models}


def _analyze(sub):
    """The shell command of one analysis subcommand; warnings go to the console and the log."""
    return (f"python -m smcbench analyze {sub} --results {{input.results}} "
            f"--primary-metrics {{input.primary}} --config {{input.config}} --out results/{SUITE} "
            "2>&1 | tee {log}")


def _rep(rel, caption, category, subcategory):
    return report(in_suite(rel), caption=f"../report/{caption}.rst",
                  category=category, subcategory=subcategory)
