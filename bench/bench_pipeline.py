"""Pipeline costs that are not training: DAG planning and per-job start-up.

    .venv/bin/python bench/bench_pipeline.py [--repeats 3] [--skip-server]

1. `snakemake -n` on the paper grid (config.yaml, every family) and, side by side (interleaved,
   same machine state), on a synthetic Snakefile with the same number of jobs per rule and the
   same shape (wildcard rules, input functions, one aggregate over every run, the analyses): the
   paper grid's planning time over Snakemake's own floor for a DAG of that size. A second synthetic
   Snakefile also has the same files per job (outputs, log, benchmark, inputs; the analyses' declared
   run files): the floor for a DAG with that many files, which the first cannot show. A third copy
   of the job-count Snakefile sets the garbage collector as the paper grid's Snakefile does (its
   top-level ``gc.`` lines), so the comparison can also be read like for like.
2. Per-job start-up of one demo step (`python -m smcbench prepare demo_cs_easy …`, which imports
   the commonsense family, i.e. torch + transformers): a cold process vs the warm job server
   (`smcbench serve`), interleaved, median of the repeats. The ratio is what the demo saves per job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"variant": "easy", "world_seed": 7, "n_train": 40, "n_test": 20, "validation_fraction": 0.2,
            "max_length": 32}


CPU: list[float] = []  # CPU seconds (user + sys) of each timed command, in order


def timed(cmd, env, cwd=ROOT) -> float:
    """Wall seconds of ``cmd``; its CPU seconds go to ``CPU`` (less sensitive to other load)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


SYNTHETIC = """
# Synthetic workflow: the paper grid's job counts per rule, trivial params, no imports.
COUNTS = {counts!r}
N = lambda rule: COUNTS.get(rule, 0)


def upstream(rule, i):
    return f"syn/{{rule}}/{{int(i) % N(rule)}}.out"


rule all_figures:
    input: [f"syn/analysis/{{i}}.out" for i in range(N("analysis"))]

rule analysis:
    input: "syn/results/0.out"
    output: "syn/analysis/{{i}}.out"
    localrule: True
    shell: "touch {{output}}"

rule results:
    input: [f"syn/{{r}}/{{i}}.out" for r in ("dense", "train", "train_imp") for i in range(N(r))]
    output: "syn/results/{{i}}.out"
    localrule: True
    shell: "touch {{output}}"

rule download:
    output: "syn/download/{{i}}.out"
    shell: "touch {{output}}"

rule prepare:
    input: lambda w: upstream("download", w.i)
    output: "syn/prepare/{{i}}.out"
    params: p=lambda w: f"prepare-{{w.i}}"
    shell: "touch {{output}}"

rule pretrained:
    input: lambda w: upstream("download", w.i)
    output: "syn/pretrained/{{i}}.out"
    params: p=lambda w: f"pretrained-{{w.i}}"
    shell: "touch {{output}}"

rule dense:
    input: lambda w: [upstream("prepare", w.i), upstream("pretrained", w.i)]
    output: "syn/dense/{{i}}.out"
    params: p=lambda w: f"dense-{{w.i}}"
    shell: "touch {{output}}"

rule train:
    input: lambda w: [upstream("prepare", w.i), upstream("pretrained", w.i), upstream("dense", w.i)]
    output: "syn/train/{{i}}.out"
    params: p=lambda w: f"train-{{w.i}}"
    shell: "touch {{output}}"

rule train_imp:
    input: lambda w: [upstream("prepare", w.i), upstream("dense", w.i)]
    output: "syn/train_imp/{{i}}.out"
    params: p=lambda w: f"imp-{{w.i}}"
    shell: "touch {{output}}"
"""


