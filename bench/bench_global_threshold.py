"""Exact global magnitude threshold over RoBERTa-large-shaped tensors: time and peak extra memory.

Methods (each run in its own fresh subprocess, so peaks do not mix):

* ``radix``      smcbench.sparsity.select.global_threshold (streaming two-pass radix select)
* ``radix_mask`` smcbench.sparsity.select.select_global (threshold + tie-break + the bool masks;
                 the masks themselves are 1 byte per weight = 0.25x of fp32 weights)
* ``kthvalue``   torch.cat of |w| + torch.kthvalue (the usual exact way; an N-sized copy)
* ``prune``      torch.nn.utils.prune.global_unstructured(L1Unstructured, amount=K)

"Extra" = peak RSS during the method minus RSS once the weights exist (sampled every 1 ms with
psutil, cross-checked with ru_maxrss), as a multiple of the weights' bytes. Times: the median
of ``--repeats`` runs in the same process (the first run also pays first-touch page faults).

    python bench/bench_global_threshold.py                     # 355M weights (RoBERTa-large)
    python bench/bench_global_threshold.py --scale 0.1         # 10% of every tensor's rows
    python bench/bench_global_threshold.py --prune-scale 0.25  # prune baseline at a smaller scale
    python bench/bench_global_threshold.py --interleave --scale 0.177 --threads 1   # 63M, one process

``--interleave`` runs ``torch.cat`` + ``torch.kthvalue``, ``select_global`` and ``select_global``
restricted to its radix passes alternately in one process (same memory state, same load), checks
they agree bit for bit, and reports each one's median time and the ratios: on a busy machine
this is the fairer speed comparison (separate processes run minutes apart under different load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import torch


def roberta_large_shapes(scale: float = 1.0) -> list[tuple[str, tuple[int, int]]]:
    """The 2-D weights of RoBERTa-large (355,036,160 entries), rows scaled by ``scale``."""
    d, ffn, layers = 1024, 4096, 24
    shapes = [("embeddings.word_embeddings", (50265, d)), ("embeddings.position_embeddings", (514, d))]
    for i in range(layers):
        for m in ("query", "key", "value", "attention_output"):
            shapes.append((f"layer.{i}.{m}", (d, d)))
        shapes.append((f"layer.{i}.intermediate", (ffn, d)))
        shapes.append((f"layer.{i}.output", (d, ffn)))
    shapes.append(("pooler", (d, d)))
    return [(n, (max(1, int(round(r * scale))), c)) for n, (r, c) in shapes]


def build(scale: float, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded normal weights, scaled per tensor (0.02 x (1 + (i mod 7) / 7)), filled in place."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (name, shape) in enumerate(roberta_large_shapes(scale)):
        t = torch.empty(shape, dtype=torch.float32)
        t.normal_(0.0, 0.02 * (1 + (i % 7) / 7), generator=g)
        out[name] = t if dtype == torch.float32 else t.to(dtype)
    return out


class PeakRSS:
    """Sample this process's RSS every ``interval`` seconds in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.001):
        import psutil

        self._proc, self._interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self._proc.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def run_method(method: str, weights: dict[str, torch.Tensor], k: int) -> dict:
    from smcbench.sparsity.select import global_threshold, select_global

    if method == "radix":
        r = global_threshold(weights, k, absolute=True)
        return {"threshold": r["threshold"], "pruned": k, "ties": r["ties_at_threshold"]}
    if method == "radix_mask":
        sel = select_global(weights, k, absolute=True)
        pruned = sum(int(m.numel() - m.count_nonzero()) for m in sel.mask.values())
        return {"threshold": sel.threshold, "pruned": pruned, "ties": sel.ties_at_threshold}
    if method == "kthvalue":
        flat = torch.cat([w.reshape(-1).abs() for w in weights.values()])
        t = torch.kthvalue(flat, k).values.item()
        del flat
        return {"threshold": float(t), "pruned": None, "ties": None}
    if method == "prune":
        import torch.nn.utils.prune as prune

        mods = []
        for w in weights.values():
            m = torch.nn.Module()
            m.weight = torch.nn.Parameter(w, requires_grad=False)
            mods.append(m)
        prune.global_unstructured([(m, "weight") for m in mods], pruning_method=prune.L1Unstructured,
                                  amount=k)
        pruned = sum(int((m.weight_mask == 0).sum()) for m in mods)
        for m in mods:  # restore plain parameters so a repeat starts from the same state
            prune.remove(m, "weight")
        return {"threshold": None, "pruned": pruned, "ties": None}
    raise ValueError(f"unknown method {method!r} (radix, radix_mask, kthvalue, prune)")


