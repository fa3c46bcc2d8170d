"""GTS and Graph2Tree in plain PyTorch: a RoBERTa embedder, a BiLSTM encoder (+ GCN for
Graph2Tree) and the goal-driven tree decoder (prediction, node generation, merge).

Written from the papers' descriptions (Xie & Sun 2019, "A Goal-Driven Tree-Structured Neural Model
for Math Word Problems"; Zhang et al. 2020, "Graph-to-Tree Learning for Solving Math Word
Problems") and the facts in ``reference/models.md`` §4; no code was copied.

Parameter names are chosen for the sparsity engine's name-based scopes:

* embeddings (names containing ``embed``): ``roberta.embeddings.*``, ``predict.const_embed``
  (learned constant embeddings, 2-D so it is prunable like any embedding) and
  ``generate.op_embed.weight`` (operator embeddings);
* heads (the output scorers): ``predict.op_head.*`` (operator logits) and ``predict.num_head.*``
  (number/constant pointer scores);
* nothing else contains ``embed``, ``head``, ``score``, ``classifier`` or ``pooler`` (the GCN
  heads are ``graph.gcns.*``; the tree attention's layers are ``predict.tree_attn.{proj,energy}``).

Modules are registered input -> output: ``roberta``, ``encoder``, ``graph``, ``predict``,
``generate``, ``merge``.

Decoding is batched over problems: every step expands the next pending goal of every unfinished
problem at once (pre-order), so teacher forcing and greedy decoding share one routine and cost
one small batch of matrix products per output token instead of one per token per problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e12  # logit of an impossible choice (finite so that masked softmax never gives NaN)


class Dropout(nn.Dropout):
    """``nn.Dropout`` that is a no-op (no kernel, no autograd node) at p = 0: the demo trains
    without dropout and the decoder calls it a dozen times per output token."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.p == 0.0 or not self.training else super().forward(x)


@dataclass
class OutputVocab:
    """Decoder vocabulary: operators, then constants, then number slots ``number0..``."""

    operators: list[str]
    constants: list[str]
    max_numbers: int

    @property
    def num_ops(self) -> int:
        return len(self.operators)

    @property
    def size(self) -> int:
        return len(self.operators) + len(self.constants) + self.max_numbers

    def token(self, index: int) -> str:
        """The equation token of output id ``index``."""
        if index < self.num_ops:
            return self.operators[index]
        index -= self.num_ops
        if index < len(self.constants):
            return self.constants[index]
        return f"number{index - len(self.constants)}"

    def index(self, token: str) -> int | None:
        """Output id of an equation token, or None when it is not in the vocabulary."""
        if token in self.operators:
            return self.operators.index(token)
        if token in self.constants:
            return self.num_ops + self.constants.index(token)
        if token.startswith("number") and token[6:].isdigit():
            k = int(token[6:])
            return self.num_ops + len(self.constants) + k if k < self.max_numbers else None
        return None


# --- encoder ----------------------------------------------------------------------------------
class Seq2TreeEncoder(nn.Module):
    """Bidirectional LSTM over the embedder's contextual states; the two directions are summed.

    Each layer is two unidirectional ``nn.LSTM`` (``fwd_l<k>``, ``bwd_l<k>``); the backward one
    reads every sequence reversed within its own length. Same maths as a packed bidirectional
    LSTM, but padded batches run 2-3x faster on CPU than ``pack_padded_sequence``.
    """

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.hidden = hidden
        self.layers = layers
        for k in range(layers):
            size = input_size if k == 0 else 2 * hidden
            self.add_module(f"fwd_l{k}", nn.LSTM(size, hidden, batch_first=True))
            self.add_module(f"bwd_l{k}", nn.LSTM(size, hidden, batch_first=True))
        self.dropout = Dropout(dropout)

    @staticmethod
    def _reverse_index(lengths: torch.Tensor, S: int, device) -> torch.Tensor:
        t = torch.arange(S, device=device).unsqueeze(0)
        L = lengths.to(device).unsqueeze(1)
        return torch.where(t < L, L - 1 - t, t)  # reverse the real tokens, keep padding in place

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, S, _ = x.shape
        rev = self._reverse_index(lengths, S, x.device)
        h = x
        for k in range(self.layers):
            if k:
                h = self.dropout(h)
            out_f, _ = getattr(self, f"fwd_l{k}")(h)
            ri = rev.unsqueeze(-1).expand(-1, -1, h.size(-1))
            out_b_rev, _ = getattr(self, f"bwd_l{k}")(h.gather(1, ri))
            ro = rev.unsqueeze(-1).expand(-1, -1, self.hidden)
            out_b = out_b_rev.gather(1, ro)
            h = torch.cat([out_f, out_b], dim=-1)
        last = (lengths.to(x.device) - 1).view(B, 1, 1).expand(-1, 1, self.hidden)
        # root goal: forward state after the last real token + backward state at the first token
        root = out_f.gather(1, last).squeeze(1) + out_b[:, 0]
        return out_f + out_b, root


