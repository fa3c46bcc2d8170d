"""GTS / Graph2Tree on tiny models: valid tree decoding, parameter naming for scopes, number
alignment, determinism, and a short dense fine-tune that beats the trivial baseline."""

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smcbench.tasks import arithmetic as A  # noqa: E402
from smcbench.tasks.arithmetic.equations import is_complete_prefix  # noqa: E402
from smcbench.tasks.arithmetic.task import build_word_tokenizer  # noqa: E402
from smcbench.tasks.base import read_jsonl, write_jsonl  # noqa: E402

MODEL_SETTINGS = {"embedding_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                  "world_seed": 7, "pretrain_steps": 0, "max_length": 64, "hidden_size": 64, "lstm_layers": 1,
                  "op_embed_size": 16, "dropout": 0.0, "embedding_lr": 2e-3, "max_output_length": 9,
                  "min_constant_count": 2, "eval_batch_size": 256}
DATA = {"variant": "mawps", "world_seed": 7, "n_problems": 300, "n_folds": 5, "validation_fraction": 0.15}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("arith")
    info = A.make_pretrained("demo_gts", {"arch": "gts", "settings": MODEL_SETTINGS}, "synthetic", root / "pre")
    (root / "pre" / "pretrained.json").write_text(json.dumps(info))
    A.prepare("demo_mawps", "synthetic", root / "data", DATA, fold=0)
    return root


def make_task(root, arch="gts", seed=0, **overrides):
    settings = dict(DATA, model={"name": "m", "arch": arch, "source": "synthetic",
                                 "settings": dict(MODEL_SETTINGS, **overrides)},
                    training={"batch_size": 32, "lr": 1e-2})
    return A.TASK("demo_mawps", settings, root / "data", root / "pre", seed=seed)


@pytest.mark.parametrize("arch", ["gts", "graph2tree"])
def test_greedy_decoding_gives_valid_prefix_expressions(workdir, arch):
    task = make_task(workdir, arch, max_output_length=5)
    model = task.build_model()
    preds = task.predict(model, "test")  # random init: whatever it says must be a complete tree
    assert len(preds) == len(task.rows["test"])
    for p in preds:
        assert is_complete_prefix(p) and len(p) <= 5
    # and every prediction only points at numbers the problem has
    for p, row in zip(preds, task.rows["test"]):
        assert all(int(t[6:]) < len(row["numbers"]) for t in p if t.startswith("number"))


@pytest.mark.parametrize("arch", ["gts", "graph2tree"])
def test_build_model_is_deterministic_and_loss_is_finite(workdir, arch):
    task = make_task(workdir, arch)
    a, b = task.build_model(), task.build_model()
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    other = make_task(workdir, arch, seed=1).build_model()
    assert not torch.equal(a.predict.op_head.weight, other.predict.op_head.weight)
    assert torch.equal(a.roberta.embeddings.word_embeddings.weight, other.roberta.embeddings.word_embeddings.weight)
    loss = task.loss(a, next(iter(task.train_batches(0))))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert a.predict.num_head.proj.weight.grad.abs().sum() > 0


def test_parameter_names_for_scopes(workdir):
    model = make_task(workdir, "graph2tree").build_model()
    names = [n for n, _ in model.named_parameters()]
    embed = [n for n in names if "embed" in n]
    assert "predict.const_embed" in embed and "generate.op_embed.weight" in embed
    assert all(n.startswith(("roberta.embeddings.", "predict.const_embed", "generate.op_embed")) for n in embed)
    head_like = [n for n in names if any(k in n for k in ("classifier", "pooler", "lm_head", "score", "head"))]
    assert head_like and all(n.startswith(("predict.op_head", "predict.num_head")) for n in head_like)
    # modules registered input -> output
    tops = list(dict.fromkeys(n.split(".")[0] for n in names))
    assert tops == ["roberta", "encoder", "graph", "predict", "generate", "merge"]
    assert not any("pooler" in n for n in names)


