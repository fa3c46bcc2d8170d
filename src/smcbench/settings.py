"""Typed settings: every key a config may set, its type, default, valid range and meaning.

Torch-free (the Snakefile imports it through :mod:`smcbench.config` at every planning).

Each part of the config is a frozen dataclass whose fields carry their rules in ``metadata``
(see :func:`opt`): the training recipe (one class per family, since defaults such as the batch
size differ), each family's dataset ``settings`` and model ``settings``, each method's settings,
and the config's own structure (top level, dataset and model entries, extra runs, resources).
One small checker (:func:`parse`) reads a mapping into such a class:

* an unknown key is an error naming its path and the closest valid key
  (``datasets.csqa.training.warmup_step is not a setting; did you mean 'warmup_steps'?``);
* a value of the wrong type or outside its range is an error naming the key, the value and the
  valid range;
* :func:`to_dict` gives the settings back as plain JSON values with every default filled in
  (keys whose default is "unset" -- ``None`` -- are left out, so they stay absent).

The JSON schema (``workflow/schemas/config.schema.yaml``) and the reference tables of
``docs/configuration.md`` are generated from these classes (``python -m smcbench.settings
--write``); a test checks that both are up to date.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


class SettingsError(ValueError):
    """A bad setting; the message names the key path, the value and what is valid."""


NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_NAME_RE = re.compile(NAME_PATTERN)

SCHEDULES = ("linear", "polynomial", "constant", "cosine", "step", "inverse_sqrt")
AMP = ("bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda")


# =============================================================================================
# the rules of one field, and the checker
# =============================================================================================
def opt(kind: Any, default: Any = MISSING, doc: str = "", **rules: Any):
    """A settings field. ``kind``: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"ints"``,
    ``"floats"``, ``"strs"`` (lists), ``"mapping"``, ``"list"``, or a settings class (a nested
    mapping). Rules: ``ge``, ``gt``, ``le``, ``lt`` (numbers and list items), ``choices``,
    ``pattern``, ``min_items``, ``length``, ``unique``; ``hint`` is added to the field's error
    messages. A default of ``None`` means "unset" (the code derives
    a value, described in ``doc``); ``MISSING`` means required."""
    meta = dict(rules, kind=kind, doc=doc)
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple for list defaults (fields are immutable)")
    return field(default=default, metadata=meta)


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def did_you_mean(word: str, choices) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices`` (ignoring case), or ``""``."""
    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def check_keys(data: dict, valid, path: str, what: str = "a setting") -> None:
    """Every key of ``data`` must be in ``valid``; else an error naming the key path, the closest
    valid key and all valid ones."""
    valid = list(valid)
    for key in data:
        if key not in valid:
            shown = ", ".join(valid) if valid else "none"
            raise SettingsError(f"{_where(path, str(key))} is not {what}{did_you_mean(key, valid)} "
                                f"(valid: {shown})")


def _range_text(meta: dict) -> str:
    lo = ("[", meta["ge"]) if "ge" in meta else ("(", meta["gt"]) if "gt" in meta else None
    hi = (meta["le"], "]") if "le" in meta else (meta["lt"], ")") if "lt" in meta else None
    if lo and hi:
        return f"in {lo[0]}{lo[1]}, {hi[0]}{hi[1]}"
    if lo:
        return f">= {lo[1]}" if lo[0] == "[" else f"> {lo[1]}"
    if hi:
        return f"<= {hi[0]}" if hi[1] == "]" else f"< {hi[0]}"
    return ""


def _in_range(x: float, meta: dict) -> bool:
    return not (("ge" in meta and x < meta["ge"]) or ("gt" in meta and x <= meta["gt"])
                or ("le" in meta and x > meta["le"]) or ("lt" in meta and x >= meta["lt"]))


def _number(value: Any, kind: str, where: str, meta: dict):
    if isinstance(value, bool):
        raise SettingsError(f"{where}={value!r} is not a{'n integer' if kind == 'int' else ' number'}")
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise SettingsError(f"{where}={value!r} is not an integer")
    else:
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise SettingsError(f"{where}={value!r} is not a number") from None
        if not isinstance(value, (int, float)):
            raise SettingsError(f"{where}={value!r} is not a number")
        value = float(value)
        if not math.isfinite(value):
            raise SettingsError(f"{where}={value!r} is not a finite number")
    if not _in_range(value, meta):
        raise SettingsError(f"{where}={value!r} is out of range: must be {_range_text(meta)}")
    return value


def _scalar(value: Any, kind: str, where: str, meta: dict):
    if kind in ("int", "float"):
        value = _number(value, kind, where, meta)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise SettingsError(f"{where}={value!r} is not true or false")
    elif kind == "str":
        if not isinstance(value, str):
            raise SettingsError(f"{where}={value!r} is not a string")
        if "pattern" in meta and not re.match(meta["pattern"], value):
            raise SettingsError(f"{where}={value!r} does not match {meta['pattern']} "
                                f"({meta.get('pattern_doc', 'letters, digits, - and _')})")
    if "choices" in meta and value not in meta["choices"]:
        raise SettingsError(f"{where}={value!r} is not one of {', '.join(map(str, meta['choices']))}"
                            f"{did_you_mean(value, meta['choices'])}")
    return value


def check_value(value: Any, meta: dict, where: str, nullable: bool = False):
    """One value against its field's rules; returns it normalized (lists as tuples). ``None`` is
    accepted only where ``nullable`` (fields whose default is None). A field's ``hint`` is added
    to its error messages."""
    if "hint" not in meta or isinstance(meta["kind"], type):
        return _check_value(value, meta, where, nullable)
    try:
        return _check_value(value, meta, where, nullable)
    except SettingsError as e:
        raise SettingsError(f"{e} ({meta['hint']})") from None


def _check_value(value: Any, meta: dict, where: str, nullable: bool):
    kind = meta["kind"]
    if value is None:
        if nullable:
            return None
        raise SettingsError(f"{where} may not be null")
    if isinstance(kind, type):
        return parse(kind, value, where)
    if kind in ("ints", "floats", "strs", "list"):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise SettingsError(f"{where}={value!r} is not a list")
        if "min_items" in meta and len(value) < meta["min_items"]:
            raise SettingsError(f"{where}={value!r}: needs at least {meta['min_items']} item(s)")
        if "length" in meta and len(value) != meta["length"]:
            raise SettingsError(f"{where}={value!r}: needs exactly {meta['length']} items")
        if meta.get("unique") and len({repr(v) for v in value}) != len(value):
            raise SettingsError(f"{where}={value!r} repeats an item")
        if kind == "list":
            return tuple(value)
        item = {"ints": "int", "floats": "float", "strs": "str"}[kind]
        return tuple(_scalar(v, item, f"{where}[{i}]", meta) for i, v in enumerate(value))
    if kind == "mapping":
        if not isinstance(value, dict):
            raise SettingsError(f"{where} must be a mapping, got {value!r}")
        return value
    return _scalar(value, kind, where, meta)


