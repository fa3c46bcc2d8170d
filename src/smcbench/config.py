"""Config loading, validation and the run plan. Torch-free: the Snakefile imports this module.

One fact, one place:
* sparsity levels: ``target_sparsity(k) = 1 - 0.8**k``; paths name a level by :func:`level_tag`;
* method names and their DAG facts: :mod:`smcbench.sparsity.registry`;
* scope names: :data:`smcbench.sparsity.scope_names.SCOPES` (torch-free);
* what each job receives: :func:`train_params` / :func:`mask_params` (canonical JSON), so a change
  to one method's settings changes only that method's jobs' params.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .sparsity.registry import METHODS, method_info
from .tasks import ARCHS

FAMILIES = ("commonsense", "arithmetic", "protein", "translation")
DENSE = "dense"


class ConfigError(ValueError):
    """A bad config value; the message names the value, where it is, and the valid choices."""


# --- levels -------------------------------------------------------------------------------
def target_sparsity(k: int) -> float:
    """The nominal sparsity of level k: s_k = 1 - 0.8**k (k = 1 → 0.2, k = 10 → 0.8926)."""
    return 1.0 - 0.8 ** int(k)


def level_tag(k: int) -> str:
    """The path component naming level k, e.g. ``s0.3600`` (4 decimals, unique for k <= 20)."""
    return f"s{target_sparsity(k):.4f}"


def target_tag(s: float) -> str:
    """The path component of an explicit target (extra runs, e.g. the module-wise 5% table)."""
    return f"t{float(s):.4f}"


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON: the same settings always give the same string."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:12]


# --- loading and validation ---------------------------------------------------------------
def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config and validate it (raises :class:`ConfigError`)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    validate_config(cfg)
    return cfg


def _scope_names() -> tuple[str, ...]:
    try:
        from .sparsity.scope_names import SCOPES
    except ImportError:  # engine not installed yet: accept the documented names
        SCOPES = ("paper", "no_embeddings", "no_heads", "attn_ffn")
    return tuple(SCOPES)


def validate_scope_name(scope: str, where: str) -> None:
    known = _scope_names()
    if scope in known:
        return
    if scope.startswith("modules:"):
        parts = scope[len("modules:"):].split("+")
        bad = [p for p in parts if p not in ("Q", "K", "V", "O", "FFN")]
        if parts and not bad and all(parts):
            return
        raise ConfigError(f"bad module subset {scope!r} in {where} (use modules:<A>+<B>… with A, B in Q, K, V, O, FFN)")
    raise ConfigError(f"unknown scope {scope!r} in {where} (known: {', '.join(known)}, or modules:Q+K+…)")


def _check_levels(levels: Any, where: str) -> None:
    if not isinstance(levels, list) or not levels:
        raise ConfigError(f"{where} must be a non-empty list of level indices k (s = 1 - 0.8**k)")
    for k in levels:
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 20:
            raise ConfigError(f"bad level {k!r} in {where}: levels are integers k in 1..20 (s_k = 1 - 0.8**k)")


def _check_target(s: Any, where: str) -> None:
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0.0 < float(s) < 1.0:
        raise ConfigError(f"bad target sparsity {s!r} in {where}: must be strictly between 0 and 1")


def validate_config(cfg: dict) -> None:
    """Check names and values before any job runs; raise :class:`ConfigError` naming the problem."""
    for key in ("suite", "seeds", "levels", "methods", "datasets", "models"):
        if key not in cfg:
            raise ConfigError(f"config is missing the required key {key!r}")
    if not isinstance(cfg["suite"], str) or not cfg["suite"].replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"bad suite name {cfg['suite']!r}: use letters, digits, '-' or '_'")
    seeds = cfg["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    _check_levels(cfg["levels"], "levels")
    if cfg.get("device", "auto") not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"bad device {cfg['device']!r} (use auto, cpu or cuda)")

    methods = cfg["methods"] or {}
    for name, settings in methods.items():
        if name not in METHODS:
            raise ConfigError(f"unknown method {name!r} in config.methods (known: {', '.join(METHODS)})")
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError(f"settings of method {name!r} must be a mapping, got {settings!r}")
    run_methods = cfg.get("run_methods", list(methods))
    per_dataset = [(f"datasets.{d}.run_methods", e["run_methods"]) for d, e in (cfg["datasets"] or {}).items()
                   if isinstance(e, dict) and "run_methods" in e]
    for where, names in [("run_methods", run_methods)] + per_dataset:
        for name in names:
            _check_run_method(cfg, methods, name, where)
    if DENSE not in methods:
        raise ConfigError("config.methods must contain 'dense' (the reference every figure compares to)")
    _validate_rest(cfg, methods)


def _check_run_method(cfg: dict, methods: dict, name: str, where: str) -> None:
    method_info_or_error(name, where)
    if name not in methods:
        raise ConfigError(f"method {name!r} in {where} has no entry under config.methods")
    init = METHODS[name].init_mask_from
    if init and init not in methods:
        raise ConfigError(f"method {name!r} starts from {init!r}'s mask, so config.methods needs {init!r}")


def _check_entry(kind: str, name: str, entry: Any, keys: tuple[str, ...]) -> None:
    """A model or dataset entry: a mapping with ``keys`` and a known family."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{kind} {name!r} must be a mapping")
    for key in keys:
        if key not in entry:
            raise ConfigError(f"{kind} {name!r} is missing {key!r}")
    if entry["family"] not in FAMILIES:
        raise ConfigError(f"unknown family {entry['family']!r} for {kind} {name!r} (known: {', '.join(FAMILIES)})")


