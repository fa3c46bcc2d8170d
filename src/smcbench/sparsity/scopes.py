"""Scopes: which parameters a method may prune, resolved once to a list of parameter names.

Rules use parameter names, module types and shapes only, so they work on any model (HF RoBERTa,
BERT, ESM, mBART, fair-esm, our GTS/Graph2Tree) without knowing the task.

Candidates (every scope starts from these): parameters with >= 2 dims, listed once per tensor
(``named_parameters`` already lists a tied parameter once; tensors sharing the same storage
under different Parameter objects are also de-duplicated), never biases or norm weights. A
tensor's *aliases* are all the names it is reachable under (mBART's ``model.shared.weight`` is
also ``model.encoder.embed_tokens.weight`` and ``lm_head.weight``); the first name is the one
used everywhere (masks, reports).

* ``paper``: every candidate, incl. embeddings, heads and LSTM ``weight_ih_l*``/``weight_hh_l*``.
* ``no_embeddings``: ``paper`` minus embeddings (an alias contains ``embed``, or the owning module
  is an ``nn.Embedding``).
* ``no_heads``: ``paper`` minus heads (an alias matches :data:`DEFAULT_HEAD_PATTERNS`). A tied
  embedding/output matrix is a head too, so mBART's shared matrix stays dense under ``no_heads``.
* ``no_embeddings_heads``: ``paper`` minus embeddings and heads (oBERT's default: both stay dense).
* ``attn_ffn``: only attention Q/K/V/O and FFN Linear weights inside encoder/decoder layers
  (the name has an integer layer index): ``attention.self.{query,key,value}``,
  ``attention.output.dense``, ``intermediate.dense``, ``output.dense`` (HF BERT/RoBERTa/ESM);
  ``{self_attn,encoder_attn}.{q,k,v,out}_proj``, ``fc1``, ``fc2`` (mBART, fair-esm); and common
  variants (``w_1``/``w_2``, ``mlp``/``ffn``/``feed_forward`` Linears, ``in_proj_weight`` = Q+K+V).
* ``modules:A+B``: the ``attn_ffn`` weights of the listed kinds (Q, K, V, O, FFN). A packed
  ``in_proj_weight`` belongs to a module scope only when Q, K and V are all listed.

Names are returned in model order (``named_parameters`` order: input to output for HF models).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import torch

from .registry import MODULE_KINDS, SCOPES, parse_module_scope, validate_scope_name

__all__ = ["SCOPES", "DEFAULT_HEAD_PATTERNS", "resolve_scope", "describe_scope",
           "classify_parameter", "prunable_candidates"]

#: Regexes (``re.search`` on every alias of a parameter) that mark a classification/LM head.
#: ``out_proj`` counts only outside attention (RoBERTa's ``classifier.out_proj`` is a head,
#: mBART's ``self_attn.out_proj`` is not); ``score`` only as a top-level module (HF
#: ``...ForSequenceClassification.score``), since task models use ``score`` for inner layers.
DEFAULT_HEAD_PATTERNS: tuple[str, ...] = (
    r"(^|\.)classifier(\.|$)",
    r"(^|\.)pooler(\.|$)",
    r"(^|\.)lm_head(\.|$)",
    r"^score\.",
    r"(^|\.)qa_outputs(\.|$)",
    r"(^|\.)[A-Za-z_]*heads?(\.|$)",  # head, heads, contact_head, classification_heads
    r"^(?!.*(attn|attention)).*(^|\.)out_proj\.",
)

_ATTN_CONTEXT = re.compile(r"attn|attention", re.IGNORECASE)
_Q = {"query", "q_proj", "q", "q_lin", "wq", "to_q"}
_K = {"key", "k_proj", "k", "k_lin", "wk", "to_k"}
_V = {"value", "v_proj", "v", "v_lin", "wv", "to_v"}
_O = {"out_proj", "o_proj", "o", "out_lin", "wo", "to_out"}
_FFN_LEAF = {"fc1", "fc2", "w_1", "w_2", "w1", "w2", "w3", "lin1", "lin2", "linear1", "linear2", "up_proj", "down_proj",
             "gate_proj", "c_fc", "wi", "dense_h_to_4h", "dense_4h_to_h"}
_FFN_CONTAINER = {"mlp", "ffn", "feed_forward", "feedforward", "feed_foward", "ff"}
_NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._NormBase)
_NORM_NAME = re.compile(r"norm", re.IGNORECASE)


def _owner(modules: dict[str, torch.nn.Module], name: str) -> torch.nn.Module | None:
    return modules.get(name.rsplit(".", 1)[0] if "." in name else "")


def _aliases(model: torch.nn.Module) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        out.setdefault(id(p), []).append(name)
    return out


def classify_parameter(name: str) -> str | None:
    """The attention/FFN kind of a weight name: ``"Q"``, ``"K"``, ``"V"``, ``"O"``, ``"FFN"``,
    ``"QKV"`` (a packed ``in_proj_weight``), or ``None`` (not an attention/FFN layer weight).

    Only names inside an indexed layer (a dotted component that is an integer) qualify.
    """
    parts = name.split(".")
    leaf = parts[-1]
    if not any(p.isdigit() for p in parts[:-1]):
        return None
    path = parts[:-1]
    in_attn = any(_ATTN_CONTEXT.search(p) for p in path) or bool(_ATTN_CONTEXT.search(leaf))
    if leaf == "in_proj_weight" and in_attn:
        return "QKV"
    if leaf != "weight" or not path:
        return None
    last = path[-1]
    if in_attn:
        if last in _Q:
            return "Q"
        if last in _K:
            return "K"
        if last in _V:
            return "V"
        if last in _O or (last == "dense" and len(path) >= 2 and path[-2] == "output"):
            return "O"
        return None
    if last in _FFN_LEAF:
        return "FFN"
    if last == "dense" and len(path) >= 2 and path[-2] in {"intermediate", "output"}:
        return "FFN"
    if any(p in _FFN_CONTAINER for p in path):
        return "FFN"
    return None


def prunable_candidates(model: torch.nn.Module) -> list[tuple[str, list[str], torch.nn.Parameter]]:
    """``(name, aliases, parameter)`` of every >=2-D weight that is not a bias or a norm, once per
    tensor, in model order."""
    modules = dict(model.named_modules())
    aliases = _aliases(model)
    seen_storage: set[tuple] = set()
    out = []
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if "bias" in leaf.lower():
            continue
        owner = _owner(modules, name)
        owner_name = name.rsplit(".", 1)[0] if "." in name else ""
        if isinstance(owner, _NORM_TYPES) or _NORM_NAME.search(owner_name.rsplit(".", 1)[-1]):
            continue
        if p.device.type != "meta":
            key = (p.data_ptr(), tuple(p.shape), tuple(p.stride()))
            if key in seen_storage:
                continue
            seen_storage.add(key)
        out.append((name, aliases.get(id(p), [name]), p))
    return out


def _is_embedding(model_modules: dict, aliases: Sequence[str]) -> bool:
    for a in aliases:
        if "embed" in a.lower() or isinstance(_owner(model_modules, a), torch.nn.Embedding):
            return True
    return False


def _is_head(aliases: Sequence[str], patterns: Sequence[re.Pattern]) -> bool:
    return any(p.search(a) for a in aliases for p in patterns)


def resolve_scope(model: torch.nn.Module, scope: str,
                  head_patterns: Iterable[str] | None = None) -> list[str]:
    """The names of the parameters ``scope`` prunes on ``model``, in model order.

    Args:
        model: any ``nn.Module``.
        scope: one of :data:`SCOPES`, or ``modules:`` + a ``+``-combination of Q, K, V, O, FFN.
        head_patterns: regexes marking head parameters (default :data:`DEFAULT_HEAD_PATTERNS`);
            a task with unusual head names passes its own.

    Raises:
        ValueError: unknown scope name (the message lists the valid ones), or a scope that
            matches no parameter of this model.
    """
    validate_scope_name(scope)
    modules = dict(model.named_modules())
    cands = prunable_candidates(model)
    if scope == "paper":
        names = [n for n, _, _ in cands]
    elif scope == "no_embeddings":
        names = [n for n, al, _ in cands if not _is_embedding(modules, al)]
    elif scope in ("no_heads", "no_embeddings_heads"):
        pats = [re.compile(p) for p in (DEFAULT_HEAD_PATTERNS if head_patterns is None else head_patterns)]
        names = [n for n, al, _ in cands if not _is_head(al, pats)
                 and not (scope == "no_embeddings_heads" and _is_embedding(modules, al))]
    else:
        kinds = set(MODULE_KINDS) if scope == "attn_ffn" else set(parse_module_scope(scope))
        names = []
        for n, _, _ in cands:
            kind = classify_parameter(n)
            if kind is None:
                continue
            if kind == "QKV":
                if {"Q", "K", "V"} <= kinds:
                    names.append(n)
            elif kind in kinds:
                names.append(n)
    if not names:
        raise ValueError(f"scope {scope!r} matches no parameter of {type(model).__name__} "
                         f"(valid scopes: {', '.join(SCOPES)}; first parameters: "
                         f"{[n for n, _ in list(model.named_parameters())[:4]]})")
    return names


def describe_scope(model: torch.nn.Module, names: Sequence[str]) -> list[dict]:
    """One row per scope tensor, for recording with results: ``name``, ``shape`` (``"AxB"``),
    ``numel``, ``kind`` (Q/K/V/O/FFN/QKV or ``""``)."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"scope names not in the model: {missing[:5]}")
    return [{"name": n, "shape": "x".join(map(str, params[n].shape)), "numel": params[n].numel(),
             "kind": classify_parameter(n) or ""} for n in names]