def test_param_groups_separate_roberta_learning_rate(workdir):
    task = make_task(workdir)
    model = task.build_model()
    groups = task.param_groups(model, 1e-2, 1e-5)
    roberta = {id(p) for p in model.roberta.parameters()}
    for g in groups:
        ids = {id(p) for p in g["params"]}
        assert ids <= roberta or not ids & roberta
        assert g["lr"] == (2e-3 if ids <= roberta else 1e-2)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_number_masks_align_to_their_first_subtoken(tmp_path):
    """A tokenizer that splits ``number12`` into ``number`` + digits, and a question that also has
    the plain word "number": positions must point at the masks, not at the word."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "what", "number", "is",
                                         "plus", "?", "0", "1", "2"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
    fast.save_pretrained(tmp_path / "pre")
    from transformers import RobertaConfig, RobertaModel

    RobertaModel(RobertaConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                               intermediate_size=8, max_position_embeddings=40, pad_token_id=1)
                 ).save_pretrained(tmp_path / "pre")
    (tmp_path / "pre" / "pretrained.json").write_text(json.dumps({"path": str(tmp_path / "pre")}))
    rows = [{"id": "r0", "question": "what number is number1 plus number0 ?", "numbers": [3.0, 4.0],
             "equation": ["+", "number1", "number0"], "answer": 7.0}]
    (tmp_path / "data").mkdir()
    for split in ("train", "validation", "test"):
        write_jsonl(tmp_path / "data" / f"{split}.jsonl", rows)
    settings = {"model": {"arch": "gts", "settings": {"hidden_size": 8, "lstm_layers": 1, "min_constant_count": 1}}}
    task = A.TASK("x", settings, tmp_path / "data", tmp_path / "pre", seed=0)
    ids = fast(rows[0]["question"])["input_ids"]
    # <s> what number is number 1 plus number 0 ? </s>
    assert ids[:3] == [0, vocab["what"], vocab["number"]]
    assert task._encoded["test"][0]["num_pos"] == [7, 4]  # number0 -> its "number" piece at 7, number1 at 4


def test_dense_finetune_beats_the_trivial_baseline(workdir):
    torch.manual_seed(0)
    task = make_task(workdir, "gts")
    model = task.build_model()
    opt = torch.optim.AdamW(task.param_groups(model, 1e-2, 1e-5))
    model.train()
    for epoch in range(6):
        for batch in task.train_batches(epoch):
            task.loss(model, batch).backward()
            opt.step()
            opt.zero_grad()
    res = task.evaluate(model, "test")
    base = task.baseline("test")
    assert res["value_total"] == base["value_total"] == len(task.rows["test"])
    assert res["value_accuracy"] == 100 * res["value_correct"] / res["value_total"]  # exact: from counts
    assert res["n"] == len(task.rows["test"]) == res["value_total"]
    assert "|transformers:" in task.signature() and "|torch:" in task.signature()
    assert 0 < base["value_accuracy"] < 50
    assert res["value_accuracy"] > base["value_accuracy"] + 20, (res, base)


@pytest.mark.parametrize("arch", ["gts", "graph2tree"])
def test_beam_search_is_valid_and_width_one_equals_greedy(workdir, arch):
    from smcbench.tasks.arithmetic.search import beam_search

    task = make_task(workdir, arch, max_output_length=7)
    model = task.build_model().eval()
    batch = task._eval_batches("test")[0]
    greedy = model.decode(batch, None, max_len=7)
    with torch.no_grad():
        assert beam_search(model, batch, 1, 7) == greedy
        wide = beam_search(model, batch, 3, 7)
    assert len(wide) == len(greedy)
    assert all(is_complete_prefix([task.vocab.token(k) for k in s]) and len(s) <= 7 for s in wide)
    task.beam_size = 3
    assert task.signature().count("beam3") == 1 and len(task.predict(model, "validation")) == len(task.rows["validation"])


@pytest.mark.parametrize("dataset, sub, fold", [("asdiv_a", "asdiv_a", 0), ("mawps", "mawps", 1)])
def test_real_sample_rows_train_and_decode(tmp_path, dataset, sub, fold):
    """The real-data path end to end on the fixtures: group_nums graphs, constants (MAWPS) or none
    (ASDiv-A), a tiny random RoBERTa with a word-level tokenizer over the fixture's words."""
    from pathlib import Path

    from transformers import RobertaConfig, RobertaModel

    src = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / sub
    if not src.exists():
        pytest.skip(f"real samples not available at {src}")
    A.prepare(dataset, src, tmp_path / "data", {"validation_fraction": 0.2}, fold=fold)
    rows = [r for s in ("train", "validation", "test") for r in read_jsonl(tmp_path / "data" / f"{s}.jsonl")]
    words = sorted({w for r in rows for w in r["question"].split()})
    tok = build_word_tokenizer(words)
    tok.save_pretrained(tmp_path / "pre")
    RobertaModel(RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=16, max_position_embeddings=130, pad_token_id=1)
                 ).save_pretrained(tmp_path / "pre")
    (tmp_path / "pre" / "pretrained.json").write_text(json.dumps({"path": str(tmp_path / "pre")}))
    settings = {"model": {"arch": "graph2tree", "settings": {"hidden_size": 16, "lstm_layers": 2, "dropout": 0.5,
                                                             "min_constant_count": 1, "max_length": 128}},
                "training": {"batch_size": 4}}
    task = A.TASK(dataset, settings, tmp_path / "data", tmp_path / "pre", seed=0)
    assert (task.vocab.constants == []) == (dataset == "asdiv_a")
    model = task.build_model()
    assert (model.predict.const_embed is None) == (dataset == "asdiv_a")
    batch = next(iter(task.train_batches(0)))
    assert batch["graphs"].shape[1] == 2 and torch.allclose(batch["graphs"].sum(-1)[batch["attention_mask"].bool().unsqueeze(1).expand(-1, 2, -1)], torch.ones(1))
    task.loss(model, batch).backward()
    res = task.evaluate(model, "test")
    assert res["value_total"] == 20 and 0 <= res["value_correct"] <= 20
    assert all(is_complete_prefix(p) for p in task.predict(model, "test"))