def _validate_rest(cfg: dict, methods: dict) -> None:
    models = cfg["models"] or {}
    for name, m in models.items():
        _check_entry("model", name, m, ("family", "arch", "source"))
        archs = ARCHS[m["family"]]
        if m["arch"] not in archs:
            raise ConfigError(f"unknown arch {m['arch']!r} for {m['family']} model {name!r} (known: {', '.join(archs)})")

    datasets = cfg["datasets"] or {}
    if not datasets:
        raise ConfigError("config.datasets is empty: nothing to run")
    for name, d in datasets.items():
        _check_entry("dataset", name, d, ("family", "source", "models"))
        for model in d["models"]:
            if model not in models:
                raise ConfigError(f"unknown model {model!r} for dataset {name!r} (known: {', '.join(models)})")
            if models[model]["family"] != d["family"]:
                raise ConfigError(
                    f"model {model!r} is a {models[model]['family']} model but dataset {name!r} is "
                    f"{d['family']}: pick a model of the same family")
        validate_scope_name(d.get("scope", "paper"), f"datasets.{name}.scope")
        if "levels" in d:
            _check_levels(d["levels"], f"datasets.{name}.levels")
        folds = d.get("folds")
        if folds is not None and (not isinstance(folds, list) or not all(isinstance(f, int) for f in folds)):
            raise ConfigError(f"datasets.{name}.folds must be a list of integers, got {folds!r}")
        for m in (d.get("method_overrides") or {}):
            if m not in METHODS:
                raise ConfigError(f"unknown method {m!r} in datasets.{name}.method_overrides (known: {', '.join(METHODS)})")
        _check_source(d["source"], f"datasets.{name}.source")
    for name, m in models.items():
        _check_source(m["source"], f"models.{name}.source")

    for i, extra in enumerate(cfg.get("extra_runs") or []):
        where = f"extra_runs[{i}]"
        if "name" not in extra:
            raise ConfigError(f"{where} needs a 'name'")
        for ds in extra.get("datasets", []):
            if ds not in datasets:
                raise ConfigError(f"unknown dataset {ds!r} in {where} (known: {', '.join(datasets)})")
        for m in extra.get("methods", []):
            method_info_or_error(m, where)
            if m not in methods:
                raise ConfigError(f"method {m!r} in {where} has no entry under config.methods")
        scopes = extra.get("scopes") or [extra.get("scope", "paper")]
        for sc in scopes:
            validate_scope_name(sc, where)
        for s in extra.get("targets") or []:
            _check_target(s, where + ".targets")
        if "levels" in extra:
            _check_levels(extra["levels"], where + ".levels")