SHAPED_HEAD = """
# Synthetic workflow: the paper grid's jobs AND files per job (outputs, log, benchmark, inputs).
COUNTS = {counts!r}
SHAPE = {shape!r}
N = lambda rule: COUNTS.get(rule, 0)
UP = {{"prepare": ["download"], "pretrained": ["download"], "dense": ["prepare", "pretrained"],
      "train": ["prepare", "pretrained", "dense"], "train_imp": ["prepare", "pretrained", "train_imp"]}}
RUN_FILES = [f"syn/{{r}}/{{i}}.o{{k}}" for r in ("dense", "train", "train_imp") for i in range(N(r))
             for k in range(SHAPE[r]["output"])]


def outs(rule):
    return [f"syn/{{rule}}/{{{{i}}}}.o{{k}}" for k in range(SHAPE[rule]["output"])]


def upstream_file(up, rule, i):
    if up == rule:  # an IMP round starts from the previous one (chains of 10 rounds)
        return f"syn/{{rule}}/{{i - 1}}.o0" if i % 10 else None
    if up == "download" and rule == "pretrained":  # datasets' downloads first, then the models'
        i += N("prepare")
    return f"syn/{{up}}/{{i % N(up)}}.o0"


def inputs(rule):
    ups, n = UP.get(rule, []), SHAPE[rule]["input"]
    return lambda w: [f for f in (upstream_file(ups[j % len(ups)], rule, int(w.i)) for j in range(n)) if f]


rule all_figures:
    input: [f"syn/{{a}}.o0" for a in SHAPE["analyses"]]

rule results:
    input: [f"syn/{{r}}/{{i}}.o0" for r in ("dense", "train", "train_imp") for i in range(N(r))]
    output: [f"syn/results/0.o{{k}}" for k in range(SHAPE["results"]["output"])]
    log: "syn/results/0.log"
    localrule: True
    shell: "touch {{output}}"
"""

SHAPED_RULE = """
rule {rule}:
    input: inputs("{rule}")
    output: outs("{rule}")
    params: p=lambda w: f"{rule}-{{w.i}}"
    {log}
    {benchmark}
    shell: "touch {{output}}"
"""

SHAPED_ANALYSIS = """
rule {name}:
    input: ["syn/results/0.o0"] + RUN_FILES[:{n_in}]
    output: [f"syn/{name}.o{{k}}" for k in range({n_out})]
    log: "syn/{name}.log"
    localrule: True
    shell: "touch {{output}}"
"""


def shaped_snakefile(counts: dict[str, int], shape: dict) -> str:
    text = SHAPED_HEAD.format(counts=counts, shape={**shape, "analyses": list(shape["analyses"])})
    for rule in ("download", "prepare", "pretrained", "dense", "train", "train_imp"):
        if counts.get(rule):
            s = shape[rule]
            text += SHAPED_RULE.format(rule=rule, log=f'log: "syn/{rule}/{{i}}.log"' if s["log"] else "",
                                       benchmark=f'benchmark: "syn/{rule}/{{i}}.tsv"' if s["benchmark"] else "")
    for name, s in shape["analyses"].items():
        text += SHAPED_ANALYSIS.format(name=name, n_in=s["input"] - 1, n_out=s["output"])
    return text


def job_shapes(stdout: str) -> dict:
    """Per rule of a dry run's job listing: files per job (inputs: mean; others: max)."""
    per: dict[str, dict[str, list[int]]] = {}
    rule = None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            per.setdefault(rule, {"input": [], "output": [], "log": [], "benchmark": []})
            for key in per[rule]:
                per[rule][key].append(0)
        elif rule and line.startswith("    ") and ":" in line:
            key, _, files = line.strip().partition(": ")
            if key in ("input", "output", "log", "benchmark"):
                per[rule][key][-1] = len(files.split(", "))
    shape: dict = {"analyses": {}}
    for rule, d in per.items():
        s = {"input": round(sum(d["input"]) / len(d["input"])), "output": max(d["output"]),
             "log": max(d["log"]), "benchmark": max(d["benchmark"])}
        if rule.startswith("analysis_"):
            shape["analyses"][rule] = s
        elif rule.startswith("download_"):
            shape["download"] = s
        else:
            shape[rule] = s
    return shape


def job_counts(snakemake, env, tmp) -> tuple[dict[str, int], dict]:
    out = subprocess.run([snakemake, "-n", "--cores", "1", "-s", str(ROOT / "Snakefile"), "--directory", tmp,
                          "all_figures", "--configfile", str(ROOT / "config.yaml")], env=env,
                         capture_output=True, text=True, check=True)
    counts, in_table = {}, False
    for line in out.stdout.splitlines():
        if line.startswith("Job stats"):
            in_table = True
            continue
        parts = line.split()
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts, job_shapes(out.stdout)


def gc_lines() -> str:
    """The paper grid Snakefile's own garbage-collector settings (its top-level ``gc.`` lines)."""
    lines = [ln for ln in (ROOT / "Snakefile").read_text().splitlines() if ln.startswith("gc.")]
    return "import gc\n" + "\n".join(lines) + "\n" if lines else ""


