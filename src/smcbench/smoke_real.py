"""``make smoke-real``: every paper model at its real size, random-initialised, through the real rules.

Nothing here downloads. For each model of the paper grid this module writes a random-init
checkpoint of the real architecture in the file layout of its Hugging Face Hub snapshot (the
folder the ``download`` step records for a Hub source: ``config.json``, the weight files the Hub
repository ships on ``main`` and locally built tokenizer files), then runs Snakemake on
``workflow/configs/smoke-real.yaml`` (suite ``smoke-real``): download from the local folder →
prepare on real dataset records → pretrained → dense → one pruning method per family at one
level → results, a few optimizer steps each, one model at a time. It then writes
``results/smoke-real/smoke.csv`` (one row per model) from the training jobs' own ``metrics.json``.

Real dataset records are not part of the repository: give their folder with ``--samples`` or
``SMCBENCH_REAL_SAMPLES`` (default: ``shared/real-samples`` next to the repository). The folder is
linked (never copied) as ``results/smoke-real/samples``, which the smoke config's sources name.

Tokenizers are built here, with the real vocabulary size set in each model's config:
* RoBERTa (large and base): a byte-level BPE trained on the real records' text, with RoBERTa's
  special ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3); its vocabulary is much smaller
  than 50,265, so every id it emits is a valid row of the real embedding.
* ESM-1b: ``vocab.txt`` from ESM's 33-token alphabet (ids as fair-esm / ``EsmTokenizer``).
* TAPE: ``vocab.txt`` with the IUPAC vocabulary of the HF port (``[PAD] [MASK] [CLS] [SEP] [UNK] A…Z``).
* mBART-cc25: ``tokenizer.json`` (a Unigram model trained on the OPUS-100 records, padded with
  never-chosen pieces so that the 25 language codes sit at cc25's ids 250001–250025 and
  ``<mask>`` at 250026). ``sentencepiece.bpe.model`` is not written (building it needs the
  sentencepiece trainer); loaders read ``tokenizer.json``.

``python -m smcbench.smoke_real --help`` lists the options; ``build`` writes checkpoints only.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

SUITE = "smoke-real"
CONFIG = Path("workflow/configs/smoke-real.yaml")
OUT = Path("results") / SUITE
CSV_COLUMNS = ["model", "params", "scope_params", "step_seconds", "peak_rss_mb", "target_sparsity",
               "realized_sparsity"]
EXTRA_COLUMNS = ["dataset", "method", "dense_step_seconds", "dense_peak_rss_mb", "step_seconds_source",
                 "status"]

# ESM's alphabet (fair-esm ``Alphabet.from_architecture("ESM-1b").all_toks``; HF EsmTokenizer ids).
ESM_TOKENS = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P",
              "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>",
              "<mask>"]
# TAPE's IUPAC vocabulary in the HF port's spelling (same ids as TAPETokenizer(vocab="iupac")).
TAPE_TOKENS = ["[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]"] + list("ABCDEFGHIKLMNOPQRSTUVWXYZ")
# mBART-cc25's language codes in id order (250001 + index).
MBART_LANG_CODES = ["ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN",
                    "hi_IN", "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP",
                    "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN"]


# === architectures ==============================================================================
@dataclass(frozen=True)
class Arch:
    """One paper model: its Hub id, the files its Hub snapshot holds, and its real dimensions.

    ``weights``: the weight files of the Hub repository's ``main`` (``model.safetensors`` and/or
    ``pytorch_model.bin``). ``tiny`` holds dimension overrides for fast tests (same layout)."""

    name: str
    hub_id: str
    kind: str                       # roberta | esm | tape | mbart
    weights: tuple[str, ...]
    dims: dict = field(default_factory=dict)
    tiny: dict = field(default_factory=dict)


ROBERTA_LARGE = dict(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1,
                     layer_norm_eps=1e-5)
ROBERTA_BASE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)
ESM1B = dict(vocab_size=33, hidden_size=1280, num_hidden_layers=33, num_attention_heads=20,
             intermediate_size=5120, max_position_embeddings=1026)
TAPE = dict(vocab_size=30, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=8192, type_vocab_size=1, layer_norm_eps=1e-12)
MBART_CC25 = dict(vocab_size=250027, d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
                  decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096,
                  max_position_embeddings=1024)

TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
ARCHS: dict[str, Arch] = {
    "roberta_large": Arch("roberta_large", "FacebookAI/roberta-large", "roberta",
                          ("model.safetensors", "pytorch_model.bin"), ROBERTA_LARGE, TINY_BERT),
    "roberta_base": Arch("roberta_base", "FacebookAI/roberta-base", "roberta",
                         ("model.safetensors", "pytorch_model.bin"), ROBERTA_BASE, TINY_BERT),
    "esm1b": Arch("esm1b", "facebook/esm1b_t33_650M_UR50S", "esm", ("pytorch_model.bin",), ESM1B, TINY_BERT),
    "tape": Arch("tape", "mlnotes/tape", "tape", ("pytorch_model.bin",), TAPE, TINY_BERT),
    "mbart_cc25": Arch("mbart_cc25", "facebook/mbart-large-cc25", "mbart", ("pytorch_model.bin",), MBART_CC25,
                       dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                            max_position_embeddings=64)),
}


# === text of the real records (tokenizer training) ==============================================
def sample_texts(samples: Path, kinds: Iterable[str]) -> list[str]:
    """Lines of natural-language text from the real records (``english`` or ``opus``)."""
    out: list[str] = []
    for kind in kinds:
        if kind == "english":
            for path in sorted(samples.glob("csqa/**/*.jsonl")) + sorted(samples.glob("winogrande/**/*.jsonl")):
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    out.extend(_strings(rec))
            for path in sorted(samples.glob("race/RACE/**/*.txt")):
                try:
                    out.extend(_strings(json.loads(path.read_text(encoding="utf-8"))))
                except json.JSONDecodeError:
                    continue
            for path in sorted(samples.glob("*/data/**/*.csv")):
                with open(path, newline="", encoding="utf-8") as f:
                    out.extend(r.get("Question", "") for r in csv.DictReader(f))
        elif kind == "opus":
            for path in sorted(samples.glob("opus100/**/opus.*")):
                out.extend(path.read_text(encoding="utf-8").splitlines())
        else:
            raise ValueError(f"unknown text kind {kind!r}")
    return [t for t in out if t and t.strip()]


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


# === tokenizers =================================================================================
def write_roberta_tokenizer(out: Path, texts: list[str], vocab_size: int, max_len: int) -> int:
    """Byte-level BPE (RoBERTa's special ids) trained on ``texts``: vocab.json, merges.txt,
    tokenizer.json, tokenizer_config.json, special_tokens_map.json. Returns its vocabulary size."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(texts or ["a"], vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                            show_progress=False)
    tok.post_processor = RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    assert [tok.token_to_id(t) for t in specials[:4]] == [0, 1, 2, 3], "RoBERTa special ids"
    tok.save_model(str(out))                      # vocab.json + merges.txt
    tok.save(str(out / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    _write_json(out / "tokenizer_config.json", {"tokenizer_class": "RobertaTokenizer", "model_max_length": max_len,
                                                "add_prefix_space": False, "errors": "replace", **special})
    _write_json(out / "special_tokens_map.json", special)
    return tok.get_vocab_size()


def write_vocab_txt(out: Path, tokens: list[str], tokenizer_class: str, special: dict) -> None:
    (out / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    _write_json(out / "tokenizer_config.json", {"tokenizer_class": tokenizer_class, "model_max_length": 1024,
                                                **special})
    _write_json(out / "special_tokens_map.json", special)


def write_mbart_tokenizer(out: Path, texts: list[str], vocab_size: int, trained: int = 2000) -> int:
    """``tokenizer.json`` with cc25's special and language-code ids (see the module docstring)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    base = ["<s>", "<pad>", "</s>", "<unk>"]
    n_codes = len(MBART_LANG_CODES)
    model_size = vocab_size - n_codes - 1          # pieces below the language codes
    if model_size <= len(base) + 8:
        raise ValueError(f"vocab_size {vocab_size} too small for mBART's layout")
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=min(trained, model_size), special_tokens=base, unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(texts or ["a"], trainer=trainer)
    pieces = json.loads(tok.to_str())["model"]["vocab"]   # [[piece, score], ...], specials first
    assert [p for p, _ in pieces[:4]] == base, "mBART special ids 0..3"
    low = min(s for _, s in pieces) - 10.0
    pieces = [(p, s) for p, s in pieces] + [(f"<fill_{i}>", low) for i in range(model_size - len(pieces))]
    real = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    real.pre_tokenizer = pre_tokenizers.Metaspace()
    real.decoder = decoders.Metaspace()
    real.add_special_tokens(base + MBART_LANG_CODES + ["<mask>"])
    for i, code in enumerate(MBART_LANG_CODES):
        assert real.token_to_id(code) == model_size + i, (code, real.token_to_id(code))
    assert real.token_to_id("<mask>") == vocab_size - 1
    # cc25 / HF native: ``X </s> [src_lang]`` (the tokenizer class resets the language per call)
    real.post_processor = TemplateProcessing(single="$A </s> en_XX", pair="$A $B </s> en_XX",
                                             special_tokens=[("</s>", 2), ("en_XX", real.token_to_id("en_XX"))])
    real.save(str(out / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    _write_json(out / "tokenizer_config.json", {"tokenizer_class": "MBartTokenizer", "model_max_length": 1024,
                                                "src_lang": "en_XX", "tgt_lang": None, **special})
    _write_json(out / "special_tokens_map.json", {**special, "additional_special_tokens": MBART_LANG_CODES})
    return real.get_vocab_size()


# === checkpoints ================================================================================
def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _model(arch: Arch, dims: dict):
    import transformers as tf

    if arch.kind == "roberta":
        cfg = tf.RobertaConfig(**dims, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        cls = tf.RobertaForMaskedLM
    elif arch.kind == "esm":
        cfg = tf.EsmConfig(**dims, position_embedding_type="absolute", token_dropout=True,
                           emb_layer_norm_before=True, mask_token_id=32, pad_token_id=1, layer_norm_eps=1e-5,
                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        cls = tf.EsmForMaskedLM
    elif arch.kind == "tape":
        cfg = tf.BertConfig(**dims, pad_token_id=0, hidden_act="gelu")
        cls = tf.BertModel
    elif arch.kind == "mbart":
        cfg = tf.MBartConfig(**dims, scale_embedding=True, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                             decoder_start_token_id=2, forced_eos_token_id=2, dropout=0.1, attention_dropout=0.0,
                             activation_dropout=0.0, activation_function="gelu", tie_word_embeddings=True)
        cls = tf.MBartForConditionalGeneration
    else:
        raise ValueError(f"unknown kind {arch.kind!r}")
    cfg.architectures = [cls.__name__]
    return cls(cfg)


def build_checkpoint(name: str, out: Path, samples: Path | None, tiny: bool = False, seed: int = 0) -> dict:
    """Write a random-init checkpoint of model ``name`` in its Hub snapshot layout into ``out``.

    Returns the build record (also written beside the folder as ``<out>.build.json``, outside the
    snapshot so the download step's checksums cover only the Hub files)."""
    import torch

    arch = ARCHS[name]
    dims = {**arch.dims, **(arch.tiny if tiny else {})}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    extra: dict = {}
    if arch.kind == "roberta":
        texts = sample_texts(samples, ["english"]) if samples else []
        extra["tokenizer_vocab"] = write_roberta_tokenizer(out, texts, dims["vocab_size"],
                                                           dims["max_position_embeddings"] - 2)
    elif arch.kind == "esm":
        write_vocab_txt(out, ESM_TOKENS, "EsmTokenizer", {"cls_token": "<cls>", "eos_token": "<eos>",
                                                          "pad_token": "<pad>", "unk_token": "<unk>",
                                                          "mask_token": "<mask>"})
    elif arch.kind == "tape":
        write_vocab_txt(out, TAPE_TOKENS, "BertTokenizer", {"cls_token": "[CLS]", "sep_token": "[SEP]",
                                                            "pad_token": "[PAD]", "unk_token": "[UNK]",
                                                            "mask_token": "[MASK]"})
    elif arch.kind == "mbart":
        texts = sample_texts(samples, ["opus"]) if samples else []
        extra["tokenizer_vocab"] = write_mbart_tokenizer(out, texts, dims["vocab_size"])
    torch.manual_seed(seed)
    model = _model(arch, dims)
    model.config.save_pretrained(str(out))
    if arch.kind == "mbart":
        model.generation_config.save_pretrained(str(out))
    state = model.state_dict()
    for fname in arch.weights:
        if fname.endswith(".safetensors"):
            _save_safetensors(state, out / fname)
        else:
            torch.save({k: v.contiguous() for k, v in state.items()}, out / fname)
    record = {"model": name, "hub_id": arch.hub_id, "tiny": tiny, "seed": seed,
              "params": sum(p.numel() for p in model.parameters()),
              "files": sorted(p.name for p in out.iterdir()),
              "seconds": round(time.perf_counter() - t0, 1), **extra}
    del model, state
    gc.collect()
    _write_json(out.with_name(out.name + ".build.json"), record)
    return record


def _save_safetensors(state: dict, path: Path) -> None:
    """As the Hub files: one copy of each tied tensor (the first name in state-dict order)."""
    from safetensors.torch import save_file

    seen: dict = {}
    tensors = {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen:
            continue
        seen[key] = k
        tensors[k] = v.contiguous()
    save_file(tensors, str(path), metadata={"format": "pt"})


def checkpoint_ok(out: Path, name: str, tiny: bool = False) -> bool:
    rec_file = out.with_name(out.name + ".build.json")
    if not rec_file.is_file():
        return False
    rec = json.loads(rec_file.read_text())
    return rec.get("tiny") == tiny and all((out / f).is_file() for f in ARCHS[name].weights + ("config.json",))


# === the smoke table ============================================================================
@dataclass
class ModelPlan:
    """The smoke runs of one config model: its checkpoint and its runs' metrics.json paths."""

    model: str
    checkpoint: str
    dataset: str
    dense: str
    pruned: str
    method: str


def plan(cfg: dict, out: Path = OUT) -> list[ModelPlan]:
    from . import config as C

    runs = list(C.iter_runs(cfg))
    plans = []
    for model, entry in cfg["models"].items():
        mine = [r for r in runs if r.model == model]
        if not mine:
            continue
        dense = [r for r in mine if r.method == "dense"]
        pruned = [r for r in mine if r.method != "dense"]
        if len(dense) != 1 or len(pruned) != 1:
            raise ValueError(f"{model}: the smoke config needs exactly one dense and one pruned run per model, "
                             f"got {[r.run_dir for r in mine]}")
        ckpt = Path(entry["source"]).name
        plans.append(ModelPlan(model, ckpt, dense[0].dataset,
                               str(Path("results") / cfg["suite"] / dense[0].run_dir / "metrics.json"),
                               str(Path("results") / cfg["suite"] / pruned[0].run_dir / "metrics.json"),
                               pruned[0].method))
    return plans


def step_seconds(m: dict) -> tuple[float | None, str]:
    if m.get("step_seconds") is not None:
        return float(m["step_seconds"]), "metrics.step_seconds"
    steps = (m.get("selection") or {}).get("total_steps")
    if steps and m.get("wall_time_s") is not None:
        return float(m["wall_time_s"]) / int(steps), "wall_time_s/total_steps (upper bound)"
    return None, "missing"


def smoke_row(p: ModelPlan, params: int | None, status: str) -> dict:
    """One smoke.csv row from the model's dense and pruned runs' metrics.json (missing → blank)."""
    def load(path: str) -> dict:
        return json.loads(Path(path).read_text()) if Path(path).is_file() else {}

    d, m = load(p.dense), load(p.pruned)
    s, src = step_seconds(m) if m else (None, "missing")
    ds, _ = step_seconds(d) if d else (None, "")
    peaks = [x.get("peak_mem_mb") for x in (d, m) if x.get("peak_mem_mb") is not None]
    return {"model": p.model, "params": m.get("n_parameters") or d.get("n_parameters") or params,
            "scope_params": m.get("scope_size"), "step_seconds": _r(s, 3),
            "peak_rss_mb": _r(max(peaks), 0) if peaks else None,
            "target_sparsity": _r(m.get("target_sparsity"), 4), "realized_sparsity": _r(m.get("realized_sparsity"), 4),
            "dataset": p.dataset, "method": p.method, "dense_step_seconds": _r(ds, 3),
            "dense_peak_rss_mb": _r(d.get("peak_mem_mb"), 0), "step_seconds_source": src, "status": status}


def _r(x, nd):
    return None if x is None else round(float(x), nd)


def write_smoke_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS + EXTRA_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS + EXTRA_COLUMNS})
    os.replace(tmp, path)


def read_smoke_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def merge_rows(old: list[dict], new: list[dict], order: list[str]) -> list[dict]:
    """``old`` rows with those of the models in ``new`` replaced, in the config's model order (a
    run of a subset of the models keeps the other models' rows)."""
    by_model = {r["model"]: r for r in old}
    by_model.update({r["model"]: r for r in new})
    return [by_model[m] for m in order if m in by_model] + [r for m, r in by_model.items() if m not in order]


def markdown_rows(rows: list[dict]) -> list[str]:
    """smoke.csv rows as the table lines of bench/README.md (``python -m smcbench.smoke_real table``)."""
    def f(x, fmt="{}"):
        return "—" if x in (None, "") else fmt.format(float(x)) if fmt != "{}" else str(x)

    out = []
    for r in rows:
        ok = r.get("status") == "ok"
        out.append(f"| {r['model']} | {f(r.get('params'), '{:,.0f}')} | {f(r.get('scope_params'), '{:,.0f}')} | "
                   f"{f(r.get('step_seconds'), '{:.1f}')} | {f(r.get('peak_rss_mb'), '{:,.0f}')} | "
                   f"{f(r.get('target_sparsity'))} | {f(r.get('realized_sparsity'))} | "
                   f"{r.get('dataset')} / {r.get('method')}{'' if ok else ' (' + str(r.get('status')) + ')'} | "
                   f"{f(r.get('dense_step_seconds'), '{:.1f}')} / {f(r.get('dense_peak_rss_mb'), '{:,.0f}')} |")
    return out


# === driver =====================================================================================
def default_samples(repo: Path) -> Path:
    env = os.environ.get("SMCBENCH_REAL_SAMPLES")
    return Path(env) if env else repo.resolve().parent / "shared" / "real-samples"


def esm_if1_available() -> str | None:
    """None when ESM-IF1's optional dependencies import, else the reason."""
    try:
        import esm.inverse_folding  # noqa: F401
    except Exception as e:  # ImportError, or biotite/torch_scatter API breaks at import
        return f"{type(e).__name__}: {e}"
    return None


def _snakemake(configfile: Path, targets: list[str], cores: int, log: Callable[[str], None],
               extra: list[str] | None = None) -> int:
    from .demo import snakemake_cmd

    env = dict(os.environ)
    env.pop("SMCBENCH_SERVER", None)  # every job its own process: peak RSS is the training job's
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", SMCBENCH_NO_PROGRESS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    cmd = snakemake_cmd() + ["--configfile", str(configfile), "--cores", str(cores), "--rerun-incomplete",
                             "--show-failed-logs", "--quiet=rules", *(extra or []), *targets]
    log("+ " + " ".join(cmd))
    return subprocess.call(cmd, env=env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m smcbench.smoke_real", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", nargs="?", default="run", choices=["run", "build", "table"])
    ap.add_argument("--samples", type=Path, default=None, help="real dataset records (default: $SMCBENCH_REAL_SAMPLES "
                    "or shared/real-samples next to the repository)")
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--models", nargs="*", default=None, help="config model names (default: all)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="keep finished runs even if code or params changed since "
                    "(Snakemake --rerun-triggers mtime): collect the table without retraining")
    a = ap.parse_args(argv)

    import yaml

    def log(msg: str) -> None:
        print(f"smoke-real: {msg}", file=sys.stderr, flush=True)

    if a.command == "table":
        print("\n".join(markdown_rows(read_smoke_csv(OUT / "smoke.csv"))))
        return 0
    repo = Path.cwd()
    samples = (a.samples or default_samples(repo)).resolve()
    if not samples.is_dir():
        log(f"real samples not found at {samples} (set SMCBENCH_REAL_SAMPLES or --samples); skipped")
        return 0
    cfg = yaml.safe_load(a.config.read_text())
    out = Path("results") / cfg["suite"]
    out.mkdir(parents=True, exist_ok=True)
    link = out / "samples"
    if link.is_symlink() or link.exists():
        if link.resolve() != samples:
            link.unlink()
    if not link.exists():
        link.symlink_to(samples, target_is_directory=True)
    plans = plan(cfg, out)
    if a.models:
        unknown = set(a.models) - {p.model for p in plans}
        if unknown:
            raise SystemExit(f"unknown smoke models {sorted(unknown)} (known: {[p.model for p in plans]})")
        by_name = {p.model: p for p in plans}
        plans = [by_name[m] for m in dict.fromkeys(a.models)]  # in the order given
    reason = esm_if1_available()
    log("esm_if1: skipped (" + (reason or "no real HotProtein structures among the samples") +
        "); it needs fair-esm + torch_geometric + biotite and AlphaFold structures")
    rows, failed = [], []
    t_all = time.perf_counter()
    for p in plans:
        ckpt = out / "checkpoints" / p.checkpoint
        if not checkpoint_ok(ckpt, p.checkpoint):
            log(f"building {p.checkpoint} (real size, random init) in {ckpt}")
            rec = build_checkpoint(p.checkpoint, ckpt, samples)
            log(f"  {rec['params']:,} parameters, files {rec['files']} in {rec['seconds']}s")
        params = json.loads(ckpt.with_name(ckpt.name + ".build.json").read_text())["params"]
        if a.command == "build":
            continue
        t0 = time.perf_counter()
        code = _snakemake(a.config, [p.dense, p.pruned], a.cores, log,
                          ["--rerun-triggers=mtime"] if a.reuse else None)
        status = "ok" if code == 0 else f"failed (snakemake exit {code}; see results/{cfg['suite']}/logs and run logs)"
        log(f"{p.model}: {status} in {time.perf_counter() - t0:.0f}s")
        if code != 0:
            failed.append(p.model)
        rows.append(smoke_row(p, params, status))
        write_smoke_csv(out / "smoke.csv", merge_rows(read_smoke_csv(out / "smoke.csv"), rows,
                                                      [q.model for q in plan(cfg, out)]))
    if a.command == "build":
        return 0
    if not failed and all(Path(q.pruned).is_file() and Path(q.dense).is_file() for q in plan(cfg, out)):
        # the runs exist: only a missing output may trigger a job (not params/code edits made since)
        code = _snakemake(a.config, [f"results/{cfg['suite']}/results.csv"], a.cores, log,
                          ["--rerun-triggers=mtime"])
        if code != 0:
            failed.append("results")
    log(f"wrote {out / 'smoke.csv'} ({len(rows)} models, {time.perf_counter() - t_all:.0f}s)"
        + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