def parse(cls, data: Any, path: str = "", check_whole: bool = True):
    """Read ``data`` (a mapping or None) into the settings class ``cls``; raise
    :class:`SettingsError` naming the key path for unknown keys and bad values. Cross-field
    checks are the class's ``check(path)`` method (skipped with ``check_whole=False``, for a
    partial mapping such as an override)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path or 'settings'} must be a mapping, got {data!r}")
    specs = {f.name: f for f in fields(cls)}
    check_keys(data, specs, path)
    values = {}
    for name, f in specs.items():
        where = _where(path, name)
        if name in data:
            values[name] = check_value(data[name], f.metadata, where, f.default is None)
        elif f.default is MISSING:
            raise SettingsError(f"{where} is required: {f.metadata.get('doc', '')}".rstrip(": "))
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None and check_whole:
        check(path)
    return obj


def _jsonable(value: Any):
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def to_dict(obj) -> dict:
    """Plain JSON values with every default filled in; unset (``None``) fields are left out."""
    return {f.name: _jsonable(getattr(obj, f.name)) for f in fields(obj) if getattr(obj, f.name) is not None}


def settings(cls):
    """Decorator: a frozen, keyword-only settings dataclass."""
    return dataclass(frozen=True, kw_only=True)(cls)


def _err(path: str, msg: str) -> SettingsError:
    return SettingsError(f"{path + ': ' if path else ''}{msg}")


# =============================================================================================
# training (datasets.<name>.training)
# =============================================================================================
@settings
class TrainingSettings:
    """The fine-tuning recipe of a dataset (``datasets.<name>.training``): AdamW, a learning-rate
    schedule with warmup, clipping, how often to evaluate."""

    lr: float = opt("float", 1e-4, "peak learning rate", gt=0)
    batch_size: int = opt("int", 16, "examples per optimizer step", ge=1)
    weight_decay: float = opt("float", 0.0, "AdamW weight decay", ge=0)
    betas: tuple = opt("floats", (0.9, 0.999), "AdamW betas [beta1, beta2]", ge=0, lt=1, length=2)
    eps: float = opt("float", 1e-8, "AdamW epsilon", gt=0)
    epochs: int = opt("int", 1, "passes over the training set (ignored when max_steps is set)", ge=1)
    max_steps: int = opt("int", None, "optimizer steps in total (overrides epochs)", ge=1)
    warmup_steps: int = opt("int", None, "linear warmup steps (overrides warmup_ratio)", ge=0)
    warmup_ratio: float = opt("float", 0.0, "warmup as a fraction of all steps", ge=0, le=1)
    schedule: str = opt("str", "linear", "learning-rate schedule after warmup", choices=SCHEDULES)
    step_size_epochs: int = opt("int", 0, "schedule step: decay every this many epochs", ge=0)
    step_size_steps: int = opt("int", 0, "schedule step: decay every this many steps (overrides step_size_epochs)",
                               ge=0)
    step_gamma: float = opt("float", 0.5, "schedule step: factor per decay", gt=0, le=1)
    clip_norm: float = opt("float", 0.0, "gradient norm clipping (0 = off)", ge=0)
    eval_every: int = opt("int", 0, "evaluate on validation every this many steps (0 = every epoch)", ge=0)
    report_best_on_test: bool = opt("bool", False, "also report the paper's best-on-test value (never used for selection)")
    amp: str = opt("str", "bf16", "mixed precision on CUDA (ignored on CPU)", choices=AMP)

    def check(self, path: str) -> None:
        if self.schedule == "step" and not (self.step_size_epochs or self.step_size_steps):
            raise _err(path, "schedule 'step' needs step_size_epochs or step_size_steps > 0")


@settings
class CommonsenseTraining(TrainingSettings):
    __doc__ = TrainingSettings.__doc__
    batch_size: int = opt("int", 16, "examples per optimizer step", ge=1)


@settings
class ArithmeticTraining(TrainingSettings):
    __doc__ = TrainingSettings.__doc__
    batch_size: int = opt("int", 8, "problems per optimizer step (a model's settings.batch_size overrides)", ge=1)


@settings
class ProteinTraining(TrainingSettings):
    __doc__ = TrainingSettings.__doc__
    batch_size: int = opt("int", 32, "sequences per optimizer step (a model's settings.batch_size overrides)", ge=1)
    backbone_lr: float = opt("float", None, "learning rate of the backbone (default: lr; the head uses lr)", gt=0)
    eval_batch_size: int = opt("int", None, "evaluation batch size (default: max(batch_size, 64))", ge=1)


@settings
class TranslationTraining(TrainingSettings):
    __doc__ = TrainingSettings.__doc__
    batch_size: int = opt("int", 16, "sentence pairs per optimizer step", ge=1)
    label_smoothing: float = opt("float", None, "label smoothing (default: the dataset's, else 0.2)", ge=0, lt=1)


# =============================================================================================
# dataset settings (datasets.<name>.settings), one class per family
# =============================================================================================
_VAL = "fraction of train carved out as the validation (selection) split"


@settings
class CommonsenseDataset:
    """Commonsense datasets (CSQA, WinoGrande, RACE, the synthetic demo)."""

    validation_fraction: float = opt("float", 0.1, _VAL, ge=0, lt=1)
    split_seed: int = opt("int", 0, "seed of the validation carve", ge=0)
    on_overlap: str = opt("str", "error", "a test item that also occurs in train: refuse, or drop it from train",
                          choices=("error", "drop_from_train"))
    loader: str = opt("str", None, "which reader (default: the dataset's name)", choices=("csqa", "winogrande", "race"))
    validation_source: str = opt("str", "dev", "RACE: validate on the released dev split, or carve it from train",
                                 choices=("train", "dev"))
    config: str = opt("str", "winogrande_xl", "WinoGrande size configuration")
    input_format: str = opt("str", None, "how rows become token ids (default: by dataset name)",
                            choices=("csqa", "race", "winogrande"))
    max_length: int = opt("int", 128, "tokens per (question, choice) input", ge=8)
    option_max_tokens: int = opt("int", 128, "RACE: tokens kept of each option", ge=1)
    margin_alpha: float = opt("float", 5.0, "WinoGrande margin loss alpha (roberta_mlm)", ge=0)
    margin_beta: float = opt("float", 0.4, "WinoGrande margin loss beta (roberta_mlm)", ge=0)
    eval_batch_size: int = opt("int", 64, "evaluation batch size", ge=1)
    head_lr_multiplier: float = opt("float", 1.0, "the new head's learning rate = lr x this", gt=0)
    # synthetic demo
    variant: str = opt("str", None, "synthetic: question kind", choices=("easy", "hard"))
    world_seed: int = opt("int", 0, "synthetic: seed of the made-up world", ge=0)
    n_people: int = opt("int", 60, "synthetic: people in the world", ge=2)
    n_choices: int = opt("int", 4, "synthetic: answer choices per question", ge=2)
    data_seed: int = opt("int", 0, "synthetic: seed of the questions", ge=0)
    n_train: int = opt("int", 600, "synthetic: training questions", ge=1)
    n_test: int = opt("int", 200, "synthetic: test questions", ge=1)

    def folds(self, dataset: str, source: str) -> int | None:
        return None

    def check_model(self, dataset: str, arch: str, path: str) -> None:
        """Masked-LM scoring (``roberta_mlm``) reads WinoGrande-style rows only."""
        fmt = self.input_format or {"csqa": "csqa", "race": "race", "winogrande": "winogrande",
                                    "demo_cs_easy": "csqa", "demo_cs_hard": "csqa"}.get(self.loader or dataset)
        if arch == "roberta_mlm" and fmt is not None and fmt != "winogrande":
            raise _err(path, f"a model of arch 'roberta_mlm' (masked-LM scoring) needs WinoGrande-style rows, but "
                             f"dataset {dataset!r} has input_format {fmt!r}; use a model of arch 'roberta_mc'")

    def check_dataset(self, dataset: str, source: str, path: str) -> None:
        """The reader must be known before the prepare job starts."""
        if source == "synthetic":
            if self.variant is None:
                raise _err(path, "a synthetic commonsense dataset needs variant (easy or hard)")
        elif self.loader is None and dataset not in ("csqa", "winogrande", "race"):
            raise _err(path, f"no commonsense loader for dataset {dataset!r} (known: csqa, winogrande, race"
                             f"{did_you_mean(dataset, ('csqa', 'winogrande', 'race'))}; set settings.loader to one of them)")


ARITH_CV_FOLDS = 5
_ARITH_CV = {"mawps", "asdiv_a"}


@settings
class ArithmeticDataset:
    """Math word problems (MAWPS, ASDiv-A, SVAMP, the synthetic demo)."""

    validation_fraction: float = opt("float", 0.1, _VAL, gt=0, lt=1)
    split_seed: int = opt("int", 0, "seed of the validation carve (plus the fold index)", ge=0)
    on_overlap: str = opt("str", "error", "a test item that also occurs in train: refuse, or drop it from train",
                          choices=("error", "drop_from_train"))
    variant: str = opt("str", None, "synthetic: generator (default: by dataset name)", choices=("mawps", "asdiv", "svamp"))
    world_seed: int = opt("int", 0, "synthetic: generator seed", ge=0)
    n_train: int = opt("int", 400, "synthetic svamp: training problems", ge=2)
    n_test: int = opt("int", 200, "synthetic svamp: test problems", ge=1)
    n_folds: int = opt("int", ARITH_CV_FOLDS, "synthetic mawps/asdiv: cross-validation folds", ge=2)
    n_problems: int = opt("int", 500, "synthetic mawps/asdiv: problems in the pool", ge=2)

    def folds(self, dataset: str, source: str) -> int | None:
        """The number of CV folds of ``dataset`` (None: not cross-validated)."""
        if source == "synthetic":
            variant = self.variant or {"demo_mawps": "mawps", "demo_asdiv": "asdiv"}.get(dataset)
            return self.n_folds if variant in ("mawps", "asdiv") else None
        return ARITH_CV_FOLDS if dataset in _ARITH_CV else None

    def check_dataset(self, dataset: str, source: str, path: str) -> None:
        known = ("mawps", "asdiv_a", "svamp")
        if source == "synthetic":
            if self.variant is None and dataset not in ("demo_mawps", "demo_asdiv", "demo_svamp"):
                raise _err(path, f"synthetic arithmetic dataset {dataset!r} needs variant (mawps, asdiv or svamp)")
        elif dataset not in known:
            raise _err(path, f"no arithmetic reader for dataset {dataset!r}{did_you_mean(dataset, known)} "
                             f"(real sources: {', '.join(known)})")


@settings
class ProteinDataset:
    """Protein property datasets (HotProtein, FLIP Meltome, the synthetic demo)."""

    variant: str = opt("str", None, "which dataset (default: by dataset name)",
                       choices=("hp_s", "hp_s2c2", "hp_s2c5", "meltome"))
    validation_fraction: float = opt("float", 0.1, _VAL, gt=0, lt=1)
    split_seed: int = opt("int", 0, "seed of the validation carve", ge=0)
    max_residues: int = opt("int", 1022, "longer sequences are cropped", ge=1)
    num_classes: int = opt("int", None, "classes (default: the dataset's; synthetic 2)", ge=2)
    cv_fold: int = opt("int", 0, "HotProtein S2C2/S2C5: the split file's fold (when `folds` is not given)", ge=0)
    label_offset: int = opt("int", 0, "HotProtein: added to every label")
    fasta_dir: str = opt("str", None, "HotProtein: FASTA folder (default: the release's)")
    chain: str = opt("str", "A", "HotProtein S2C5: the structure's chain")
    split: str = opt("str", "mixed", "Meltome: FLIP split", choices=("mixed", "human", "human_cell"))
    tm_bins: tuple = opt("floats", (50.0, 65.0), "Meltome: class boundaries in degrees C, ascending", min_items=1)
    validation_from: str = opt("str", "carve", "Meltome: carve validation or use FLIP's", choices=("carve", "flip"))
    # synthetic demo
    world_seed: int = opt("int", 0, "synthetic: seed", ge=0)
    n_train: int = opt("int", 400, "synthetic: training sequences", ge=2)
    n_test: int = opt("int", 200, "synthetic: test sequences", ge=1)
    min_length: int = opt("int", 20, "synthetic: shortest sequence", ge=1)
    max_length: int = opt("int", 32, "synthetic: longest sequence", ge=1)
    label_noise: float = opt("float", 0.0, "synthetic: fraction of flipped labels", ge=0, le=1)

    def check(self, path: str) -> None:
        if self.min_length > self.max_length:
            raise _err(path, f"min_length={self.min_length} > max_length={self.max_length}")
        if list(self.tm_bins) != sorted(self.tm_bins):
            raise _err(path, f"tm_bins={list(self.tm_bins)} must be ascending")

    def folds(self, dataset: str, source: str) -> int | None:
        variant = self.variant or {"hotprotein_s2c2": "hp_s2c2", "hotprotein_s2c5": "hp_s2c5"}.get(dataset)
        if source != "synthetic" and variant in ("hp_s2c2", "hp_s2c5"):
            return 0  # cross-validated, fold count given by the release's split files
        return None

    def check_dataset(self, dataset: str, source: str, path: str) -> None:
        names = {"hotprotein_s": "hp_s", "hotprotein_s2c2": "hp_s2c2", "hotprotein_s2c5": "hp_s2c5", "meltome": "meltome"}
        if source != "synthetic" and self.variant is None and dataset not in names:
            raise _err(path, f"protein dataset {dataset!r}{did_you_mean(dataset, names)} needs variant "
                             "(hp_s, hp_s2c2, hp_s2c5 or meltome)")


_LANGS = ("cs", "de", "fr", "gu", "ja", "my", "ro", "ru", "vi", "zh")
_ORDERS = ("SVO", "SOV", "VSO", "VOS", "OSV", "OVS")


@settings
class TranslationDataset:
    """Many-to-many translation (OPUS-100 X<->en, the synthetic demo)."""

    languages: tuple = opt("strs", MISSING, "the X of the X<->en fine-tuning directions", choices=_LANGS, min_items=1,
                           unique=True)
    test_languages: tuple = opt("strs", None, "test directions' languages (default: all ten)", choices=_LANGS,
                                min_items=1, unique=True)
    temperature: float = opt("float", 1.5, "sampling temperature over directions", gt=0)
    max_source_length: int = opt("int", 256, "source tokens", ge=4)
    max_target_length: int = opt("int", 256, "target tokens", ge=4)
    num_beams: int = opt("int", 5, "beam size of evaluation", ge=1)
    eval_batch_size: int = opt("int", 32, "evaluation batch size", ge=1)
    label_smoothing: float = opt("float", None, "label smoothing (training.label_smoothing overrides; default 0.2)",
                                 ge=0, lt=1)
    selection_metric: str = opt("str", "bleu", "validation metric that selects the checkpoint", choices=("bleu", "neg_loss"))
    epoch_size: int = opt("int", None, "sentence pairs per epoch (default: all of train)", ge=1)
    # OPUS-100
    max_train_per_pair: int = opt("int", None, "OPUS: training pairs kept per direction (default: all)", ge=1)
    max_validation_per_pair: int = opt("int", 500, "OPUS: validation pairs per direction", ge=1)
    max_test_per_pair: int = opt("int", None, "OPUS: test pairs per direction (default: all)", ge=1)
    sample_seed: int = opt("int", 0, "OPUS: seed of the per-direction subsample", ge=0)
    on_overlap: str = opt("str", "error", "a test item that also occurs in train: refuse, or drop it from train",
                          choices=("error", "drop_from_train"))
    # synthetic demo (the world settings must match the model's)
    world_seed: int = opt("int", 0, "synthetic: seed of the made-up languages", ge=0)
    n_nouns: int = opt("int", 8, "synthetic: nouns per language", ge=1)
    n_verbs: int = opt("int", 4, "synthetic: verbs per language", ge=1)
    n_adjs: int = opt("int", 4, "synthetic: adjectives per language", ge=1)
    cognate_fraction: float = opt("float", 1.0, "synthetic: fraction of shared word stems", ge=0, le=1)
    word_orders: tuple = opt("strs", ("SVO", "SOV", "VSO"), "synthetic: word orders languages draw from",
                             choices=_ORDERS, min_items=1)
    n_train_per_pair: int = opt("int", 200, "synthetic: training pairs per direction", ge=1)
    n_validation_per_pair: int = opt("int", 4, "synthetic: validation pairs per direction", ge=1)
    n_test_per_pair: int = opt("int", 8, "synthetic: test pairs per direction", ge=1)

    def folds(self, dataset: str, source: str) -> int | None:
        return None


# =============================================================================================
# model settings (models.<name>.settings), one class per family
# =============================================================================================
_PRE = "synthetic: "


@settings
class CommonsenseModel:
    """RoBERTa models (``roberta_mc``, ``roberta_mlm``); the size keys build the synthetic demo model."""

    hidden_size: int = opt("int", 64, _PRE + "hidden size", ge=1)
    num_hidden_layers: int = opt("int", 2, _PRE + "layers", ge=1)
    num_attention_heads: int = opt("int", 4, _PRE + "attention heads", ge=1)
    intermediate_size: int = opt("int", 128, _PRE + "FFN size", ge=1)
    max_position_embeddings: int = opt("int", 130, _PRE + "positions", ge=8)
    hidden_dropout_prob: float = opt("float", 0.0, _PRE + "dropout", ge=0, lt=1)
    attention_probs_dropout_prob: float = opt("float", 0.0, _PRE + "attention dropout", ge=0, lt=1)
    world_seed: int = opt("int", 0, _PRE + "world seed (must match the datasets')", ge=0)
    n_people: int = opt("int", 60, _PRE + "people in the world (must match the datasets')", ge=2)
    corpus_lines: int = opt("int", 1000, _PRE + "pre-training corpus lines", ge=1)
    qa_fraction: float = opt("float", 0.0, _PRE + "fraction of reading-question lines in the corpus", ge=0, le=1)
    pretrain_seed: int = opt("int", 0, _PRE + "pre-training seed", ge=0)
    pretrain_steps: int = opt("int", 500, _PRE + "masked-LM pre-training steps", ge=0)
    pretrain_batch_size: int = opt("int", 8, _PRE + "pre-training batch size", ge=1)
    pretrain_lr: float = opt("float", 4e-3, _PRE + "pre-training learning rate", gt=0)
    pretrain_threads: int = opt("int", 1, _PRE + "torch threads while pre-training", ge=1)
    mask_prob: float = opt("float", 0.15, _PRE + "masked-LM masking probability", gt=0, lt=1)
    reading_questions: int = opt("int", 1000, _PRE + "reading questions after masked-LM", ge=0)
    reading_batch_size: int = opt("int", 12, _PRE + "reading-question batch size", ge=1)


@settings
class ArithmeticModel:
    """GTS / Graph2Tree over a RoBERTa embedder; size keys with ``synthetic`` build the demo embedder."""

    hidden_size: int = opt("int", None, "decoder hidden size (default: 512 gts, 384 graph2tree)", ge=1)
    lstm_layers: int = opt("int", 2, "encoder LSTM layers", ge=1)
    op_embed_size: int = opt("int", None, "operator embedding size (default: the embedder's hidden size)", ge=1)
    dropout: float = opt("float", 0.5, "dropout", ge=0, lt=1)
    lr: float = opt("float", None, "overrides training.lr for this model", gt=0)
    embedding_lr: float = opt("float", None, "learning rate of the RoBERTa embedder (default: lr)", gt=0)
    batch_size: int = opt("int", None, "overrides training.batch_size for this model", ge=1)
    beam_size: int = opt("int", 1, "beam size of decoding", ge=1)
    max_output_length: int = opt("int", 45, "longest equation (tokens)", ge=1)
    max_length: int = opt("int", None, "question tokens (default 256; synthetic embedder 64)", ge=8)
    max_numbers: int = opt("int", None, "number slots (default: from the data; synthetic embedder 10)", ge=1)
    min_constant_count: int = opt("int", 5, "constants seen fewer times in train are dropped", ge=1)
    eval_batch_size: int = opt("int", 64, "evaluation batch size", ge=1)
    # synthetic embedder
    embedding_size: int = opt("int", 32, _PRE + "embedder hidden size", ge=1)
    num_hidden_layers: int = opt("int", 1, _PRE + "embedder layers", ge=1)
    num_attention_heads: int = opt("int", 2, _PRE + "embedder attention heads", ge=1)
    intermediate_size: int = opt("int", 64, _PRE + "embedder FFN size", ge=1)
    world_seed: int = opt("int", 0, _PRE + "seed", ge=0)
    pretrain_steps: int = opt("int", 0, _PRE + "embedder pre-training steps", ge=0)
    pretrain_batch_size: int = opt("int", 32, _PRE + "pre-training batch size", ge=1)
    pretrain_lr: float = opt("float", 2e-3, _PRE + "pre-training learning rate", gt=0)

    def check_arch(self, arch: str, path: str) -> None:
        if arch == "graph2tree" and self.hidden_size is not None and self.hidden_size % 4:
            raise _err(path, f"hidden_size={self.hidden_size}: graph2tree needs a multiple of 4 (4 GCN branches)")


@settings
class ProteinModel:
    """ESM-1b, TAPE, ESM-IF1 with a classification head; size keys build the synthetic demo ESM."""

    head_hidden: int = opt("int", None, "head hidden size (default 512; esm_if1 128)", ge=1)
    head_dropout: float = opt("float", 0.1, "head dropout", ge=0, lt=1)
    lr: float = opt("float", None, "overrides training.lr (the head's) for this model", gt=0)
    backbone_lr: float = opt("float", None, "overrides training.backbone_lr for this model", gt=0)
    batch_size: int = opt("int", None, "overrides training.batch_size for this model", ge=1)
    attn_implementation: str = opt("str", None, "transformers attention implementation (e.g. sdpa)")
    # synthetic demo model
    hidden_size: int = opt("int", 32, _PRE + "hidden size", ge=1)
    num_hidden_layers: int = opt("int", 2, _PRE + "layers", ge=1)
    num_attention_heads: int = opt("int", None, "attention heads (default: 2 for the synthetic ESM; 12 for a TAPE "
                                   "checkpoint without its config)", ge=1)
    intermediate_size: int = opt("int", None, _PRE + "FFN size (default 2 x hidden_size)", ge=1)
    max_residues: int = opt("int", None, _PRE + "positions (default: the dataset's max_residues)", ge=1)
    max_position_embeddings: int = opt("int", 1100, _PRE + "TAPE positions", ge=1)
    world_seed: int = opt("int", 0, _PRE + "seed", ge=0)
    min_length: int = opt("int", 20, _PRE + "shortest pre-training sequence", ge=1)
    max_length: int = opt("int", 32, _PRE + "longest pre-training sequence", ge=1)
    pretrain_sequences: int = opt("int", 2000, _PRE + "pre-training sequences", ge=1)
    pretrain_steps: int = opt("int", 200, _PRE + "masked-LM pre-training steps", ge=0)
    pretrain_batch_size: int = opt("int", 32, _PRE + "pre-training batch size", ge=1)
    pretrain_lr: float = opt("float", 2e-3, _PRE + "pre-training learning rate", gt=0)

    def check(self, path: str) -> None:
        if self.min_length > self.max_length:
            raise _err(path, f"min_length={self.min_length} > max_length={self.max_length}")


@settings
class TranslationModel:
    """mBART; size keys build the synthetic demo model and must match its datasets' world."""

    dropout: float = opt("float", None, "dropout (default: the checkpoint's; synthetic 0.1)", ge=0, lt=1)
    attention_dropout: float = opt("float", None, "attention dropout (default: the checkpoint's)", ge=0, lt=1)
    lang_tokens: dict = opt("mapping", None, "language code -> the model's language token (adds to / replaces the cc25 ones)")
    d_model: int = opt("int", 64, _PRE + "model size", ge=1)
    encoder_layers: int = opt("int", 2, _PRE + "encoder layers", ge=1)
    decoder_layers: int = opt("int", 2, _PRE + "decoder layers", ge=1)
    attention_heads: int = opt("int", 4, _PRE + "attention heads", ge=1)
    ffn_dim: int = opt("int", 128, _PRE + "FFN size", ge=1)
    max_position_embeddings: int = opt("int", 64, _PRE + "positions", ge=8)
    world_seed: int = opt("int", 0, _PRE + "seed of the made-up languages", ge=0)
    n_nouns: int = opt("int", 8, _PRE + "nouns per language", ge=1)
    n_verbs: int = opt("int", 4, _PRE + "verbs per language", ge=1)
    n_adjs: int = opt("int", 4, _PRE + "adjectives per language", ge=1)
    cognate_fraction: float = opt("float", 1.0, _PRE + "fraction of shared stems", ge=0, le=1)
    word_orders: tuple = opt("strs", ("SVO", "SOV", "VSO"), _PRE + "word orders", choices=_ORDERS, min_items=1)
    pretrain_steps: int = opt("int", 400, _PRE + "denoising pre-training steps", ge=0)
    pretrain_batch_size: int = opt("int", 32, _PRE + "pre-training batch size", ge=1)
    pretrain_lr: float = opt("float", 3e-3, _PRE + "pre-training learning rate", gt=0)
    pretrain_threads: int = opt("int", None, _PRE + "torch threads while pre-training (default: torch's current)", ge=1)
    mask_ratio: float = opt("float", 0.35, _PRE + "fraction of words masked", ge=0, lt=1)
    shuffle_window: int = opt("int", 0, _PRE + "local word shuffle window (0 = off)", ge=0)
    suffix_noise: float = opt("float", 0.0, _PRE + "probability of a corrupted suffix", ge=0, le=1)


