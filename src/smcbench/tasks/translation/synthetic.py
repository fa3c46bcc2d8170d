"""Synthetic many-to-many translation world for the offline demo (SPEC §5).

Eleven made-up languages carry the codes of the real OPUS-100 setting (``en`` plus the ten
OPUS languages) so the demo runs exactly the code path of the real benchmark (language tokens,
pivoting through English, per-language BLEU tokenizers). They share one grammar — a sentence is
``subject verb object`` with optional adjectives, plural nouns and proper names — and differ in

* the lexicon: every concept has a shared root; with probability ``cognate_fraction`` a language
  uses that root (a cognate), otherwise its own stem,
* the word order of subject, verb and object (``SVO``, ``SOV``, ``VSO`` …) and whether adjectives
  precede or follow their noun,
* the suffix rules: noun singular/plural suffixes, verb agreement with the subject's number and an
  adjective suffix.

Proper names are identical in every language, as in real parallel text, so copying the source is
a weak but non-zero baseline. Every stem is consonant-vowel-consonant and every suffix
vowel-consonant, so a word-piece tokenizer whose vocabulary is exactly the stems (word-initial)
and the suffixes (``##`` continuations) segments every word into ``stem + suffix`` unambiguously.
Cognate roots are then tokens shared across languages, the synthetic analogue of the shared
subwords that let mBART transfer across languages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

#: the pivot language first, then the ten OPUS-100 languages of the paper
WORLD_LANGUAGES = ["en", "cs", "de", "fr", "gu", "ja", "my", "ro", "ru", "vi", "zh"]
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_ORDERS = ["SVO", "SOV", "VSO", "VOS", "OSV", "OVS"]
# the three commonest orders of real languages; the demo learns them within its step budget
_DEFAULT_ORDERS = ["SVO", "SOV", "VSO"]
_NAMES = ["Ada", "Bruno", "Cleo", "Dario", "Elin", "Femi", "Goran", "Hana"]


@dataclass
class Meaning:
    """A language-independent sentence: what every language renders in its own way."""

    subj: int | None          # noun concept, or None when the subject is a name
    subj_name: int | None     # index into the names when the subject is a name
    subj_plural: bool
    subj_adj: int | None
    verb: int
    obj: int
    obj_plural: bool
    obj_adj: int | None

    def key(self) -> tuple:
        return (self.subj, self.subj_name, self.subj_plural, self.subj_adj, self.verb, self.obj,
                self.obj_plural, self.obj_adj)


@dataclass
class Language:
    code: str
    noun_stems: list[str]
    verb_stems: list[str]
    adj_stems: list[str]
    noun_sg: str
    noun_pl: str
    verb_sg: str
    verb_pl: str
    adj_suffix: str
    order: str
    adj_first: bool


@dataclass
class World:
    """The shared grammar plus every language's lexicon and rules, built from ``world_seed``."""

    seed: int
    n_nouns: int
    n_verbs: int
    n_adjs: int
    names: list[str]
    languages: dict[str, Language] = field(default_factory=dict)

    # --- rendering ----------------------------------------------------------------------------
    def _noun_phrase(self, lang: Language, noun: int | None, name: int | None, plural: bool,
                     adj: int | None) -> list[str]:
        if noun is None:
            return [self.names[name]]
        words = [lang.noun_stems[noun] + (lang.noun_pl if plural else lang.noun_sg)]
        if adj is not None:
            a = lang.adj_stems[adj] + lang.adj_suffix
            words = [a] + words if lang.adj_first else words + [a]
        return words

    def render(self, m: Meaning, code: str) -> str:
        """The sentence ``m`` in language ``code``."""
        lang = self.languages[code]
        parts = {
            "S": self._noun_phrase(lang, m.subj, m.subj_name, m.subj_plural, m.subj_adj),
            "V": [lang.verb_stems[m.verb] + (lang.verb_pl if m.subj_plural else lang.verb_sg)],
            "O": self._noun_phrase(lang, m.obj, None, m.obj_plural, m.obj_adj),
        }
        return " ".join(w for slot in lang.order for w in parts[slot])

    def sample_meaning(self, rng: random.Random) -> Meaning:
        """One random meaning (names as subject 20% of the time, adjectives 40%)."""
        use_name = rng.random() < 0.2
        return Meaning(
            subj=None if use_name else rng.randrange(self.n_nouns),
            subj_name=rng.randrange(len(self.names)) if use_name else None,
            subj_plural=False if use_name else rng.random() < 0.5,
            subj_adj=None if use_name or rng.random() >= 0.4 else rng.randrange(self.n_adjs),
            verb=rng.randrange(self.n_verbs),
            obj=rng.randrange(self.n_nouns),
            obj_plural=rng.random() < 0.5,
            obj_adj=rng.randrange(self.n_adjs) if rng.random() < 0.4 else None,
        )

    # --- tokenizer vocabulary -----------------------------------------------------------------
    def word_pieces(self) -> tuple[list[str], list[str]]:
        """(word-initial pieces: stems and names, continuation pieces: suffixes without ``##``)."""
        stems, suffixes = set(), set()
        for lang in self.languages.values():
            stems.update(lang.noun_stems + lang.verb_stems + lang.adj_stems)
            suffixes.update(s for s in (lang.noun_sg, lang.noun_pl, lang.verb_sg, lang.verb_pl,
                                        lang.adj_suffix) if s)
        return sorted(stems) + list(self.names), sorted(suffixes)