def method_info_or_error(name: str, where: str):
    try:
        return method_info(name)
    except ValueError:
        raise ConfigError(f"unknown method {name!r} in {where} (known: {', '.join(METHODS)})") from None


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~"))


def _check_source(source: Any, where: str) -> None:
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{where} must be a Hub id, a URL, a local path or 'synthetic', got {source!r}")
    if _looks_like_path(source) and not Path(os.path.expanduser(source)).exists():
        raise ConfigError(f"{where}: local path {source!r} does not exist (fix the path, or use a Hub id)")


# --- the run plan -------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One training job of the grid (or of an extra run)."""

    dataset: str
    fold: str           # "all" or the CV fold index as a string
    model: str
    method: str
    scope: str
    level: str          # level_tag(k), target_tag(s) for explicit targets, "s0" for dense
    seed: int
    extra: str = "main"

    @property
    def run_dir(self) -> str:
        return run_dir(self.dataset, self.fold, self.model, self.method, self.scope, self.level, self.seed)


def run_dir(dataset, fold, model, method, scope, level, seed) -> str:
    """A run's folder relative to ``results/<suite>/``."""
    if method == DENSE:
        return f"runs/{dataset}/{fold}/{model}/dense/seed{seed}"
    return f"runs/{dataset}/{fold}/{model}/{method}/{scope_path(scope)}/{level}/seed{seed}"


def scope_path(scope: str) -> str:
    """Scope names as path components (``modules:Q+K`` → ``modules-Q+K``)."""
    return scope.replace(":", "-")


def scope_from_path(component: str) -> str:
    return component.replace("modules-", "modules:", 1) if component.startswith("modules-") else component


def folds_of(cfg: dict, dataset: str) -> list[str]:
    folds = cfg["datasets"][dataset].get("folds")
    return [str(f) for f in folds] if folds else ["all"]


def levels_of(cfg: dict, dataset: str) -> list[int]:
    return list(cfg["datasets"][dataset].get("levels", cfg["levels"]))


def methods_of(cfg: dict, dataset: str) -> list[str]:
    """The methods run on ``dataset``: its own ``run_methods`` if given, else the global list."""
    global_list = cfg.get("run_methods", list(cfg["methods"]))
    return list(cfg["datasets"][dataset].get("run_methods", global_list))


def enabled_datasets(cfg: dict) -> list[str]:
    return [d for d, entry in cfg["datasets"].items() if entry.get("enabled", True)]


def iter_runs(cfg: dict) -> Iterator[Run]:
    """Every training job: the main grid (dataset × model × fold × method × level × seed), then the
    extra runs. Dense appears once per (dataset, fold, model, seed)."""
    seen: set[Run] = set()

    def emit(run: Run):
        if run not in seen:
            seen.add(run)
            return True
        return False

    for ds in enabled_datasets(cfg):
        entry = cfg["datasets"][ds]
        scope = entry.get("scope", "paper")
        for model in entry["models"]:
            for fold in folds_of(cfg, ds):
                for seed in cfg["seeds"]:
                    for method in methods_of(cfg, ds):
                        if method == DENSE:
                            r = Run(ds, fold, model, DENSE, "-", "s0", seed)
                            if emit(r):
                                yield r
                            continue
                        for k in levels_of(cfg, ds):
                            r = Run(ds, fold, model, method, scope, level_tag(k), seed)
                            if emit(r):
                                yield r
    for extra in cfg.get("extra_runs") or []:
        scopes = extra.get("scopes") or [extra.get("scope", "paper")]
        for ds in extra.get("datasets", []):
            if ds not in enabled_datasets(cfg):
                continue
            entry = cfg["datasets"][ds]
            if extra.get("targets"):
                levels = [target_tag(s) for s in extra["targets"]]
            else:
                levels = [level_tag(k) for k in extra.get("levels", levels_of(cfg, ds))]
            for model in extra.get("models", entry["models"]):
                for fold in folds_of(cfg, ds):
                    for seed in cfg["seeds"]:
                        for method in extra.get("methods", []):
                            for scope in scopes:
                                for level in levels:
                                    r = Run(ds, fold, model, method, scope, level, seed, extra["name"])
                                    if emit(r):
                                        yield r