# The keys of a synthetic world that a synthetic dataset and the synthetic model fine-tuned on it
# must share (the job refuses a model pre-trained on another world).
CommonsenseDataset.world_keys = ("world_seed", "n_people")  # type: ignore[attr-defined]
TranslationDataset.world_keys = ("world_seed", "n_nouns", "n_verbs", "n_adjs", "cognate_fraction")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Family:
    """A family's settings classes (what its config entries may hold)."""

    training: type
    dataset: type
    model: type


#: the settings classes of the built-in families. The family list itself is
#: :data:`smcbench.tasks.FAMILIES`; a family registered there and not listed here declares its
#: own classes as ``SETTINGS = smcbench.settings.Family(...)`` in its module (importable without
#: torch), so adding a family needs no edit here.
FAMILY_SETTINGS: dict[str, Family] = {
    "commonsense": Family(CommonsenseTraining, CommonsenseDataset, CommonsenseModel),
    "arithmetic": Family(ArithmeticTraining, ArithmeticDataset, ArithmeticModel),
    "protein": Family(ProteinTraining, ProteinDataset, ProteinModel),
    "translation": Family(TranslationTraining, TranslationDataset, TranslationModel),
}


def family_settings(family: str) -> Family:
    """The settings classes of a registered family; an unknown name lists the known ones."""
    from .tasks import FAMILIES

    if family not in FAMILIES:
        raise SettingsError(f"unknown family {family!r}{did_you_mean(family, FAMILIES)} "
                            f"(known: {', '.join(FAMILIES)})")
    if family in FAMILY_SETTINGS:
        return FAMILY_SETTINGS[family]
    import importlib

    declared = getattr(importlib.import_module(FAMILIES[family]), "SETTINGS", None)
    if not isinstance(declared, Family):
        raise SettingsError(f"family {family!r} ({FAMILIES[family]}) declares no settings: add "
                            "SETTINGS = smcbench.settings.Family(training=..., dataset=..., model=...) to it")
    return declared


