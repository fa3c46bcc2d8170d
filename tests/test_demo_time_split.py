"""The demo's end-of-run time split is read from Snakemake's own log (smcbench.demo.time_split)."""

import time

from smcbench.demo import format_time_split, time_split

# what Snakemake 9 writes to .snakemake/log/ under --quiet=rules: finish time stamps only
LOG = """Building DAG of jobs...
Select jobs to execute...
Execute 2 jobs...
[Mon Nov 30 10:00:05 2026]
Finished jobid: 3 (Rule: download_model)
1 of 5 steps (20%) done
[Mon Nov 30 10:00:15 2026]
Finished jobid: 4 (Rule: pretrained)
[Mon Nov 30 10:00:19 2026]
Finished jobid: 7 (Rule: dense)
[Mon Nov 30 10:00:21 2026]
Finished jobid: 8 (Rule: train)
[Mon Nov 30 10:00:30 2026]
Finished jobid: 9 (Rule: analysis_matching)
"""

CSV = """family,dataset,method,split,value,wall_time_s,run_dir
protein,demo_protein2,dense,validation,90,4.5,r/a
protein,demo_protein2,dense,test,91,4.5,r/a
translation,demo_mt_easy,gmp,test,20,5.25,r/b
"""


def test_time_split_from_finish_stamps_and_the_runs_own_times(tmp_path):
    log, csv = tmp_path / "x.snakemake.log", tmp_path / "results.csv"
    log.write_text(LOG)
    csv.write_text(CSV)
    started = time.mktime(time.strptime("Mon Nov 30 10:00:00 2026", "%a %b %d %H:%M:%S %Y"))
    split = time_split(log, csv, started)
    assert split["planning"] == 5 and split["jobs"] == 25 and split["n_jobs"] == 5
    assert split["setup_jobs"] == {"n": 2, "wall": 15}
    assert split["training"] == {"n": 2, "wall": 2}
    assert split["analysis"] == {"n": 1, "wall": 9}
    # one entry per run (a run has several rows), summing the job's own wall time
    assert split["families"] == {"protein": {"n": 1, "job_s": 4.5}, "translation": {"n": 1, "job_s": 5.25}}
    text = format_time_split(split, setup=2, report=3, total=40)
    assert "Snakemake planning" in text and "translation" in text and "HTML report" in text


def test_time_split_without_results_csv(tmp_path):
    log = tmp_path / "x.snakemake.log"
    log.write_text(LOG)
    split = time_split(log, tmp_path / "missing.csv", 0.0)
    assert split["families"] == {} and split["n_jobs"] == 5
