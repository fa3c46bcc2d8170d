"""The demo's end-of-run time split is read from Snakemake's own log (smcbench.demo.time_split)."""

import time

from smcbench.demo import format_time_split, time_split

LOG = """Building DAG of jobs...
[Mon Nov 30 10:00:05 2026]
localrule pretrained:
    output: results/demo/pretrained/demo_esm/pretrained.json
    jobid: 3
    wildcards: suite=demo, model=demo_esm
[Mon Nov 30 10:00:15 2026]
Finished jobid: 3 (Rule: pretrained)
[Mon Nov 30 10:00:15 2026]
localrule dense:
    jobid: 7
    wildcards: suite=demo, dataset=demo_protein2, fold=all, model=demo_esm, seed=0
[Mon Nov 30 10:00:16 2026]
localrule train:
    jobid: 8
    wildcards: suite=demo, dataset=demo_mt_easy, fold=all, model=demo_mbart, method=gmp, scope=paper, level=s0.2000, seed=0
[Mon Nov 30 10:00:19 2026]
Finished jobid: 7 (Rule: dense)
[Mon Nov 30 10:00:21 2026]
Finished jobid: 8 (Rule: train)
[Mon Nov 30 10:00:21 2026]
localrule analysis_matching:
    jobid: 9
    wildcards: suite=demo
[Mon Nov 30 10:00:30 2026]
Finished jobid: 9 (Rule: analysis_matching)
"""

CONFIG = """datasets:
  demo_protein2: {family: protein}
  demo_mt_easy: {family: translation}
models:
  demo_esm: {family: protein}
  demo_mbart: {family: translation}
"""


def test_time_split_groups_jobs_by_family_and_phase(tmp_path):
    log, cfg = tmp_path / "x.snakemake.log", tmp_path / "c.yaml"
    log.write_text(LOG)
    cfg.write_text(CONFIG)
    started = time.mktime(time.strptime("Mon Nov 30 10:00:00 2026", "%a %b %d %H:%M:%S %Y"))
    split = time_split(log, str(cfg), started)
    assert split["planning"] == 5 and split["jobs"] == 25 and split["n_jobs"] == 4
    g = split["groups"]
    assert g["protein: data + pre-training"] == {"n": 1, "job_s": 10, "first": started + 5, "last": started + 15}
    assert (g["protein: training"]["n"], g["protein: training"]["job_s"]) == (1, 4)
    assert (g["translation: training"]["n"], g["translation: training"]["job_s"]) == (1, 5)
    assert (g["analysis, results table, figures"]["n"], g["analysis, results table, figures"]["job_s"]) == (1, 9)
    text = format_time_split(split, setup=2, report=3, total=40)
    assert "Snakemake planning" in text and "protein: training" in text and text.index("protein: data") < text.index("analysis")