def families() -> dict[str, Family]:
    """Every registered family (in :data:`smcbench.tasks.FAMILIES` order) and its settings classes."""
    from .tasks import FAMILIES

    return {name: family_settings(name) for name in FAMILIES}


def parse_training(family: str, data: dict | None, path: str = "training", check_whole: bool = True):
    """The typed training recipe of a ``family`` (e.g. from a job's ``params.task.training``)."""
    return parse(family_settings(family).training, data, path, check_whole)


def parse_dataset(family: str, data: dict | None, path: str = "settings"):
    return parse(family_settings(family).dataset, data, path)


def parse_model(family: str, data: dict | None, path: str = "settings"):
    return parse(family_settings(family).model, data, path)


# =============================================================================================
# method settings (methods.<name>, datasets.<name>.method_overrides.<name>)
# =============================================================================================
# Each method declares its settings dataclass itself (``MethodInfo.settings``, in
# :mod:`smcbench.sparsity.settings`); the registry parses and range-checks them.
def method_settings_class(name: str) -> type:
    """The settings dataclass a registered method declares."""
    from .sparsity import registry

    info = registry.method_info(name)
    declared = getattr(info, "settings_class", None)
    return declared() if declared is not None else _Undeclared


def parse_method(name: str, data: dict | None, path: str) -> dict:
    """A method's settings with defaults filled (``path``, e.g. ``methods.gmp``, prefixes errors
    that do not already name it). Raises :class:`SettingsError`."""
    from .sparsity import registry

    if data is not None and not isinstance(data, dict):
        raise SettingsError(f"{path} must be a mapping, got {data!r}")
    validate = getattr(registry, "validate_method_settings", None)
    if validate is None:  # a registry without declared settings: nothing to check
        return dict(data or {})
    try:
        return validate(name, data or {})
    except ValueError as e:
        msg = str(e)
        raise SettingsError(msg if path in msg else f"{path}: {msg}") from None