def worker(args) -> None:
    torch.set_num_threads(args.threads)
    if args.chunk:
        from smcbench.sparsity import select

        select.CHUNK = args.chunk
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    weights = build(args.scale, dtype)
    n = sum(w.numel() for w in weights.values())
    k = int(args.sparsity * n + 0.5)
    weight_bytes = sum(w.numel() * w.element_size() for w in weights.values())
    import psutil

    base = psutil.Process().memory_info().rss
    times, peaks, res = [], [], None
    for _ in range(args.repeats):
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            res = run_method(args.method, weights, k)
            times.append(time.perf_counter() - t0)
        peaks.append(peak.peak)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    extra = max(max(peaks), maxrss) - base
    print(json.dumps({"method": args.method, "dtype": args.dtype, "scale": args.scale, "numel": n, "k": k,
                      "weight_bytes": weight_bytes, "times": times, "time_median": statistics.median(times),
                      "extra_bytes": extra, "extra_x": extra / weight_bytes, **res}))


def interleave(args) -> None:
    from smcbench.sparsity import select

    torch.set_num_threads(args.threads)
    weights = build(args.scale, torch.float32)
    n = sum(w.numel() for w in weights.values())
    k = int(args.sparsity * n + 0.5)
    sample_min = select.SAMPLE_MIN

    def kth():
        flat = torch.cat([w.reshape(-1).abs() for w in weights.values()])
        return float(torch.kthvalue(flat, k).values)

    def radix():
        select.SAMPLE_MIN = 1 << 62
        try:
            return select.select_global(weights, k, absolute=True)
        finally:
            select.SAMPLE_MIN = sample_min

    times = {"kthvalue": [], "select_global": [], "radix passes": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref = kth()
        times["kthvalue"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        a = select.select_global(weights, k, absolute=True)
        times["select_global"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = radix()
        times["radix passes"].append(time.perf_counter() - t0)
        assert a.threshold == b.threshold == ref and all(torch.equal(a.mask[x], b.mask[x]) for x in a.mask)
        assert sum(int(m.numel() - m.count_nonzero()) for m in a.mask.values()) == k
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"{n / 1e6:.1f}M fp32 weights, sparsity {args.sparsity}, {args.threads} thread(s), "
          f"median of {args.repeats} interleaved runs (exact: thresholds and masks identical, count == K)")
    print("| method | time (median) | all runs | vs kthvalue |")
    print("|---|---|---|---|")
    for m, v in med.items():
        runs = ", ".join(f"{t:.2f}" for t in times[m])
        print(f"| {m} | {v:.2f} s | {runs} | {med['kthvalue'] / v:.1f}x |")


def mask_files(args) -> None:
    """Size and save/load time of the selected mask on disk: bit-packed vs one bool per weight."""
    import tempfile

    from safetensors.torch import save_file

    from smcbench.sparsity.mask import Mask
    from smcbench.sparsity.select import select_global

    torch.set_num_threads(args.threads)
    weights = build(args.scale, torch.float32)
    n = sum(w.numel() for w in weights.values())
    mask = Mask(select_global(weights, int(args.sparsity * n + 0.5), absolute=True).mask)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        mask.save(f"{d}/packed.safetensors")
        t_save = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = Mask.load(f"{d}/packed.safetensors")
        t_load = time.perf_counter() - t0
        assert all(torch.equal(back[k], mask[k]) for k in mask)
        save_file(dict(mask), f"{d}/bool.safetensors")
        packed, plain = os.path.getsize(f"{d}/packed.safetensors"), os.path.getsize(f"{d}/bool.safetensors")
    print(f"{n / 1e6:.1f}M weights: bit-packed {packed / 2**20:.1f} MiB (save {t_save:.2f} s, load {t_load:.2f} s, "
          f"round trip exact) vs bool {plain / 2**20:.1f} MiB ({plain / packed:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each tensor's rows (1 = 355M)")
    ap.add_argument("--prune-scale", type=float, default=None,
                    help="scale for the torch.nn.utils.prune baseline (default: --scale; it needs ~12x "
                         "the weights' bytes, so use 0.25 or less for 355M on a 24 GB machine)")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="radix,radix_mask,kthvalue,prune")
    ap.add_argument("--bf16", action="store_true", default=True, help="also run the bf16 ties case")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--chunk", type=int, default=0, help="override select.CHUNK (elements per streamed chunk)")
    ap.add_argument("--interleave", action="store_true",
                    help="kthvalue vs select_global vs its radix passes, alternately in one process")
    ap.add_argument("--mask-files", action="store_true",
                    help="size and save/load time of the selected mask, bit-packed vs bool")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.interleave:
        return interleave(args)
    if args.mask_files:
        return mask_files(args)

    def spawn(method, dtype, scale):
        cmd = [sys.executable, __file__, "--worker", "--method", method, "--dtype", dtype, "--scale", str(scale),
               "--sparsity", str(args.sparsity), "--repeats", str(args.repeats), "--threads", str(args.threads),
               "--chunk", str(args.chunk)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
        if out.returncode != 0:
            return {"method": method, "dtype": dtype, "scale": scale, "error": out.stderr.strip().splitlines()[-1]}
        return json.loads(out.stdout.strip().splitlines()[-1])

    rows = []
    for m in args.methods.split(","):
        scale = args.prune_scale if (m == "prune" and args.prune_scale) else args.scale
        rows.append(spawn(m, "fp32", scale))
        print(json.dumps(rows[-1]), file=sys.stderr)
    if args.bf16:
        for m in ("radix_mask", "kthvalue"):
            rows.append(spawn(m, "bf16", args.scale))
            print(json.dumps(rows[-1]), file=sys.stderr)

    ref = {r["dtype"]: r.get("threshold") for r in rows if r.get("method") == "kthvalue" and r.get("scale") == args.scale}
    kth = {r["dtype"]: r["time_median"] for r in rows if r.get("method") == "kthvalue" and "time_median" in r}
    print(f"\nglobal magnitude threshold at sparsity {args.sparsity}, {args.threads} threads")
    print("| method | dtype | weights | time (median) | first run | extra RAM | extra / weight bytes | "
          "vs kthvalue | threshold | exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | {r['dtype']} | scale {r['scale']} | failed: {r['error']} |||||||")
            continue
        same_scale = r["scale"] == args.scale
        exact = "-"
        if r.get("pruned") is not None:
            exact = "count exact" if r["pruned"] == r["k"] else f"count off by {r['pruned'] - r['k']}"
        if r.get("threshold") is not None and same_scale and ref.get(r["dtype"]) is not None:
            eq = r["threshold"] == ref[r["dtype"]]
            exact = ("threshold == kthvalue" if eq else "threshold != kthvalue") + ("; " + exact if exact != "-" else "")
        speed = f"{kth[r['dtype']] / r['time_median']:.1f}x" if same_scale and r["dtype"] in kth else "-"
        ties = f" ({r['ties']:,} ties)" if r.get("ties") else ""
        print(f"| {r['method']} | {r['dtype']} | {r['numel'] / 1e6:.1f}M | {r['time_median']:.2f} s | "
              f"{r['times'][0]:.2f} s | {r['extra_bytes'] / 2**30:.2f} GiB | {r['extra_x']:.3f}x | {speed} | "
              f"{r['threshold'] if r['threshold'] is not None else '-'}{ties} | {exact} |")


if __name__ == "__main__":
    main()