def _cvc(rng: random.Random) -> str:
    return rng.choice(_CONSONANTS) + rng.choice(_VOWELS) + rng.choice(_CONSONANTS)


def _vc(rng: random.Random) -> str:
    return rng.choice(_VOWELS) + rng.choice(_CONSONANTS)


def build_world(settings: dict[str, Any]) -> World:
    """The synthetic world of ``settings`` (keys: ``world_seed``, ``n_nouns``, ``n_verbs``,
    ``n_adjs``, ``cognate_fraction``, ``word_orders``). The same settings always give the same world, which is
    how ``prepare`` (data) and ``make_pretrained`` (tokenizer, model) agree."""
    seed = int(settings.get("world_seed", 0))
    n_nouns = int(settings.get("n_nouns", 8))
    n_verbs = int(settings.get("n_verbs", 4))
    n_adjs = int(settings.get("n_adjs", 4))
    cognate = float(settings.get("cognate_fraction", 1.0))
    orders = list(settings.get("word_orders", _DEFAULT_ORDERS))
    bad = [o for o in orders if o not in _ORDERS]
    if bad or not orders:
        raise ValueError(f"word_orders={orders} in the synthetic translation settings: each must be one "
                         f"of {_ORDERS}")
    if not 0.0 <= cognate <= 1.0:
        raise ValueError(f"cognate_fraction={cognate} must lie in [0, 1] (synthetic translation settings)")
    rng = random.Random(f"smcbench-mt-world-{seed}")
    used: set[str] = set()

    def fresh_stem() -> str:
        while True:
            s = _cvc(rng)
            if s not in used:
                used.add(s)
                return s

    roots = {pos: [fresh_stem() for _ in range(n)] for pos, n in
             (("noun", n_nouns), ("verb", n_verbs), ("adj", n_adjs))}
    world = World(seed, n_nouns, n_verbs, n_adjs, names=list(_NAMES))
    for code in WORLD_LANGUAGES:
        stems = {pos: [r if rng.random() < cognate else fresh_stem() for r in rs]
                 for pos, rs in roots.items()}
        noun_sg, noun_pl = rng.choice(["", _vc(rng)]), _vc(rng)
        while noun_pl == noun_sg:
            noun_pl = _vc(rng)
        verb_sg, verb_pl = _vc(rng), _vc(rng)
        while verb_pl == verb_sg:
            verb_pl = _vc(rng)
        world.languages[code] = Language(
            code, stems["noun"], stems["verb"], stems["adj"], noun_sg, noun_pl, verb_sg, verb_pl,
            adj_suffix=rng.choice(["", _vc(rng)]), order=rng.choice(orders),
            adj_first=rng.random() < 0.5)
    return world


def sample_parallel(world: World, n: int, rng: random.Random, exclude: set | None = None) -> list[Meaning]:
    """``n`` meanings, distinct from each other and from the keys in ``exclude`` when the world
    has enough of them (so test sentences are never training sentences)."""
    exclude = set() if exclude is None else exclude
    out, seen = [], set(exclude)
    for _ in range(n * 50):
        if len(out) == n:
            break
        m = world.sample_meaning(rng)
        if m.key() in seen:
            continue
        seen.add(m.key())
        out.append(m)
    if len(out) < n:
        raise ValueError(f"the synthetic world has too few distinct sentences for n={n}; "
                         "raise n_nouns / n_verbs / n_adjs in the dataset settings")
    return out