@settings
class _Undeclared:
    """This method declares no settings class."""


_PY_KIND = {"float": "float", "int": "int", "bool": "bool", "str": "str", "dict": "mapping"}


def specs(cls) -> list[tuple[str, Any, dict]]:
    """``(name, default, rules)`` of each field of a settings class. Method settings classes
    (plain dataclasses with range checks in code) give their kind from the annotation and their
    doc from the docstring's ``Attributes:`` section."""
    out = []
    docs: dict = {}
    doc = cls.__doc__ or ""
    if "Attributes:" in doc:
        current = None
        for line in doc.split("Attributes:", 1)[1].splitlines():
            m = re.match(r"(\s+)(\w+):\s*(.*)", line)
            if m and len(m.group(1)) <= 8:
                current = m.group(2)
                docs[current] = m.group(3)
            elif current and line.strip():
                docs[current] += " " + line.strip()
    for f in fields(cls):
        default = f.default
        if default is MISSING and f.default_factory is not MISSING:
            default = f.default_factory()
        if "kind" in f.metadata:
            out.append((f.name, default, dict(f.metadata)))
            continue
        ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
        out.append((f.name, default, {"kind": _PY_KIND.get(ann, "str"), "doc": docs.get(f.name, ""),
                                      "checked": "by the method"}))
    return out


