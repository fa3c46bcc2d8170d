"""Commonsense reasoning family: CSQA, WinoGrande, RACE (RoBERTa) and the synthetic demo.

Row schema of the prepared JSONL files (one object per question):

* every dataset: ``id`` (unique in its file), ``question`` (str), ``choices`` (list of str, the
  same length within a dataset), ``label`` (int, index into ``choices``);
* CSQA adds ``concept`` (the question concept);
* WinoGrande adds ``sentence`` (with its ``_`` blank), ``option1``, ``option2``
  (``choices == [option1, option2]``; the released answer "1"/"2" becomes label 0/1);
* RACE adds ``article`` and ``level`` ("high"/"middle");
* the demo adds ``passage``, ``kind`` and ``subject`` (``question`` = passage + question text).

Inputs are built by hand, as fairseq built them for SMC-Bench (see the README (commonsense)):

* CSQA (and the demo): ``<s> Q: {stem} </s> A: {choice} </s>`` per choice, ranked by
  ``RobertaForMultipleChoice`` (arch ``roberta_mc``);
* RACE: ``<s> qa </s> </s> article </s>`` with qa = question with ``_`` replaced by the option
  (else question + " " + option); ``<s> qa </s>`` cut to ``option_max_tokens``, the whole to
  ``max_length`` (both cut at the end, like fairseq's ``TruncateDataset``);
* WinoGrande with arch ``roberta_mlm`` (the paper's recipe): the blank is filled with each
  option, the option's tokens are replaced by ``<mask>``, the score of an option is the mean
  masked-LM log-probability of its tokens; training loss
  ``-lp_q + alpha * max(0, lp_c - lp_q + beta)`` (q = correct option, c = the other one);
  with arch ``roberta_mc`` a multiple-choice head ranks ``<s> left+option </s> </s> right </s>``.
"""

from __future__ import annotations

from .._lazy import lazy_getattr

#: what this family declares (tasks/__init__.py derives its registries from these)
DATASETS = ("csqa", "winogrande", "race", "demo_cs_easy", "demo_cs_hard")
ARCHS = ("roberta_mc", "roberta_mlm")
#: how rows are turned into token ids (a dataset setting ``input_format`` overrides the default)
INPUT_FORMATS = ("csqa", "race", "winogrande")
_DEFAULT_INPUT = {"csqa": "csqa", "race": "race", "winogrande": "winogrande",
                  "demo_cs_easy": "csqa", "demo_cs_hard": "csqa"}

# The family's contract (prepare, make_pretrained, TASK) and helpers load on first use, so that
# importing the declarations above costs nothing (planning reads them without torch).
_SUBMODULES = ("task", "model", "data", "synthetic")

__getattr__ = lazy_getattr(__name__, _SUBMODULES)
