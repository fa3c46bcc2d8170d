# Every run's metrics.json → the tidy results table, the per-tensor sparsity of every run
# (layerwise.csv, from the `layerwise` rows of each metrics.json), and the resolved config and
# primary metrics the analyses read.


rule results:
    input:
        [run_metrics(r) for r in RUNS],
    output:
        table=f"results/{SUITE}/results.csv",
        layerwise=f"results/{SUITE}/layerwise.csv",
        config=f"results/{SUITE}/config.json",
        primary=f"results/{SUITE}/primary_metrics.json",
    params:
        extras=extras_json(),
        config=C.canonical_json(analysis_view(config)),
    log:
        f"results/{SUITE}/logs/results.log",
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        "python -m smcbench results --metrics {input} --extras {params.extras:q} --config {params.config:q} "
        "--out {output.table} 2> {log}"