# =============================================================================================
# the config's structure
# =============================================================================================
def _level_rules():
    return dict(ge=1, le=20, min_items=1, unique=True, hint="levels are distinct integers k in 1..20, s_k = 1 - 0.8**k")


@settings
class DatasetEntry:
    """One dataset (``datasets.<name>``; the name: letters, digits, - and _)."""

    family: str = opt("str", MISSING, "task family")
    source: str = opt("str", MISSING, "Hub id, URL, local path (./ or /) or 'synthetic'")
    revision: str = opt("str", None, "Hub source: the branch, tag or 40-hex commit to download (a pin)")
    sha256: str = opt("str", None, "URL source: the file's sha256 (64 hex), checked on every use", pattern=SHA256_PATTERN,
                      pattern_doc="64 lowercase hex digits")
    files: tuple = opt("strs", None, "Hub source: glob patterns of the snapshot's files to fetch", min_items=1, unique=True)
    models: tuple = opt("strs", MISSING, "models fine-tuned on it (names under models:)", min_items=1, unique=True)
    enabled: bool = opt("bool", True, "false: keep the entry but run nothing")
    run_methods: tuple = opt("strs", None, "methods run on this dataset (default: the global run_methods)", min_items=1, unique=True)
    scope: str = opt("str", "paper", "the prunable weights (a scope name or modules:A+B)")
    folds: tuple = opt("ints", None, "cross-validation folds to run (default: no CV)", ge=0, min_items=1)
    levels: tuple = opt("ints", None, "sparsity levels k (default: the global levels)", **_level_rules())
    settings: dict = opt("mapping", None, "the family's dataset settings (see the family's table)")
    training: dict = opt("mapping", None, "the fine-tuning recipe (see Training)")
    method_overrides: dict = opt("mapping", None, "per-method settings overriding methods:<name> for this dataset")
    method_training: dict = opt("mapping", None, "per-method training keys on top of training (e.g. dense: a longer "
                                "schedule, so the after-training methods start from a plateau)")
    difficulty: str = opt("str", None, "easy or hard: groups datasets in the matching table (default: from the name)",
                          choices=("easy", "hard"))


@settings
class ModelEntry:
    """One pre-trained model (``models.<name>``)."""

    family: str = opt("str", MISSING, "task family")
    arch: str = opt("str", MISSING, "architecture the family builds")
    source: str = opt("str", MISSING, "Hub id, URL, local path (./ or /) or 'synthetic'")
    revision: str = opt("str", None, "Hub source: the branch, tag or 40-hex commit to download (a pin)")
    sha256: str = opt("str", None, "URL source: the file's sha256 (64 hex), checked on every use", pattern=SHA256_PATTERN,
                      pattern_doc="64 lowercase hex digits")
    files: tuple = opt("strs", None, "Hub source: glob patterns of the snapshot's files to fetch", min_items=1, unique=True)
    settings: dict = opt("mapping", None, "the family's model settings (see the family's table)")
    training: dict = opt("mapping", None, "training keys that override the dataset's recipe for this model "
                         "(see Training)")


