"""Cost of one oBERT pruning step vs one magnitude-pruning step, by number of gradients m and block B.

Model: a 6-layer, d=256 RoBERTa encoder (4 heads, FFN 1024, vocab 1000) with a 2-way
sequence-classification head; scope ``attn_ffn`` (the 36 attention/FFN weight matrices, 4.7M
weights). Gradients come from batches of random tokens (``--batch`` x ``--seq``).

* ``magnitude``: ``omp_after``'s step: exact global selection of |w| to s, mask applied.
* ``obert m=.. B=..``: the ``obert`` step at round 1 (s = 0.2): m backward passes, the Woodbury
  inverse blocks, OBS scores, exact global selection, OBS update of the survivors (B > 1), mask
  applied. ``grads only`` is the time of the m forward/backward passes alone.

Every configuration runs in a fresh subprocess (so allocator caches of one do not hide the
memory of the next); peak extra memory is the high-water RSS above the RSS just before the step,
sampled every millisecond by a thread (the magnitude step's is its mask; the m backward passes
alone show what gradients and activations cost without any Fisher). ``F^-1`` is the memory of the
inverse blocks (``4 * B`` bytes per weight), computed from the tensors built.

    python bench/bench_obert.py                 # m in {4, 16}, B in {1, 4, 16}, 1 thread, + a chunked run
    python bench/bench_obert.py --m 32 --B 4 --budget-mb 8        # chunked: 8 MiB of blocks at a time
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

RSS_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * RSS_PAGE


class Peak:
    """High-water RSS above the RSS at entry, sampled every millisecond."""

    def __enter__(self):
        self.base = self.peak = rss()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, rss())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def one(cfg: dict) -> dict:
    """One configuration, in this process."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from smcbench.sparsity.base import SparsityContext
    from smcbench.sparsity.methods import OneShotMagnitude
    from smcbench.sparsity.obert import OBert
    from smcbench.sparsity.registry import MethodInfo
    from smcbench.sparsity.scopes import resolve_scope

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    model = RobertaForSequenceClassification(RobertaConfig(
        vocab_size=1000, hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024,
        max_position_embeddings=cfg["seq"] + 4, type_vocab_size=1, num_labels=2))
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(3, 1000, (cfg["batch"], cfg["seq"]), generator=g),
                torch.randint(0, 2, (cfg["batch"],), generator=g)) for _ in range(8)]

    def loss_batches(n):
        for i in range(n):
            ids, y = batches[i % len(batches)]
            yield model(input_ids=ids, labels=y).loss

    scope = resolve_scope(model, "attn_ffn")
    ctx = SparsityContext(model=model, scope=scope, target_sparsity=0.2, seed=1, total_steps=0,
                          loss_batches=loss_batches, log=lambda m: None)
    numel = sum(dict(model.named_parameters())[n].numel() for n in scope)
    for loss in loss_batches(2):  # warm-up (first-call allocations, kernels)
        loss.backward()
    model.zero_grad(set_to_none=True)
    out = {"kind": cfg["kind"], "numel": numel}
    if cfg["kind"] == "grads":
        model.eval()
        with Peak() as peak:
            t0 = time.perf_counter()
            for loss in loss_batches(cfg["m"]):
                loss.backward()
                model.zero_grad(set_to_none=True)
            out["seconds"] = time.perf_counter() - t0
        out["extra_mb"] = peak.extra_mb
        out["m"] = cfg["m"]
        return out
    if cfg["kind"] == "magnitude":
        info = MethodInfo("smcbench.sparsity.methods:OneShotMagnitude", "after", "dense")
        method = OneShotMagnitude("omp_after", info)
    else:
        info = MethodInfo("smcbench.sparsity.obert:OBert", "after", "previous_round", iterative=True)
        method = OBert("obert", info, {"num_grads": cfg["m"], "block_size": cfg["B"], "damp": 1e-7,
                                       "memory_budget_mb": cfg["budget_mb"]})
    with Peak() as peak:
        t0 = time.perf_counter()
        method.on_train_begin(ctx)
        out["seconds"] = time.perf_counter() - t0
    out["extra_mb"] = peak.extra_mb
    out["realized"] = method.mask.sparsity()
    st = method.stats()
    out.update({k: st[k] for k in ("obert_chunks", "obert_fisher_bytes_per_chunk", "obert_backward_passes",
                                   "obert_score_seconds", "obert_update_seconds") if k in st})
    out.update({k: cfg[k] for k in ("m", "B", "budget_mb") if k in cfg})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--B", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--budget-mb", type=float, default=4096.0, help="memory budget of the inverse blocks")
    ap.add_argument("--chunked-budget-mb", type=float, default=64.0,
                    help="one more run (smallest m, largest B) under this budget, to show chunking (0: skip)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(json.loads(a.one))))
        return
    base = {"batch": a.batch, "seq": a.seq, "threads": a.threads, "budget_mb": a.budget_mb}
    cfgs = [dict(base, kind="magnitude")]
    cfgs += [dict(base, kind="grads", m=m) for m in a.m]
    cfgs += [dict(base, kind="obert", m=m, B=B) for m in a.m for B in a.B]
    if a.chunked_budget_mb:
        cfgs.append(dict(base, kind="obert", m=min(a.m), B=max(a.B), budget_mb=a.chunked_budget_mb))
    rows = []
    for cfg in cfgs:
        res = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True, text=True,
                             check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    mag = rows[0]
    grads = {r["m"]: r for r in rows if r["kind"] == "grads"}
    print(f"scope: {mag['numel']:,} weights (attn_ffn of 6 x d=256); batch {a.batch} x {a.seq} tokens; "
          f"{a.threads} threads; F^-1 budget {a.budget_mb:g} MiB")
    print(f"magnitude step: {mag['seconds'] * 1000:.1f} ms, +{mag['extra_mb']:.0f} MB; m backward passes alone: "
          + ", ".join(f"m={m}: +{r['extra_mb']:.0f} MB" for m, r in grads.items()) + "\n")
    print("| m | B | budget (MiB) | time (s) | x magnitude | scores (s) | OBS update (s) | m backward passes alone (s) "
          "| F^-1 per chunk (MB) | chunks | backward passes | peak extra (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["kind"] != "obert":
            continue
        print(f"| {r['m']} | {r['B']} | {r['budget_mb']:g} | {r['seconds']:.2f} | "
              f"{r['seconds'] / mag['seconds']:.0f} | {r['obert_score_seconds']:.2f} | "
              f"{r.get('obert_update_seconds', 0.0):.2f} | "
              f"{grads[r['m']]['seconds']:.2f} | {r['obert_fisher_bytes_per_chunk'] / 1e6:.0f} | {r['obert_chunks']} | "
              f"{r['obert_backward_passes']} | {r['extra_mb']:.0f} |")


if __name__ == "__main__":
    main()