def synthetic_counts(real: dict[str, int]) -> dict[str, int]:
    syn = {"download": real.get("download_dataset", 0) + real.get("download_model", 0), "analysis": 0}
    for rule, n in real.items():
        if rule.startswith("analysis_"):
            syn["analysis"] += n
        elif rule in ("prepare", "pretrained", "dense", "train", "train_imp", "results"):
            syn[rule] = n
    return syn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-server", action="store_true", help="only the planning comparison")
    a = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    snakemake = str(Path(sys.executable).with_name("snakemake"))

    with tempfile.TemporaryDirectory() as tmp:
        real, shape = job_counts(snakemake, env, tmp)
        syn = synthetic_counts(real)
        synfile = Path(tmp) / "Synthetic.smk"
        synfile.write_text(SYNTHETIC.format(counts=syn))
        shapedfile = Path(tmp) / "Shaped.smk"
        shapedfile.write_text(shaped_snakefile(syn, shape))
        gcfile = Path(tmp) / "SyntheticGC.smk"
        gcfile.write_text(gc_lines() + SYNTHETIC.format(counts=syn))
        def dry_run(snakefile, *extra):
            return [snakemake, "-n", "-q", "--cores", "1", "-s", str(snakefile), "--directory", tmp, "all_figures",
                    *extra]

        paper_cmd = dry_run(ROOT / "Snakefile", "--configfile", str(ROOT / "config.yaml"))
        syn_cmd, shaped_cmd, gc_cmd = dry_run(synfile), dry_run(shapedfile), dry_run(gcfile)
        plan, floor, shaped, floor_gc = [], [], [], []
        CPU.clear()
        for _ in range(a.repeats):  # interleaved: all see the same machine load
            plan.append(timed(paper_cmd, env))
            floor.append(timed(syn_cmd, env))
            shaped.append(timed(shaped_cmd, env))
            floor_gc.append(timed(gc_cmd, env))
    p, f, s, g = (statistics.median(x) for x in (plan, floor, shaped, floor_gc))
    pc, fc, sc, gcc = (statistics.median(CPU[i::4]) for i in range(4))
    print(f"snakemake -n, paper grid ({sum(real.values())} jobs: {real}): median {p:.2f} s over {a.repeats} "
          f"({', '.join(f'{x:.2f}' for x in plan)})")
    print(f"snakemake -n, synthetic Snakefile with the same job counts ({sum(syn.values())} jobs + all_figures): "
          f"median {f:.2f} s ({', '.join(f'{x:.2f}' for x in floor)}); ratio {p / f:.2f}x")
    print(f"snakemake -n, synthetic Snakefile with the same jobs and files per job: median {s:.2f} s "
          f"({', '.join(f'{x:.2f}' for x in shaped)}); ratio {p / s:.2f}x")
    print(f"snakemake -n, synthetic Snakefile with the same job counts and the paper grid's GC settings: median "
          f"{g:.2f} s ({', '.join(f'{x:.2f}' for x in floor_gc)}); ratio {p / g:.2f}x")
    print(f"CPU seconds (user + sys), medians: paper grid {pc:.2f} s, synthetic {fc:.2f} s (ratio {pc / fc:.2f}x), "
          f"same files per job {sc:.2f} s (ratio {pc / sc:.2f}x), same job counts with the paper grid's GC "
          f"settings {gcc:.2f} s (ratio {pc / gcc:.2f}x)")
    if a.skip_server:
        return

    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "s.sock"
        server = subprocess.Popen([sys.executable, "-m", "smcbench", "serve", "--socket", str(sock)], env=env,
                                  stderr=subprocess.DEVNULL)
        while not sock.exists():
            time.sleep(0.05)
        step = [sys.executable, "-m", "smcbench", "prepare", "demo_cs_easy", "--source", "synthetic",
                "--settings", json.dumps(SETTINGS), "--out"]
        cold, warm = [], []
        for i in range(a.repeats):  # interleaved: both see the same machine load
            cold.append(timed(step + [f"{tmp}/cold{i}"], env))
            warm.append(timed(step + [f"{tmp}/warm{i}"], {**env, "SMCBENCH_SERVER": str(sock)}))
        server.terminate()
        server.wait()
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"one demo step (prepare demo_cs_easy): cold process {c:.2f} s, via warm server {w:.2f} s, "
          f"ratio {c / w:.1f}x")


if __name__ == "__main__":
    main()