def build_tokenizer(world: World, lang_tokens: list[str]):
    """A word-piece tokenizer for ``world`` in mBART's layout: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
    ``<unk>`` 3, then the pieces, then the language tokens and ``<mask>`` as special tokens (as in
    mbart-large-cc25, where they follow the sentencepiece vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    initial, suffixes = world.word_pieces()
    vocab: dict[str, int] = {}
    for tok in ["<s>", "<pad>", "</s>", "<unk>"] + initial + ["##" + s for s in suffixes]:
        vocab.setdefault(tok, len(vocab))
    backend = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", continuing_subword_prefix="##",
                                         max_input_chars_per_word=64))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", pad_token="<pad>",
                                  eos_token="</s>", unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": list(lang_tokens)})
    tok.add_special_tokens({"mask_token": "<mask>"})
    return tok


def noise_span_mask(ids: list[int], mask_id: int, ratio: float, rng: random.Random) -> list[int]:
    """mBART-style text infilling: about ``ratio`` of the tokens, in spans of 1-3, each span
    replaced by one ``<mask>`` (the model must also infer how many tokens a mask hides)."""
    n_mask = max(1, round(ratio * len(ids))) if ids else 0
    masked = [False] * len(ids)
    budget, tries = n_mask, 0
    while budget > 0 and tries < 4 * len(ids):
        tries += 1
        span = min(budget, rng.choice([1, 1, 2, 3]))
        start = rng.randrange(len(ids))
        for i in range(start, min(len(ids), start + span)):
            if not masked[i]:
                masked[i] = True
                budget -= 1
    out: list[int] = []
    for i, tok in enumerate(ids):
        if not masked[i]:
            out.append(tok)
        elif i == 0 or not masked[i - 1]:  # adjacent masked tokens collapse into one <mask>
            out.append(mask_id)
    return out


def local_shuffle(words: list[str], window: int, rng: random.Random) -> list[str]:
    """Word-order noise of Lample et al. (2018): every word moves at most ``window`` positions
    (sort by index + uniform noise in [0, window + 1))."""
    keys = [i + rng.uniform(0, window + 1) for i in range(len(words))]
    return [w for _, w in sorted(zip(keys, words), key=lambda kw: kw[0])]


def replace_suffix(word: str, suffixes: list[str], prob: float, rng: random.Random) -> str:
    """Morphological noise: with probability ``prob`` a word keeps its stem (the first three
    letters) and gets a suffix drawn from every language's suffixes (or none); names are kept."""
    if word[:1].isupper() or rng.random() >= prob:
        return word
    return word[:3] + rng.choice(suffixes + [""])


def pretrain_denoising(model, world: World, tokenizer, lang_token_ids: dict[str, int],
                       settings: dict[str, Any], log=print) -> dict[str, Any]:
    """Pre-train ``model`` briefly as mBART was: reconstruct monolingual sentences of every
    language from a noised copy: span masking (text infilling), and optionally local word
    shuffling (``shuffle_window``) and suffix replacement (``suffix_noise``; both off by
    default: they lowered demo BLEU). Format as in fine-tuning (Tang et al. 2020): source
    ``[lang] noised </s>``, decoder input ``[lang] X``, labels ``X </s>``. The optimizer loop is
    the shared one (:func:`smcbench.tasks.pretrain.pretrain`).

    Settings: ``pretrain_steps``, ``pretrain_batch_size``, ``pretrain_lr``, ``mask_ratio``,
    ``shuffle_window``, ``suffix_noise``, ``world_seed``, ``pretrain_threads``. Returns a summary
    (steps, first/last loss, wall and CPU seconds)."""
    import torch
    import torch.nn.functional as F

    from ..pretrain import PretrainSettings, pad, pretrain

    batch_size = int(settings.get("pretrain_batch_size", 32))
    ratio = float(settings.get("mask_ratio", 0.35))
    window = int(settings.get("shuffle_window", 0))
    suffix_noise = float(settings.get("suffix_noise", 0.0))
    _, all_suffixes = world.word_pieces()
    seed = int(settings.get("world_seed", 0))
    rng = random.Random(f"smcbench-mt-pretrain-{seed}")
    pad_id, eos, mask_id = tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.mask_token_id
    codes = sorted(lang_token_ids)

    def step_loss(step: int, g) -> "torch.Tensor":
        src, dec, lab = [], [], []
        langs = [rng.choice(codes) for _ in range(batch_size)]
        texts = [world.render(world.sample_meaning(rng), c) for c in langs]
        noisy = [local_shuffle(t.split(), window, rng) if window > 0 else t.split() for t in texts]
        if suffix_noise > 0:
            noisy = [[replace_suffix(w, all_suffixes, suffix_noise, rng) for w in ws] for ws in noisy]
        noisy_ids = tokenizer([" ".join(w) for w in noisy], add_special_tokens=False).input_ids
        for code, ids, nids in zip(langs, tokenizer(texts, add_special_tokens=False).input_ids, noisy_ids):
            lt = lang_token_ids[code]
            src.append([lt] + noise_span_mask(nids, mask_id, ratio, rng) + [eos])
            dec.append([lt] + ids)
            lab.append(ids + [eos])
        x = pad(src, pad_id)
        logits = model(input_ids=x, attention_mask=(x != pad_id).long(),
                       decoder_input_ids=pad(dec, pad_id)).logits
        return F.cross_entropy(logits.flatten(0, 1), pad(lab, -100).flatten(), ignore_index=-100)

    steps = int(settings.get("pretrain_steps", 400))
    model.train()
    summary = pretrain(model.parameters(), step_loss,
                       PretrainSettings(steps=steps, lr=float(settings.get("pretrain_lr", 3e-3)),
                                        seed=seed, min_lr_ratio=0.05,
                                        threads=int(settings.get("pretrain_threads", torch.get_num_threads())),
                                        log_every=max(1, steps // 5)), log=log)
    model.eval()
    return {"pretrain_steps": steps, "pretrain_first_loss": summary["loss_first"],
            "pretrain_last_loss": summary["loss_last"], "pretrain_seconds": summary["seconds"],
            "pretrain_cpu_seconds": summary["cpu_seconds"]}
