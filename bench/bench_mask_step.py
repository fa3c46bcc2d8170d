"""Cost of keeping weights sparse: a masked training step vs a dense step, same model, one run.

Three copies of one transformer encoder (same init, same batches), stepped in an interleaved,
rotating order so machine noise hits all alike; the median step time of each is reported:

* ``dense``    plain AdamW step
* ``smcbench`` the engine's hooks: ``on_before_optimizer_step`` (mask gradients) and
               ``on_after_optimizer_step`` (re-zero weights), one ``_foreach_mul_`` each
* ``prune``    ``torch.nn.utils.prune.custom_from_mask`` on the same weights (forward pre-hooks)

Scope: the attention and FFN weights of the encoder layers (``attn_ffn``) at 90% random sparsity;
embedding and head dense. A step = zero_grad, forward, backward, (mask grads), AdamW step,
(mask weights). The isolated cost of the two mask operations is timed too.

    python bench/bench_mask_step.py                          # 6 layers, d=256, CPU
    python bench/bench_mask_step.py --shapes roberta-large --device cuda --batch 8 --seq 256
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = {  # vocab, d, layers, heads, ffn
    "small": (10000, 256, 6, 4, 1024),
    "roberta-large": (50265, 1024, 24, 16, 4096),
}


class Layer(torch.nn.Module):
    """HF/fairseq layout: explicit q, k, v, o and fc1, fc2 Linears (names the scopes recognize)."""

    def __init__(self, d: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.self_attn = torch.nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, n, torch.nn.Linear(d, d))
        self.self_attn_layer_norm = torch.nn.LayerNorm(d)
        self.fc1, self.fc2 = torch.nn.Linear(d, ffn), torch.nn.Linear(ffn, d)
        self.final_layer_norm = torch.nn.LayerNorm(d)

    def forward(self, x):
        b, t, d = x.shape
        a = self.self_attn
        q, k, v = (m(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for m in (a.q_proj, a.k_proj, a.v_proj))
        h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = self.self_attn_layer_norm(x + a.out_proj(h))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class Encoder(torch.nn.Module):
    def __init__(self, vocab, d, layers, heads, ffn):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(vocab, d)
        self.layers = torch.nn.ModuleList(Layer(d, heads, ffn) for _ in range(layers))
        self.classifier = torch.nn.Linear(d, 2)

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(x.mean(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", choices=sorted(SHAPES), default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60, help="measured steps per variant")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-prune", action="store_true", help="skip the torch.nn.utils.prune variant")
    ap.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                    help="AdamW(fused=True) (default). With --no-fused, torch's foreach AdamW is used; on "
                         "CPU its sqrt over the exactly-zero moments of pruned weights is several times "
                         "slower than over non-zero values, which shows up as masked-step overhead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    from smcbench.sparsity import build_method
    from smcbench.sparsity.base import SparsityContext
    from smcbench.sparsity.scopes import resolve_scope

    torch.manual_seed(0)
    base = Encoder(*SHAPES[args.shapes]).to(dev)
    scope = resolve_scope(base, "attn_ffn")
    models = {"dense": base, "smcbench": copy.deepcopy(base)}
    if not args.no_prune:
        models["prune"] = copy.deepcopy(base)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01, fused=args.fused)
            for k, m in models.items()}

    ctx = SparsityContext(model=models["smcbench"], scope=scope, target_sparsity=args.sparsity, seed=0,
                          total_steps=args.steps + args.warmup, optimizer=opts["smcbench"], log=lambda m: None)
    method = build_method("random_after")
    method.on_train_begin(ctx)
    mask = method.mask
    if "prune" in models:
        import torch.nn.utils.prune as prune

        modules = dict(models["prune"].named_modules())
        for n in scope:
            prune.custom_from_mask(modules[n.rsplit(".", 1)[0]], "weight", mask[n])

    g = torch.Generator().manual_seed(1)
    vocab = SHAPES[args.shapes][0]
    batches = [(torch.randint(0, vocab, (args.batch, args.seq), generator=g).to(dev),
                torch.randint(0, 2, (args.batch,), generator=g).to(dev)) for _ in range(8)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step(kind: str, i: int) -> float:
        model, opt = models[kind], opts[kind]
        ids, y = batches[i % len(batches)]
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(ids), y).backward()
        if kind == "smcbench":
            method.on_before_optimizer_step(ctx, i)
        opt.step()
        if kind == "smcbench":
            method.on_after_optimizer_step(ctx, i)
        sync()
        return time.perf_counter() - t0

    kinds = list(models)
    times = {k: [] for k in kinds}
    for i in range(args.warmup + args.steps):
        order = kinds[i % len(kinds):] + kinds[: i % len(kinds)]  # rotate who goes first
        for k in order:
            dt = step(k, i)
            if i >= args.warmup:
                times[k].append(dt)

    # the two mask operations alone (gradients present, as in a real step)
    model = models["smcbench"]
    F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    op_times = []
    for _ in range(max(20, args.steps)):
        sync()
        t0 = time.perf_counter()
        mask.apply_to_grads_(model)
        mask.apply_(model)
        sync()
        op_times.append(time.perf_counter() - t0)

    params = dict(model.named_parameters())
    held = all(not params[n][~mask[n]].any() for n in scope)
    med = {k: statistics.median(v) for k, v in times.items()}
    n_masked = sum(params[n].numel() for n in scope)
    print(f"{args.shapes} encoder on {dev.type} ({args.threads} threads), batch {args.batch} x {args.seq}, "
          f"{len(scope)} masked matrices / {n_masked / 1e6:.2f}M weights at {args.sparsity:.0%}, "
          f"{args.steps} steps each (median), interleaved, AdamW fused={args.fused}")
    print("| variant | median step | vs dense | p10-p90 |")
    print("|---|---|---|---|")
    for k in kinds:
        q = statistics.quantiles(times[k], n=10)
        print(f"| {k} | {med[k] * 1e3:.2f} ms | {med[k] / med['dense']:.3f}x | "
              f"{q[0] * 1e3:.1f}-{q[-1] * 1e3:.1f} ms |")
    print(f"mask ops alone (grads + weights): {statistics.median(op_times) * 1e3:.3f} ms median; "
          f"sparsity held after training: {held}; realized {mask.weight_sparsity(model):.4f}")


if __name__ == "__main__":
    main()