@settings
class ExtraRun:
    """An ablation beyond the main grid (``extra_runs[i]``)."""

    name: str = opt("str", MISSING, "names the runs in the results (column extra)", pattern=NAME_PATTERN)
    datasets: tuple = opt("strs", MISSING, "datasets it runs on", min_items=1, unique=True)
    methods: tuple = opt("strs", MISSING, "methods it runs", min_items=1, unique=True)
    models: tuple = opt("strs", None, "models (default: each dataset's)", min_items=1)
    scope: str = opt("str", None, "one scope (default paper)")
    scopes: tuple = opt("strs", None, "several scopes (instead of scope)", min_items=1, unique=True)
    targets: tuple = opt("floats", None, "explicit target sparsities in (0, 1) instead of levels", gt=0, lt=1,
                         min_items=1, unique=True)
    levels: tuple = opt("ints", None, "levels k (default: the dataset's)", **_level_rules())

    def check(self, path: str) -> None:
        if self.scope is not None and self.scopes is not None:
            raise _err(path, "give scope or scopes, not both")
        if self.targets is not None and self.levels is not None:
            raise _err(path, "give targets or levels, not both")


@settings
class AnalysisSettings:
    """Analysis options (``analysis``)."""

    layerwise_levels: tuple = opt("ints", None, "levels k of the layerwise figures (default: all levels)", ge=1, le=20,
                                  hint="levels are distinct integers k in 1..20, s_k = 1 - 0.8**k")


#: the rule groups ``resources:`` keys name (``<group>`` or ``<group>/<model|dataset|method>``)
RESOURCE_GROUPS = ("download", "prepare", "pretrained", "train")


@settings
class ResourceSettings:
    """Resources of the jobs of a rule group (``resources.<group>``), or of its jobs for one model,
    dataset or method (``resources.<group>/<name>``; method wins over dataset over model over group)."""

    gpu: int = opt("int", None, "GPUs (default: the group's in workflow/rules/common.smk)", ge=0)
    runtime: int = opt("int", None, "minutes, times the attempt on a retry (default: the group's)", ge=1)
    mem_mb: int = opt("int", None, "memory in MB (default: the group's)", ge=1)
    threads: int = opt("int", None, "CPU threads (default: the group's)", ge=1)


@settings
class ConfigSettings:
    """The top level of a config file."""

    suite: str = opt("str", MISSING, "results go to results/<suite>/", pattern=NAME_PATTERN)
    seeds: tuple = opt("ints", MISSING, "seeds; every point is a mean over them", ge=0, min_items=1, unique=True,
                       hint="seeds are a non-empty list of distinct non-negative integers")
    levels: tuple = opt("ints", MISSING, "sparsity levels k; target s_k = 1 - 0.8**k", **_level_rules())
    device: str = opt("str", "auto", "auto (GPU when visible), cpu or cuda", choices=DEVICES)
    matching_tolerance: float = opt("float", 1.0, "points of the metric within which sparse 'matches' dense", ge=0)
    run_methods: tuple = opt("strs", None, "methods run on every dataset (default: all under methods)", min_items=1, unique=True)
    methods: dict = opt("mapping", MISSING, "each method's settings under its name (see Methods)")
    datasets: dict = opt("mapping", MISSING, "datasets by name (see Dataset entry)")
    models: dict = opt("mapping", MISSING, "models by name (see Model entry)")
    extra_runs: tuple = opt("list", None, "ablations beyond the main grid (see Extra run)")
    analysis: AnalysisSettings = opt(AnalysisSettings, None, "analysis options")
    resources: dict = opt("mapping", None, "job resources {<group> or <group>/<name>: {gpu, runtime, mem_mb, threads}}")


def check_name(name: Any, path: str, what: str) -> None:
    """Dataset and model names become path components and wildcards: letters, digits, - and _."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SettingsError(f"{what} name {name!r} in {path}: use only letters, digits, '-' and '_' "
                            "(it becomes a folder name)")


# =============================================================================================
# generated schema and reference
# =============================================================================================
def _field_schema(default: Any, m: dict) -> dict:
    kind = m["kind"]
    num = {k: m[k] for k in ("ge", "gt", "le", "lt") if k in m}
    bounds = {"minimum": num.get("ge"), "exclusiveMinimum": num.get("gt"),
              "maximum": num.get("le"), "exclusiveMaximum": num.get("lt")}
    bounds = {k: v for k, v in bounds.items() if v is not None}
    if isinstance(kind, type):
        s: dict = {"$ref": f"#/$defs/{kind.__name__}"}
    elif kind in ("int", "float"):
        s = {"type": "integer" if kind == "int" else "number", **bounds}
    elif kind == "bool":
        s = {"type": "boolean"}
    elif kind == "str":
        s = {"type": "string"}
        if "pattern" in m:
            s["pattern"] = m["pattern"]
    elif kind in ("ints", "floats", "strs"):
        item: dict = {"type": {"ints": "integer", "floats": "number", "strs": "string"}[kind], **bounds}
        if "choices" in m:
            item["enum"] = list(m["choices"])
        s = {"type": "array", "items": item}
        if "min_items" in m:
            s["minItems"] = m["min_items"]
        if "length" in m:
            s["minItems"] = s["maxItems"] = m["length"]
        if m.get("unique"):
            s["uniqueItems"] = True
    elif kind == "list":
        s = {"type": "array"}
    else:
        s = {"type": "object"}
    if "choices" in m and kind == "str":
        s["enum"] = list(m["choices"])
    if default is None and "$ref" not in s:  # referenced classes accept null themselves
        s["type"] = [s["type"], "null"]
    if m.get("doc"):
        s["description"] = m["doc"]
    if default is not MISSING and default is not None:
        s["default"] = _jsonable(default)
    return s


def _summary(cls) -> str:
    """A class docstring without its ``Attributes:`` section, on one line."""
    return " ".join((cls.__doc__ or "").split("Attributes:", 1)[0].split())


def class_schema(cls, nullable: bool = True) -> dict:
    """A settings class as a JSON schema object (``null`` allowed: an empty section in YAML)."""
    out: dict = {"type": ["object", "null"] if nullable else "object", "additionalProperties": False}
    doc = _summary(cls)
    if doc:
        out["description"] = doc
    sp = specs(cls)
    req = [name for name, default, _ in sp if default is MISSING]
    if req:
        out["required"] = req
    out["properties"] = {name: _field_schema(default, m) for name, default, m in sp}
    return out


def json_schema() -> dict:
    """The config's JSON schema, generated from the classes above."""
    from .sparsity.registry import METHODS

    defs: dict = {}
    classes = [ConfigSettings, DatasetEntry, ModelEntry, ExtraRun, AnalysisSettings, ResourceSettings]
    for fam in families().values():
        classes += [fam.training, fam.dataset, fam.model]
    method_classes = {name: method_settings_class(name) for name in METHODS}
    classes += list(dict.fromkeys(method_classes.values()))
    for cls in classes:
        defs[cls.__name__] = class_schema(cls)
    top = class_schema(ConfigSettings, nullable=False)
    props = top["properties"]
    props["methods"] = {"type": "object", "description": props["methods"].get("description", ""),
                        "additionalProperties": False,
                        "properties": {n: {"$ref": f"#/$defs/{c.__name__}"} for n, c in method_classes.items()}}
    props["run_methods"]["items"]["enum"] = list(METHODS)
    props["datasets"] = {"type": "object", "minProperties": 1, "description": props["datasets"]["description"],
                         "propertyNames": {"pattern": NAME_PATTERN},
                         "additionalProperties": {"$ref": "#/$defs/DatasetEntry"}}
    props["models"] = {"type": "object", "description": props["models"]["description"],
                       "propertyNames": {"pattern": NAME_PATTERN},
                       "additionalProperties": {"$ref": "#/$defs/ModelEntry"}}
    props["extra_runs"] = {"type": ["array", "null"], "description": props["extra_runs"]["description"],
                           "items": {"$ref": "#/$defs/ExtraRun"}}
    props["resources"] = {"type": ["object", "null"], "description": props["resources"]["description"],
                          "propertyNames": {"pattern": f"^({'|'.join(RESOURCE_GROUPS)})(/[A-Za-z0-9_+-]+)?$"},
                          "additionalProperties": {"$ref": "#/$defs/ResourceSettings"}}
    fam_names = list(families())
    for entry in ("DatasetEntry", "ModelEntry"):
        p = defs[entry]["properties"]
        p["family"]["enum"] = fam_names
        kind = "dataset" if entry == "DatasetEntry" else "model"
        defs[entry]["allOf"] = []
        for name, fam in families().items():
            then = {"settings": {"$ref": f"#/$defs/{getattr(fam, kind).__name__}"}}
            if kind == "model":
                from .tasks import ARCHS

                then["arch"] = {"enum": list(ARCHS.get(name, ()))}
                then["training"] = {"$ref": f"#/$defs/{fam.training.__name__}"}
            if kind == "dataset":
                then["training"] = {"$ref": f"#/$defs/{fam.training.__name__}"}
            defs[entry]["allOf"].append({"if": {"properties": {"family": {"const": name}}, "required": ["family"]},
                                         "then": {"properties": then}})
    defs["DatasetEntry"]["properties"]["run_methods"]["items"]["enum"] = list(METHODS)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": ("smcbench config, generated from smcbench.settings by `python -m smcbench.settings "
                            "--write` (do not edit by hand). Names across sections (models of a dataset, "
                            "methods of run_methods, scopes, ranges that depend on other keys) are checked by "
                            "smcbench.config.validate_config."),
            **{k: v for k, v in top.items() if k != "description"}, "$defs": defs}