def test_sparsity_scopes_see_the_intended_embeddings_and_heads(workdir):
    from smcbench.sparsity.scopes import resolve_scope

    model = make_task(workdir, "graph2tree").build_model()
    paper = set(resolve_scope(model, "paper"))
    assert {"encoder.fwd_l0.weight_ih_l0", "encoder.bwd_l0.weight_hh_l0", "graph.gcns.0.gc1.weight",
            "predict.tree_attn.proj.weight", "merge.combine.weight"} <= paper
    assert paper - set(resolve_scope(model, "no_embeddings")) == {
        "roberta.embeddings.word_embeddings.weight", "roberta.embeddings.position_embeddings.weight",
        "roberta.embeddings.token_type_embeddings.weight", "predict.const_embed", "generate.op_embed.weight"}
    assert paper - set(resolve_scope(model, "no_heads")) == {
        "predict.op_head.weight", "predict.num_head.proj.weight", "predict.num_head.out.weight"}


@pytest.mark.parametrize("arch", ["gts", "graph2tree"])
def test_batched_decoding_equals_per_problem_decoding(workdir, arch):
    """Greedy decoding and teacher forcing run a whole batch of problems at once (each step expands
    the next goal of every unfinished problem); the results equal decoding each problem alone."""
    task = make_task(workdir, arch, seed=3)
    model = task.build_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for batch in list(task.train_batches(0))[:4]:  # a few steps, so predictions differ by problem
        opt.zero_grad()
        task.loss(model, batch).backward()
        opt.step()
    model.eval()
    n = len(task.rows["test"])
    with torch.no_grad():
        batched = model.decode(task._collate("test", list(range(n)), False), None, max_len=9)
        alone = [model.decode(task._collate("test", [i], False), None, max_len=9)[0] for i in range(n)]
        assert batched == alone
        assert len({tuple(s) for s in batched}) > 1  # not a constant prediction
        rows = [i for i in range(n) if task._encoded["test"][i]["targets"] is not None][:12]
        b = task._collate("test", rows, True)
        scores, gold = model.decode(b, b["targets"])
        per = [model.decode(task._collate("test", [i], True), task._collate("test", [i], True)["targets"]) for i in rows]
    # batched scores come step-major: at step t, every problem with more than t target tokens
    lengths = [len(gl) for _, gl in per]
    order = [(b, t) for t in range(max(lengths)) for b in range(len(rows)) if t < lengths[b]]
    assert len(order) == scores.size(0)
    for k, (b, t) in enumerate(order):
        assert torch.allclose(scores[k], per[b][0][t], atol=1e-4) and gold[k] == per[b][1][t]


@pytest.mark.parametrize("arch", ["gts", "graph2tree"])
def test_collated_batch_equals_a_reference_built_from_the_rows(workdir, arch):
    """``_collate`` pads tensors made once per problem (ids, number positions, targets, the
    Graph2Tree graph); the batch equals one built from the encoded lists, with each graph
    row-normalized over the padded S x S matrix."""
    task = make_task(workdir, arch)
    split = "train"
    index = [5, 0, 17, 3, 9, 11, 2]
    b = task._collate(split, index, True)
    items = [task._encoded[split][i] for i in index]
    S = max(len(it["ids"]) for it in items)
    N = task.vocab.max_numbers
    assert b["input_ids"].shape == (len(index), S) and b["num_pos"].shape == (len(index), N)
    for k, (i, it) in enumerate(zip(index, items)):
        L = len(it["ids"])
        assert b["input_ids"][k, :L].tolist() == it["ids"]
        assert (b["input_ids"][k, L:] == task.tokenizer.pad_token_id).all()
        assert b["attention_mask"][k].tolist() == [1] * L + [0] * (S - L)
        n = min(N, len(it["num_pos"]))
        assert b["num_pos"][k, :n].tolist() == it["num_pos"][:n] and b["num_valid"][k].sum() == n
        assert b["targets"][k, :len(it["targets"])].tolist() == it["targets"]
        if arch == "graph2tree":
            g = torch.zeros(2, S, S)
            g[:, torch.arange(L), torch.arange(L)] = 1.0
            vals = task.rows[split][i]["numbers"]
            for x, px in enumerate(it["num_pos"]):
                for y, py in enumerate(it["num_pos"]):
                    if vals[x] > vals[y]:
                        g[0, px, py] = 1.0
            for cell in it["cells"]:
                for p in cell:
                    for q in cell:
                        g[1, p, q] = 1.0
            g = g / g.sum(-1, keepdim=True).clamp_min(1.0)
            assert torch.equal(b["graphs"][k], g)
    if arch == "gts":
        assert "graphs" not in b