class GCNBranch(nn.Module):
    """Two graph-convolution layers (hidden -> hidden -> hidden/4) over one adjacency matrix."""

    def __init__(self, hidden: int, out: int, dropout: float):
        super().__init__()
        self.gc1 = nn.Linear(hidden, hidden)
        self.gc2 = nn.Linear(hidden, out)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = F.relu(torch.bmm(adj, self.gc1(x)))
        return torch.bmm(adj, self.gc2(self.dropout(h)))


class GraphModule(nn.Module):
    """Graph2Tree's graph encoder: 4 GCN branches (2 on the quantity-comparison graph, 2 on the
    quantity-cell graph), concatenated, LayerNorm + residual, position-wise FFN + residual."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        if hidden % 4:
            raise ValueError(f"graph2tree hidden_size must be divisible by 4 (got {hidden})")
        self.gcns = nn.ModuleList(GCNBranch(hidden, hidden // 4, dropout) for _ in range(4))
        self.norm = nn.LayerNorm(hidden)
        self.ffn_in = nn.Linear(hidden, hidden)
        self.ffn_out = nn.Linear(hidden, hidden)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, graphs: torch.Tensor) -> torch.Tensor:
        # graphs: [B, 2, S, S] row-normalized; 0 = comparison, 1 = quantity cell
        which = (0, 0, 1, 1)
        h = torch.cat([g(x, graphs[:, k]) for g, k in zip(self.gcns, which)], dim=-1)
        h = self.norm(h) + x
        return h + self.ffn_out(self.dropout(F.relu(self.ffn_in(h))))


# --- decoder ----------------------------------------------------------------------------------
class TreeAttention(nn.Module):
    """Additive attention of a goal over the encoder states: v^T tanh(W [q; h_s] + b).

    ``W``'s state half is applied once per batch (:meth:`keys`), not once per decoding step; the
    result is the same as applying ``proj`` to the concatenation.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.proj = nn.Linear(2 * hidden, hidden)
        self.energy = nn.Linear(hidden, 1, bias=False)

    def keys(self, states: torch.Tensor) -> torch.Tensor:
        return F.linear(states, self.proj.weight[:, self.hidden:], self.proj.bias)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, states: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        q = F.linear(query, self.proj.weight[:, :self.hidden]).unsqueeze(1)
        e = self.energy(torch.tanh(q + keys)).squeeze(-1)
        a = torch.softmax(e.masked_fill(pad, NEG), dim=-1)
        return torch.bmm(a.unsqueeze(1), states).squeeze(1)