def schema_yaml() -> str:
    import yaml

    return yaml.safe_dump(json_schema(), sort_keys=False, width=110, default_flow_style=None)


def _fmt(v: Any) -> str:
    if v is MISSING:
        return "required"
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, (tuple, list, dict)):
        import json

        return f"`{json.dumps(_jsonable(v))}`"
    return f"`{v}`"


def _rule_text(m: dict) -> str:
    kind = m["kind"]
    kind_name = f"mapping ({kind.__name__})" if isinstance(kind, type) else kind
    parts = [{"ints": "list of int", "floats": "list of float", "strs": "list of str"}.get(kind_name, kind_name)]
    r = _range_text(m)
    if r:
        parts.append(r)
    if "choices" in m:
        parts.append("one of " + ", ".join(f"`{c}`" for c in m["choices"]))
    if "length" in m:
        parts.append(f"{m['length']} items")
    if "checked" in m:
        parts.append("range checked " + m["checked"])
    return "; ".join(parts)


def class_table(cls, title: str) -> str:
    rows = [f"### {title}", "", _summary(cls), "",
            "| key | type and range | default | meaning |", "|---|---|---|---|"]
    sp = specs(cls)
    if not sp:
        rows.append("| (none) | | | |")
    for name, default, m in sp:
        rows.append(f"| `{name}` | {_rule_text(m)} | {_fmt(default)} | {m.get('doc', '')} |")
    return "\n".join(rows) + "\n"


def reference_markdown() -> str:
    """The key reference of docs/configuration.md, generated from the classes above."""
    from .sparsity.registry import METHODS

    from .tasks import ARCHS

    listed = "; ".join(f"`{f}` (archs: {', '.join(f'`{a}`' for a in ARCHS.get(f, ()))})" for f in families())
    parts = ["Families: " + listed + ".\n",
             class_table(ConfigSettings, "Top level"), class_table(DatasetEntry, "Dataset entry (`datasets.<name>`)"),
             class_table(ModelEntry, "Model entry (`models.<name>`)"), class_table(ExtraRun, "Extra run (`extra_runs[i]`)"),
             class_table(AnalysisSettings, "Analysis (`analysis`)"),
             class_table(ResourceSettings, "Resources (`resources.<group>`, `resources.<group>/<name>`)"),
             class_table(TrainingSettings, "Training (`datasets.<name>.training`, `models.<name>.training`)")]
    for name, fam in families().items():
        base = {g.name for g in fields(TrainingSettings)}
        sp = specs(fam.training)
        base_bs = next(d for n, d, _ in sp if n == "batch_size")
        lines = [f"{name}: `batch_size` default {base_bs}"]
        lines += [f"`{n}` ({_rule_text(m)}; default {_fmt(d)}): {m['doc']}" for n, d, m in sp if n not in base]
        parts.append("* " + "; ".join(lines) + "\n")
    for name, fam in families().items():
        parts.append(class_table(fam.dataset, f"{name} dataset settings (`datasets.<name>.settings`)"))
        parts.append(class_table(fam.model, f"{name} model settings (`models.<name>.settings`)"))
    by_class: dict = {}
    for name in METHODS:
        by_class.setdefault(method_settings_class(name), []).append(name)
    for cls, names in by_class.items():
        parts.append(class_table(cls, "Methods " + ", ".join(f"`{n}`" for n in names)))
    return "\n".join(parts)


BEGIN, END = "<!-- BEGIN generated by `python -m smcbench.settings --write` -->", "<!-- END generated -->"


def _main(argv: list[str] | None = None) -> int:
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m smcbench.settings",
                                 description="print or write the generated schema and config reference")
    ap.add_argument("--write", action="store_true", help="rewrite workflow/schemas/config.schema.yaml and the "
                    "generated part of docs/configuration.md")
    ap.add_argument("--root", default=".", help="repository root")
    a = ap.parse_args(argv)
    root = Path(a.root)
    if not a.write:
        print(schema_yaml())
        return 0
    (root / "workflow/schemas/config.schema.yaml").write_text(schema_yaml())
    doc = root / "docs/configuration.md"
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n\n" + reference_markdown() + "\n" + text[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


__all__ = ["SettingsError", "opt", "parse", "to_dict", "check_keys", "did_you_mean", "check_name",
           "TrainingSettings", "Family", "FAMILY_SETTINGS", "family_settings", "families", "parse_training", "parse_dataset",
           "parse_model", "parse_method", "method_settings_class", "json_schema", "reference_markdown",
           "ConfigSettings", "DatasetEntry", "ModelEntry", "ExtraRun"]

