"""Config loading, validation and the run plan. Torch-free: the Snakefile imports this module.

One fact, one place:
* sparsity levels: ``target_sparsity(k) = 1 - 0.8**k``; paths name a level by :func:`level_tag`;
* method names and their DAG facts: :mod:`smcbench.sparsity.registry`;
* scope names: :data:`smcbench.sparsity.scope_names.SCOPES` (torch-free);
* what each job receives: :func:`train_params` / :func:`mask_params` (canonical JSON), so a change
  to one method's settings changes only that method's jobs' params.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from . import settings as S
from .sparsity.registry import METHODS, method_info
from .tasks import ARCHS, FAMILIES

DENSE = "dense"


class ConfigError(S.SettingsError):
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
    """Read a YAML config, validate it and fill in defaults (raises :class:`ConfigError`)."""
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
    from .sparsity.scope_names import SCOPES

    return tuple(SCOPES)


def validate_scope_name(scope: Any, where: str) -> None:
    known = _scope_names()
    if scope in known:
        return
    if isinstance(scope, str) and scope.startswith("modules:"):
        parts = scope[len("modules:"):].split("+")
        bad = [p for p in parts if p not in ("Q", "K", "V", "O", "FFN")]
        if parts and not bad and all(parts) and len(set(parts)) == len(parts):
            return
        raise ConfigError(f"bad module subset {scope!r} in {where} (use modules:<A>+<B>… with A, B in Q, K, V, O, FFN, "
                          "each once)")
    raise ConfigError(f"unknown scope {scope!r} in {where}{S.did_you_mean(scope, known)} "
                      f"(known: {', '.join(known)}, or modules:Q+K+…)")


#: keys that belong to a dataset entry, for the hint when one is written at the top level
_ENTRY_KEYS = ("training", "settings", "folds", "scope", "method_overrides", "method_training", "family", "source")


def validate_config(cfg: dict) -> dict:
    """Check every name and value before any job runs, then fill in the defaults in place (so each
    job's params carry its full typed settings). Raises :class:`ConfigError` naming the key path,
    the value and what is valid. Returns ``cfg``. Idempotent."""
    _PIECES[:] = [None, {}]
    try:
        _validate(cfg)
    except S.SettingsError as e:
        raise ConfigError(str(e)) from None
    _PIECES[:] = [cfg, {}]
    return cfg


def _validate(cfg: dict) -> None:
    if not isinstance(cfg, dict):
        raise ConfigError(f"the config must be a mapping, got {cfg!r}")
    top_keys = [f.name for f in fields(S.ConfigSettings)]
    for key in cfg:
        if key in top_keys:
            continue
        if S.did_you_mean(key, top_keys):
            continue  # the checker below names the closest top-level key
        near = difflib.get_close_matches(str(key), _ENTRY_KEYS, n=1, cutoff=0.6)
        if near:
            raise ConfigError(f"{key} is not a top-level setting: did you mean datasets.<name>.{near[0]}? "
                              f"(valid top-level keys: {', '.join(top_keys)})")
    if cfg.get("run_methods") == []:
        raise ConfigError("run_methods is empty: no dataset would run anything (remove the key to run every "
                          "method under methods, or list the methods)")
    S.parse(S.ConfigSettings, cfg, "")

    methods = cfg["methods"]
    if DENSE not in methods:
        raise ConfigError("config.methods must contain 'dense' (the reference every figure compares to)")
    normalized = {}
    for name, raw in methods.items():
        method_info_or_error(name, "config.methods")
        normalized[name] = S.parse_method(name, raw, f"methods.{name}")
    run_methods = list(cfg.get("run_methods") or methods)
    _check_method_list(cfg, methods, run_methods, "run_methods")

    models = cfg["models"]
    norm_models = {name: _validate_model(name, entry) for name, entry in models.items()}
    datasets = cfg["datasets"]
    if not datasets:
        raise ConfigError("config.datasets is empty: nothing to run")
    norm_datasets = {name: _validate_dataset(cfg, name, entry, norm_models, normalized, run_methods)
                     for name, entry in datasets.items()}
    for i, extra in enumerate(cfg.get("extra_runs") or []):
        _validate_extra(i, extra, norm_datasets, normalized, cfg)
    if cfg.get("analysis") is not None:
        S.parse(S.AnalysisSettings, cfg["analysis"], "analysis")
    names = {**{m: "method" for m in methods}, **{d: "dataset" for d in datasets}, **{m: "model" for m in models}}
    for key, res in (cfg.get("resources") or {}).items():
        group, _, name = str(key).partition("/")
        if group == "mask":
            raise ConfigError(f"resources.{key}: there is no mask rule any more (before-training masks are computed "
                              "in the training job): use train or train/<method>")
        if group not in S.RESOURCE_GROUPS:
            raise ConfigError(f"resources.{key}: unknown group {group!r}{S.did_you_mean(group, S.RESOURCE_GROUPS)} "
                              f"(groups: {', '.join(S.RESOURCE_GROUPS)}; keys are <group> or <group>/<name>)")
        if name and name not in names:
            raise ConfigError(f"resources.{key}: {name!r} is not a model, dataset or method of this config"
                              f"{S.did_you_mean(name, names)}")
        S.parse(S.ResourceSettings, res, f"resources.{key}")

    # fill in the defaults (in place: the Snakefile's `config` is this dict)
    top = S.to_dict(S.parse(S.ConfigSettings, cfg, ""))
    cfg["device"] = top["device"]
    cfg["matching_tolerance"] = top["matching_tolerance"]
    cfg["run_methods"] = run_methods
    cfg["methods"] = normalized
    cfg["models"] = norm_models
    cfg["datasets"] = norm_datasets


def _check_method_list(cfg: dict, methods: dict, names: list, where: str) -> None:
    for name in names:
        method_info_or_error(name, where)
        if name not in methods:
            raise ConfigError(f"method {name!r} in {where} has no entry under config.methods")
        init = METHODS[name].init_mask_from
        if init and init not in methods:
            raise ConfigError(f"method {name!r} starts from {init!r}'s mask, so config.methods needs {init!r}")


def _validate_model(name: str, entry: Any) -> dict:
    where = f"models.{name}"
    S.check_name(name, "models", "model")
    if not isinstance(entry, dict):
        raise ConfigError(f"model {name!r} must be a mapping")
    for key in ("family", "arch", "source"):
        if key not in entry:
            raise ConfigError(f"model {name!r} is missing {key!r}")
    _check_family(entry["family"], "model", name)
    S.parse(S.ModelEntry, entry, where)
    archs = ARCHS[entry["family"]]
    if entry["arch"] not in archs:
        raise ConfigError(f"unknown arch {entry['arch']!r} for {entry['family']} model {name!r}"
                          f"{S.did_you_mean(entry['arch'], archs)} (known: {', '.join(archs)})")
    _check_source(entry["source"], f"{where}.source")
    settings = S.parse_model(entry["family"], entry.get("settings"), f"{where}.settings")
    check = getattr(settings, "check_arch", None)
    if check is not None:
        check(entry["arch"], f"{where}.settings")
    out = dict(entry)
    out["settings"] = S.to_dict(settings)
    if entry.get("training") is not None:  # an override: keep only the keys given, typed
        given = S.to_dict(S.parse_training(entry["family"], entry["training"], f"{where}.training", False))
        out["training"] = {k: given[k] for k in entry["training"] if k in given}
    return out


def _check_family(family: Any, kind: str, name: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r} for {kind} {name!r}{S.did_you_mean(family, FAMILIES)} "
                          f"(known: {', '.join(FAMILIES)})")


def _validate_dataset(cfg: dict, name: str, d: Any, models: dict, methods: dict, run_methods: list) -> dict:
    where = f"datasets.{name}"
    S.check_name(name, "datasets", "dataset")
    if not isinstance(d, dict):
        raise ConfigError(f"dataset {name!r} must be a mapping")
    for key in ("family", "source", "models"):
        if key not in d:
            raise ConfigError(f"dataset {name!r} is missing {key!r}")
    _check_family(d["family"], "dataset", name)
    if d.get("run_methods") == []:
        raise ConfigError(f"{where}.run_methods is empty: this dataset would run nothing (remove the key to use "
                          "the global run_methods, or set enabled: false)")
    entry = S.parse(S.DatasetEntry, d, where)
    family = S.family_settings(d["family"])
    for model in d["models"]:
        if model not in models:
            raise ConfigError(f"unknown model {model!r} for dataset {name!r}{S.did_you_mean(model, models)} "
                              f"(known: {', '.join(models)})")
        if models[model]["family"] != d["family"]:
            raise ConfigError(f"model {model!r} is a {models[model]['family']} model but dataset {name!r} is "
                              f"{d['family']}: pick a model of the same family")
    for model in d["models"]:
        _check_same_world(name, d, model, models[model], family.dataset)
        check_model = getattr(family.dataset, "check_model", None)
        if check_model is not None:
            check_model(S.parse(family.dataset, d.get("settings"), f"{where}.settings"), name,
                        models[model]["arch"], f"{where} with model {model!r}")
    validate_scope_name(entry.scope, f"{where}.scope")
    _check_source(d["source"], f"{where}.source")
    settings = S.parse(family.dataset, d.get("settings"), f"{where}.settings")
    check = getattr(settings, "check_dataset", None)
    if check is not None:
        check(name, d["source"], f"{where}.settings")
    _check_folds(name, d, settings, where)
    training = S.parse(family.training, d.get("training"), f"{where}.training")
    for model in d["models"]:
        override = models[model].get("training")
        if override:  # the recipe this model trains with, checked whole
            S.parse(family.training, {**(d.get("training") or {}), **override},
                    f"{where}.training with models.{model}.training")

    ds_methods = list(entry.run_methods) if entry.run_methods is not None else run_methods
    if entry.run_methods is not None:
        _check_method_list(cfg, methods, ds_methods, f"{where}.run_methods")
    overrides = d.get("method_overrides") or {}
    for m, o in overrides.items():
        method_info_or_error(m, f"{where}.method_overrides")
        if m not in methods:
            raise ConfigError(f"method {m!r} in {where}.method_overrides has no entry under config.methods")
        if o is not None and not isinstance(o, dict):
            raise ConfigError(f"{where}.method_overrides.{m} must be a mapping, got {o!r}")
        S.parse_method(m, {**methods[m], **(o or {})}, f"{where}.method_overrides.{m}")
    method_training = {}
    for m, o in (d.get("method_training") or {}).items():
        method_info_or_error(m, f"{where}.method_training")
        if m not in methods:
            raise ConfigError(f"method {m!r} in {where}.method_training has no entry under config.methods")
        if not isinstance(o, dict) or not o:
            raise ConfigError(f"{where}.method_training.{m} must be a non-empty mapping of training keys, got {o!r}")
        given = S.to_dict(S.parse_training(d["family"], o, f"{where}.method_training.{m}", False))
        method_training[m] = {k: given[k] for k in o if k in given}
        for model in d["models"]:  # the whole recipe this method trains with, checked
            S.parse(family.training, {**(d.get("training") or {}), **(models[model].get("training") or {}),
                                      **method_training[m]}, f"{where}.method_training.{m} with model {model!r}")
    levels = list(entry.levels) if entry.levels is not None else list(cfg["levels"])
    if entry.enabled:
        for m in ds_methods:
            _check_levels_of_method(m, {**methods[m], **(overrides.get(m) or {})}, levels, where)

    out = dict(d)
    out["enabled"] = entry.enabled
    out["scope"] = entry.scope
    out["settings"] = S.to_dict(settings)
    out["training"] = S.to_dict(training)
    if method_training:
        out["method_training"] = method_training
    return out


def _check_same_world(name: str, d: dict, model: str, m: dict, dataset_cls: type) -> None:
    """A synthetic dataset and the synthetic model fine-tuned on it come from the same world."""
    keys = getattr(dataset_cls, "world_keys", ())
    if not keys or d["source"] != "synthetic" or m["source"] != "synthetic":
        return
    ds = S.to_dict(S.parse(dataset_cls, d.get("settings"), f"datasets.{name}.settings"))
    ms = m["settings"]
    for key in keys:
        if key in ms and ds.get(key) != ms[key]:
            raise ConfigError(f"datasets.{name}.settings.{key}={ds.get(key)!r} but its model {model!r} was pre-trained "
                              f"with models.{model}.settings.{key}={ms[key]!r}: a synthetic dataset and its model "
                              f"must come from the same world ({', '.join(keys)} equal)")


def _check_levels_of_method(method: str, settings: dict, levels: list[int], where: str) -> None:
    """Each level k must be one the method's jobs accept (IMP rounds: the target its
    ``prune_fraction`` reaches)."""
    if method == DENSE:
        return
    for k in levels:
        error = _run_error(method, canonical_json(settings), k, target_sparsity(k))
        if error:
            hint = (" (the levels s_k = 1 - 0.8**k need prune_fraction 0.2)"
                    if METHODS[method].iterative and "prune_fraction" in error else "")
            raise ConfigError(f"{where}: method {method!r} at level {k}: {error}{hint}")


def _check_targets_of_method(method: str, settings: dict, targets: list[float], where: str) -> None:
    for t in targets:
        error = _run_error(method, canonical_json(settings), 0, float(t))
        if error:
            raise ConfigError(f"{where}: method {method!r} at target {t}: {error}"
                              + (" (an iterative method at an explicit target runs one round from the dense "
                                 "fine-tune)" if METHODS[method].iterative else ""))


@functools.lru_cache(maxsize=4096)
def _run_error(method: str, settings_json: str, level: int, target: float) -> str:
    """The registry's per-(method, level) check (``check_run``), once per distinct input: the
    message of the error a job of that level would raise, or ``""``."""
    from .sparsity import registry

    check_run = getattr(registry, "check_run", None)
    if check_run is None:
        return ""
    try:
        check_run(method, json.loads(settings_json), level, target)
    except ValueError as e:
        return str(e)
    return ""


def _check_folds(name: str, d: dict, settings: Any, where: str) -> None:
    folds = d.get("folds")
    count = getattr(settings, "folds", None)  # a family without the hook has no CV folds
    n = count(name, d["source"]) if count is not None else None
    if folds is None:
        if n:
            raise ConfigError(f"{where}.folds: dataset {name!r} is {n}-fold cross-validated; set folds to a "
                              f"subset of {list(range(n))}")
        return
    if n is None:
        raise ConfigError(f"{where}.folds={folds!r}: dataset {name!r} ({d['family']}) has no cross-validation folds; "
                          "remove folds")
    if len(set(folds)) != len(folds):
        raise ConfigError(f"{where}.folds={folds!r} repeats a fold")
    for f in folds:
        if n and not 0 <= f < n:
            raise ConfigError(f"{where}.folds: fold {f} is out of range: dataset {name!r} is {n}-fold "
                              f"cross-validated (folds 0..{n - 1})")


def _validate_extra(i: int, extra: Any, datasets: dict, methods: dict, cfg: dict) -> None:
    where = f"extra_runs[{i}]"
    if not isinstance(extra, dict):
        raise ConfigError(f"{where} must be a mapping")
    if "name" not in extra:
        raise ConfigError(f"{where} needs a 'name'")
    e = S.parse(S.ExtraRun, extra, where)
    for ds in e.datasets:
        if ds not in datasets:
            raise ConfigError(f"unknown dataset {ds!r} in {where}{S.did_you_mean(ds, datasets)} "
                              f"(known: {', '.join(datasets)})")
        for model in e.models or ():
            if model not in datasets[ds]["models"]:
                raise ConfigError(f"model {model!r} in {where} is not one of dataset {ds!r}'s models "
                                  f"({', '.join(datasets[ds]['models'])})")
    for m in e.methods:
        method_info_or_error(m, where)
        if m not in methods:
            raise ConfigError(f"method {m!r} in {where} has no entry under config.methods")
    _check_method_list(cfg, methods, list(e.methods), where)
    for sc in e.scopes or [e.scope or "paper"]:
        validate_scope_name(sc, where)
    for ds in e.datasets:
        overrides = datasets[ds].get("method_overrides") or {}
        for m in e.methods:
            merged = {**methods[m], **(overrides.get(m) or {})}
            if e.targets:
                _check_targets_of_method(m, merged, list(e.targets), f"{where} on {ds}")
            else:
                levels = list(e.levels or datasets[ds].get("levels") or cfg["levels"])
                _check_levels_of_method(m, merged, levels, f"{where} on {ds}")


def method_info_or_error(name: str, where: str):
    try:
        return method_info(name)
    except ValueError:
        raise ConfigError(f"unknown method {name!r} in {where}{S.did_you_mean(name, METHODS)} "
                          f"(known: {', '.join(METHODS)})") from None


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


@functools.lru_cache(maxsize=None)
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
def task_settings(cfg: dict, dataset: str, model: str, method: str | None = None) -> dict:
    """What a task needs to train: the dataset's settings, the model entry and the training recipe
    (the dataset's, with the model's ``training`` overrides on top, then the dataset's
    ``method_training`` for ``method``)."""
    d = cfg["datasets"][dataset]
    m = cfg["models"][model]
    settings = dict(d.get("settings") or {})
    settings["model"] = {"name": model, "arch": m["arch"], "source": m["source"],
                         "settings": dict(m.get("settings") or {})}
    settings["training"] = {**(d.get("training") or {}), **(m.get("training") or {}),
                            **((d.get("method_training") or {}).get(method) or {})}
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
        "task": task_settings(cfg, dataset, model, method),
        "method": method,
        "method_settings": method_settings(cfg, dataset, method),
        "scope": scope,
        "level": k,
        "target_sparsity": s,
        "device": cfg.get("device", "auto"),
    }


# The normalized settings of the config validated last, as canonical JSON pieces per (dataset,
# model) and (dataset, method): planning builds thousands of params from a few dozen pieces, and
# nothing is validated again per job. Filled lazily; reset by validate_config. A config edited in
# place after its params were built must be validated again (any other dict is never cached).
_PIECES: list = [None, {}]


def _piece(cfg: dict, key: tuple, make) -> str:
    if _PIECES[0] is not cfg:
        return canonical_json(make())
    cache = _PIECES[1]
    if key not in cache:
        cache[key] = canonical_json(make())
    return cache[key]


def _job_params_json(cfg: dict, dataset: str, model: str, method: str, scope: str, level: str,
                     init: str | None = None) -> str:
    """``canonical_json(_job_params(...))`` (plus ``init_mask_from``), assembled from cached pieces."""
    k, s = parse_level(level)
    q = _quote
    parts = [
        ("dataset", q(dataset)), ("device", q(cfg.get("device", "auto"))),
        ("family", q(cfg["datasets"][dataset]["family"])),
        ("level", str(int(k))), ("method", q(method)),
        ("method_settings", _piece(cfg, ("method", dataset, method), lambda: method_settings(cfg, dataset, method))),
        ("scope", q(scope)), ("target_sparsity", float.__repr__(float(s))),
        ("task", _task_piece(cfg, dataset, model, method)),
    ]
    if init:
        parts.append(("init_mask_from", q(init)))
    parts.sort()
    return "{" + ",".join(f'"{key}":{value}' for key, value in parts) + "}"


def _task_piece(cfg: dict, dataset: str, model: str, method: str) -> str:
    if method not in (cfg["datasets"][dataset].get("method_training") or {}):
        method = None  # the dataset's recipe, shared by every method without its own training keys
    return _piece(cfg, ("task", dataset, model, method), lambda: task_settings(cfg, dataset, model, method))


def _quote(text: str) -> str:
    """A string as canonical JSON (``json.dumps`` with ``ensure_ascii``)."""
    return json.encoder.encode_basestring_ascii(text)  # type: ignore[attr-defined]


def train_params(cfg: dict, dataset: str, model: str, method: str, scope: str, level: str) -> str:
    """The canonical JSON a training job receives (its only settings). The mask rule's settings
    reach a job that starts from a mask through its input file; its params name the method."""
    if method == DENSE:  # dense prunes nothing; its sparsity is still measured over the dataset's scope
        scope = cfg["datasets"][dataset].get("scope", "paper")
    return _job_params_json(cfg, dataset, model, method, scope, level, METHODS[method].init_mask_from)


def mask_params(cfg: dict, dataset: str, model: str, method: str, scope: str, level: str) -> str:
    """The canonical JSON of a before-training mask job (the ``init_mask_from`` method's settings)."""
    return _job_params_json(cfg, dataset, model, method, scope, level)


def prepare_params(cfg: dict, dataset: str) -> str:
    """The dataset's ``settings`` (what ``prepare`` receives)."""
    return canonical_json(cfg["datasets"][dataset].get("settings") or {})


def pretrained_params(cfg: dict, model: str) -> str:
    """The model entry without its ``training`` overrides (they do not change the pre-trained model)."""
    return canonical_json({k: v for k, v in cfg["models"][model].items() if k != "training"})


def resolved_config(cfg: dict) -> dict:
    """The config as the analyses see it (``results/<suite>/config.json``)."""
    out = {k: v for k, v in cfg.items()}
    out.setdefault("run_methods", list(cfg["methods"]))
    out.setdefault("matching_tolerance", 1.0)
    out.setdefault("analysis", {})
    return out