class PointerScorer(nn.Module):
    """Scores each candidate quantity (constant or problem number) against the goal + context:
    v^T tanh(W [leaf; cand] + b), with the candidate half precomputed per batch (:meth:`keys`)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.lead = 2 * hidden
        self.proj = nn.Linear(3 * hidden, hidden)
        self.out = nn.Linear(hidden, 1, bias=False)

    def keys(self, cands: torch.Tensor) -> torch.Tensor:
        return F.linear(cands, self.proj.weight[:, self.lead:], self.proj.bias)

    def forward(self, leaf: torch.Tensor, keys: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = F.linear(leaf, self.proj.weight[:, :self.lead]).unsqueeze(1) + keys
        return self.out(torch.tanh(x)).squeeze(-1).masked_fill(~valid, NEG)


class Prediction(nn.Module):
    """Turns a goal (and, for a right child, its left sibling's sub-tree) into the node state,
    attends over the problem, and scores operators and quantities."""

    def __init__(self, hidden: int, num_ops: int, num_constants: int, dropout: float):
        super().__init__()
        self.concat_l = nn.Linear(hidden, hidden)
        self.concat_lg = nn.Linear(hidden, hidden)
        self.concat_r = nn.Linear(2 * hidden, hidden)
        self.concat_rg = nn.Linear(2 * hidden, hidden)
        self.tree_attn = TreeAttention(hidden)
        # no zero-size parameter when the data has no constants (ASDiv-A): scopes and pruning
        # statistics would divide by its size
        self.const_embed = nn.Parameter(torch.randn(num_constants, hidden) * 0.1) if num_constants else None
        self.op_head = nn.Linear(2 * hidden, num_ops)
        self.num_head = PointerScorer(hidden)
        self.dropout = Dropout(dropout)

    def constants(self, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        """Constant embeddings [B, C, H] (C may be 0)."""
        if self.const_embed is None:
            return like.new_zeros(batch_size, 0, like.size(-1))
        return self.const_embed.unsqueeze(0).expand(batch_size, -1, -1)

    def node_state(self, goal: torch.Tensor, left: torch.Tensor | None, right_rows: torch.Tensor | None) -> torch.Tensor:
        """Gated node state; rows listed in ``right_rows`` are right children with sub-tree ``left``."""
        g = self.dropout(goal)
        q = torch.tanh(self.concat_l(g)) * torch.sigmoid(self.concat_lg(g))
        if right_rows is not None and right_rows.numel():
            x = torch.cat([self.dropout(left), g[right_rows]], dim=-1)
            qr = torch.tanh(self.concat_r(x)) * torch.sigmoid(self.concat_rg(x))
            q = q.index_copy(0, right_rows, qr)
        return q


class GenerateNode(nn.Module):
    """Left and right child goals of an operator node."""

    def __init__(self, hidden: int, num_ops: int, op_embed_size: int, dropout: float):
        super().__init__()
        self.op_embed = nn.Embedding(num_ops, op_embed_size)
        size = 2 * hidden + op_embed_size
        self.left = nn.Linear(size, hidden)
        self.left_gate = nn.Linear(size, hidden)
        self.right = nn.Linear(size, hidden)
        self.right_gate = nn.Linear(size, hidden)
        self.dropout = Dropout(dropout)

    def forward(self, state, context, op_emb):
        x = torch.cat([self.dropout(state), self.dropout(context), self.dropout(op_emb)], dim=-1)
        left = torch.tanh(self.left(x)) * torch.sigmoid(self.left_gate(x))
        right = torch.tanh(self.right(x)) * torch.sigmoid(self.right_gate(x))
        return left, right


class Merge(nn.Module):
    """Sub-tree embedding of a completed operator node from its operator and two children."""

    def __init__(self, hidden: int, op_embed_size: int, dropout: float):
        super().__init__()
        size = 2 * hidden + op_embed_size
        self.combine = nn.Linear(size, hidden)
        self.combine_gate = nn.Linear(size, hidden)
        self.dropout = Dropout(dropout)

    def forward(self, op_emb, left, right):
        x = torch.cat([self.dropout(op_emb), self.dropout(left), self.dropout(right)], dim=-1)
        return torch.tanh(self.combine(x)) * torch.sigmoid(self.combine_gate(x))


class _RowStore:
    """Vectors made while decoding (goals, sub-trees), addressed by integer row ids. Gathering the
    rows of many problems is one ``cat`` + one index (two autograd nodes) instead of one slice
    node per problem, which is what made the backward pass of a per-problem stack slow."""

    def __init__(self):
        self.chunks: list[torch.Tensor] = []
        self.n = 0
        self._flat: torch.Tensor | None = None

    def add(self, rows: torch.Tensor) -> list[int]:
        self.chunks.append(rows)
        self._flat = None
        ids = list(range(self.n, self.n + rows.size(0)))
        self.n += rows.size(0)
        return ids

    def get(self, ids: list[int]) -> torch.Tensor:
        if self._flat is None:
            self._flat = self.chunks[0] if len(self.chunks) == 1 else torch.cat(self.chunks)
        return self._flat[torch.tensor(ids, dtype=torch.long, device=self._flat.device)]


class MathSolver(nn.Module):
    """GTS (``arch='gts'``) or Graph2Tree (``arch='graph2tree'``) over a RoBERTa embedder."""

    def __init__(self, roberta: nn.Module, arch: str, vocab: OutputVocab, hidden: int, lstm_layers: int,
                 op_embed_size: int, dropout: float):
        super().__init__()
        if arch not in ("gts", "graph2tree"):
            raise ValueError(f"unknown arithmetic arch {arch!r} (known: gts, graph2tree)")
        self.arch = arch
        self.vocab = vocab
        self.roberta = roberta
        emb_size = roberta.config.hidden_size
        self.embed_dropout = Dropout(dropout)
        self.encoder = Seq2TreeEncoder(emb_size, hidden, lstm_layers, dropout)
        self.graph = GraphModule(hidden, dropout) if arch == "graph2tree" else None
        self.predict = Prediction(hidden, vocab.num_ops, len(vocab.constants), dropout)
        self.generate = GenerateNode(hidden, vocab.num_ops, op_embed_size, dropout)
        self.merge = Merge(hidden, op_embed_size, dropout)

    # --- encoding -------------------------------------------------------------------------
    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(encoder states [B,S,H], padding mask [B,S], root goals [B,H], number states [B,N,H])."""
        emb = self.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        states, root = self.encoder(self.embed_dropout(emb), batch["lengths"])
        if self.graph is not None:
            states = self.graph(states, batch["graphs"])
        pad = batch["attention_mask"] == 0
        idx = batch["num_pos"].unsqueeze(-1).expand(-1, -1, states.size(-1))
        return states, pad, root, states.gather(1, idx)

    # --- tree decoding --------------------------------------------------------------------
    def decode(self, batch: dict, targets: torch.Tensor | None = None, max_len: int = 20):
        """Teacher-forced scores (``targets`` [B,T] output ids, -1 padded) or greedy prefix
        sequences. Returns ``(scores [n,V], gold [n])`` over all target tokens when teacher
        forcing, else a list of output-id lists, one complete prefix expression per problem."""
        states, pad, root, num_states = self.encode(batch)
        B = root.size(0)
        n_ops = self.vocab.num_ops
        const = self.predict.constants(B, root)
        cands = torch.cat([const, num_states], dim=1)
        cand_valid = torch.cat([torch.ones(B, const.size(1), dtype=torch.bool, device=root.device),
                                batch["num_valid"]], dim=1)
        att_keys = self.predict.tree_attn.keys(states)
        cand_keys = self.predict.num_head.keys(cands)
        dev = root.device
        store = _RowStore()
        goals: list[list[int]] = [[i] for i in store.add(root)]  # pending goals, by row id
        frames: list[list[list]] = [[] for _ in range(B)]  # open operators: [op id, left sub-tree row id]
        out_tokens: list[list[int]] = [[] for _ in range(B)]
        all_scores, all_gold = [], []
        t = 0
        while True:
            active = [b for b in range(B) if goals[b]]
            if not active:
                break
            if targets is None and t >= max_len:  # cannot happen with the length guard; kept as a backstop
                break
            idx = torch.tensor(active, device=dev)
            goal = store.get([goals[b].pop() for b in active])
            right_rows = [i for i, b in enumerate(active) if frames[b] and frames[b][-1][1] is not None]
            left = store.get([frames[active[i]][-1][1] for i in right_rows]) if right_rows else None
            rr = torch.tensor(right_rows, device=dev, dtype=torch.long) if right_rows else None
            q = self.predict.node_state(goal, left, rr)
            ctx = self.predict.tree_attn(q, att_keys[idx], states[idx], pad[idx])
            leaf = self.predict.dropout(torch.cat([q, ctx], dim=-1))
            scores = torch.cat([self.predict.op_head(leaf),
                                self.predict.num_head(leaf, cand_keys[idx], cand_valid[idx])], dim=-1)
            if targets is not None:
                tok = targets[idx, t]
                all_scores.append(scores)
                all_gold.append(tok)
                toks = tok.tolist()
            else:
                # length guard: an operator adds one pending goal; refuse it when the tree could
                # no longer be closed within max_len tokens, so every output is a valid expression
                allow = torch.tensor([t + 3 + len(goals[b]) <= max_len for b in active], device=dev)
                s = scores.clone()
                s[:, :n_ops] = s[:, :n_ops].masked_fill(~allow.unsqueeze(1), NEG)
                toks = s.argmax(-1).tolist()
            for i, b in enumerate(active):
                out_tokens[b].append(toks[i])
            op_rows = [i for i, k in enumerate(toks) if k < n_ops]
            leaf_rows = [i for i, k in enumerate(toks) if k >= n_ops]
            if op_rows:
                orr = torch.tensor(op_rows, device=dev)
                op_emb = self.generate.op_embed(torch.tensor([toks[i] for i in op_rows], device=dev))
                lg, rg = self.generate(q[orr], ctx[orr], op_emb)
                for i, gl, gr in zip(op_rows, store.add(lg), store.add(rg)):
                    b = active[i]
                    goals[b] += [gr, gl]  # pre-order: the left child is expanded first
                    frames[b].append([toks[i], None])
            if leaf_rows:
                lr_ = torch.tensor(leaf_rows, device=dev)
                sub = cands[idx[lr_], torch.tensor([toks[i] - n_ops for i in leaf_rows], device=dev)]
                pending = list(zip((active[i] for i in leaf_rows), store.add(sub)))
                # close finished operators bottom-up, one batched merge per tree level
                while pending:
                    to_merge = []
                    for b, row in pending:
                        if frames[b] and frames[b][-1][1] is not None:
                            to_merge.append((b, row))
                        elif frames[b]:
                            frames[b][-1][1] = row  # left sub-tree done; the right goal comes next
                    if not to_merge:
                        break
                    popped = [frames[b].pop() for b, _ in to_merge]
                    op_emb = self.generate.op_embed(torch.tensor([f[0] for f in popped], device=dev))
                    merged = self.merge(op_emb, store.get([f[1] for f in popped]), store.get([r for _, r in to_merge]))
                    pending = list(zip((b for b, _ in to_merge), store.add(merged)))
            t += 1
        if targets is not None:
            return torch.cat(all_scores), torch.cat(all_gold)
        return out_tokens

    def forward(self, batch: dict) -> torch.Tensor:
        """Mean token cross-entropy of the gold prefix equations (teacher forcing)."""
        scores, gold = self.decode(batch, batch["targets"])
        return F.cross_entropy(scores, gold)
