# download → prepare → pretrained, all with a high priority: every training job waits for them (a
# priority is not inherited by a job's inputs, so each of the three carries it). Downloads are
# pinned, verified and cached under resources/cache; they are local rules (run where Snakemake
# runs: login nodes have the network, compute nodes often do not).


rule download_dataset:
    output:
        in_suite("downloads/datasets/{dataset}/source.json"),
    params:
        source=cheap(lambda w: download_spec(config["datasets"][w.dataset])),
    log:
        in_suite("logs/download_dataset/{dataset}.log"),
    priority: 20
    localrule: True
    conda:
        ENV_TORCH
    shell:
        "python -m smcbench download {wildcards.dataset} --source {params.source:q} --out {output} "
        "--repo-type dataset --cache resources/cache 2> {log}"


rule download_model:
    output:
        in_suite("downloads/models/{model}/source.json"),
    params:
        source=cheap(lambda w: download_spec(config["models"][w.model])),
    log:
        in_suite("logs/download_model/{model}.log"),
    priority: 20
    localrule: True
    conda:
        ENV_TORCH
    shell:
        "python -m smcbench download {wildcards.model} --source {params.source:q} --out {output} "
        "--repo-type model --cache resources/cache 2> {log}"


rule prepare:
    input:
        in_suite("downloads/datasets/{dataset}/source.json"),
    output:
        meta=in_suite("data/{dataset}/{fold}/meta.json"),
        train=in_suite("data/{dataset}/{fold}/train.jsonl"),
        validation=in_suite("data/{dataset}/{fold}/validation.jsonl"),
    priority: 20
    params:
        settings=prepare_settings,
        family=prepare_family,
        code=prepare_code,
    log:
        in_suite("logs/prepare/{dataset}_{fold}.log"),
    threads: resource("prepare", "threads")
    resources:
        gpu=resource("prepare", "gpu"),
        runtime=runtime("prepare"),
        mem_mb=resource("prepare", "mem_mb"),
    conda:
        ENV_TORCH
    shell:
        "python -m smcbench prepare {wildcards.dataset} --family {params.family} --source-json {input} "
        "--settings {params.settings:q} --fold {wildcards.fold} --out $(dirname {output.meta}) 2> {log}"


rule pretrained:
    input:
        in_suite("downloads/models/{model}/source.json"),
    output:
        in_suite("pretrained/{model}/pretrained.json"),
    params:
        entry=pretrained_entry,
        code=pretrained_code,
    log:
        in_suite("logs/pretrained/{model}.log"),
    priority: 20
    threads: resource("pretrained", "threads")
    resources:
        gpu=resource("pretrained", "gpu"),
        runtime=runtime("pretrained"),
        mem_mb=resource("pretrained", "mem_mb"),
    conda:
        model_env
    shell:
        "python -m smcbench pretrained {wildcards.model} --entry {params.entry:q} --source-json {input} "
        "--threads {threads} --out $(dirname {output}) 2> {log}"