def parse_level(level: str) -> tuple[int, float]:
    """``s0.3600`` → (2, 0.36); ``t0.0500`` → (0, 0.05); ``s0`` → (0, 0.0)."""
    if level == "s0":
        return 0, 0.0
    if level.startswith("t"):
        return 0, float(level[1:])
    for k in range(1, 21):
        if level_tag(k) == level:
            return k, target_sparsity(k)
    raise ConfigError(f"bad level {level!r} (expected s<1-0.8**k with 4 decimals> or t<target>)")


# --- per-job params (canonical JSON) --------------------------------------------------------
def task_settings(cfg: dict, dataset: str, model: str) -> dict:
    """What a task needs to train: the dataset's settings, the model entry and the training recipe."""
    d = cfg["datasets"][dataset]
    m = cfg["models"][model]
    settings = dict(d.get("settings") or {})
    settings["model"] = {"name": model, "arch": m["arch"], "source": m["source"],
                         "settings": dict(m.get("settings") or {})}
    settings["training"] = dict(d.get("training") or {})
    return settings


def method_settings(cfg: dict, dataset: str, method: str) -> dict:
    base = dict(cfg["methods"].get(method) or {})
    base.update((cfg["datasets"][dataset].get("method_overrides") or {}).get(method) or {})
    return base


def _job_params(cfg: dict, dataset: str, model: str, method: str, scope: str, level: str) -> dict:
    """What a training or mask job of (dataset, model, method, scope, level) needs, and nothing else."""
    k, s = parse_level(level)
    return {
        "family": cfg["datasets"][dataset]["family"],
        "dataset": dataset,
        "task": task_settings(cfg, dataset, model),
        "method": method,
        "method_settings": method_settings(cfg, dataset, method),
        "scope": scope,
        "level": k,
        "target_sparsity": s,
        "device": cfg.get("device", "auto"),
    }


def train_params(cfg: dict, dataset: str, model: str, method: str, scope: str, level: str) -> str:
    """The canonical JSON a training job receives (its only settings)."""
    if method == DENSE:  # dense prunes nothing; its sparsity is still measured over the dataset's scope
        scope = cfg["datasets"][dataset].get("scope", "paper")
    p = _job_params(cfg, dataset, model, method, scope, level)
    init = method_info(method).init_mask_from
    if init:
        # the mask rule's settings reach this job through its input file, not its params
        p["init_mask_from"] = init
    return canonical_json(p)


def mask_params(cfg: dict, dataset: str, model: str, method: str, scope: str, level: str) -> str:
    """The canonical JSON of a before-training mask job (the ``init_mask_from`` method's settings)."""
    return canonical_json(_job_params(cfg, dataset, model, method, scope, level))


def prepare_params(cfg: dict, dataset: str) -> str:
    """The dataset's ``settings`` (what ``prepare`` receives)."""
    return canonical_json(cfg["datasets"][dataset].get("settings") or {})


def pretrained_params(cfg: dict, model: str) -> str:
    return canonical_json(cfg["models"][model])


def resolved_config(cfg: dict) -> dict:
    """The config as the analyses see it (``results/<suite>/config.json``)."""
    out = {k: v for k, v in cfg.items()}
    out.setdefault("run_methods", list(cfg["methods"]))
    out.setdefault("matching_tolerance", 1.0)
    out.setdefault("analysis", {})
    return out
