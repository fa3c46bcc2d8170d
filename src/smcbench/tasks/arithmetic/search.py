"""Beam search for the goal-driven tree decoder (the paper evaluates with beam 5).

One problem at a time, its live beams batched. A beam is a partial pre-order expansion: pending
goals, open operators (operator embedding, left sub-tree) and the emitted tokens. Scores are sums
of log-probabilities; since they only decrease, the search stops as soon as the best finished
expression scores at least as high as every live beam. The same length guard as greedy decoding
keeps every beam closable within ``max_len`` tokens, so the result is always a valid expression.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .model import NEG, MathSolver


@dataclass
class _Beam:
    score: float
    goals: list = field(default_factory=list)
    frames: list = field(default_factory=list)  # [op embedding, left sub-tree or None]
    tokens: list = field(default_factory=list)


@torch.no_grad()
def beam_search(model: MathSolver, batch: dict, beam_size: int, max_len: int) -> list[list[int]]:
    """Best output-id sequence per problem of ``batch`` under beam search of width ``beam_size``."""
    states, pad, root, num_states = model.encode(batch)
    n_ops = model.vocab.num_ops
    const = model.predict.constants(1, root)[0]
    results = []
    for b in range(root.size(0)):
        cands = torch.cat([const, num_states[b]], dim=0)
        valid = torch.cat([torch.ones(const.size(0), dtype=torch.bool, device=root.device), batch["num_valid"][b]])
        st, pd = states[b:b + 1], pad[b:b + 1]
        att_keys = model.predict.tree_attn.keys(st)
        cand_keys = model.predict.num_head.keys(cands.unsqueeze(0))
        beams = [_Beam(0.0, [root[b]])]
        finished: list[_Beam] = []
        while beams:
            A = len(beams)
            goal = torch.stack([bm.goals[-1] for bm in beams])
            right = [i for i, bm in enumerate(beams) if bm.frames and bm.frames[-1][1] is not None]
            left = torch.stack([beams[i].frames[-1][1] for i in right]) if right else None
            rr = torch.tensor(right, dtype=torch.long, device=root.device) if right else None
            q = model.predict.node_state(goal, left, rr)
            ctx = model.predict.tree_attn(q, att_keys.expand(A, -1, -1), st.expand(A, -1, -1), pd.expand(A, -1))
            leaf = torch.cat([q, ctx], dim=-1)
            scores = torch.cat([model.predict.op_head(leaf),
                                model.predict.num_head(leaf, cand_keys.expand(A, -1, -1), valid.expand(A, -1))], -1)
            for i, bm in enumerate(beams):  # length guard, as in greedy decoding
                if len(bm.tokens) + 3 + (len(bm.goals) - 1) > max_len:
                    scores[i, :n_ops] = NEG
            logp = torch.log_softmax(scores, dim=-1)
            k = min(beam_size, logp.size(1))
            top_v, top_i = logp.topk(k, dim=-1)
            options = sorted(((beams[i].score + top_v[i, j].item(), i, top_i[i, j].item())
                              for i in range(A) for j in range(k)), key=lambda x: -x[0])[:beam_size]
            new_beams = []
            for score, i, tok in options:
                old = beams[i]
                bm = _Beam(score, old.goals[:-1], [list(f) for f in old.frames], old.tokens + [tok])
                if tok < n_ops:
                    op_emb = model.generate.op_embed(torch.tensor([tok], device=root.device))
                    lg, rg = model.generate(q[i:i + 1], ctx[i:i + 1], op_emb)
                    bm.goals += [rg[0], lg[0]]
                    bm.frames.append([op_emb[0], None])
                else:
                    sub = cands[tok - n_ops]
                    while bm.frames and bm.frames[-1][1] is not None:
                        emb, lft = bm.frames.pop()
                        sub = model.merge(emb.unsqueeze(0), lft.unsqueeze(0), sub.unsqueeze(0))[0]
                    if bm.frames:
                        bm.frames[-1][1] = sub
                (new_beams if bm.goals else finished).append(bm)
            beams = new_beams
            if finished and beams and max(f.score for f in finished) >= max(x.score for x in beams):
                break
        results.append(max(finished, key=lambda f: f.score).tokens)
    return results
