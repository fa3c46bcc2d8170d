# download → prepare → pretrained. Downloads are checksummed and cached under resources/cache.


rule download_dataset:
    output:
        "results/{suite}/downloads/datasets/{dataset}/source.json",
    params:
        source=lambda w: config["datasets"][w.dataset]["source"],
    log:
        "results/{suite}/logs/download_dataset/{dataset}.log",
    resources:
        runtime=res("download", "runtime", 120),
        mem_mb=res("download", "mem_mb", 4000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m smcbench download {wildcards.dataset} --source {params.source:q} --out {output} "
        "--repo-type dataset --cache resources/cache 2> {log}"


rule download_model:
    output:
        "results/{suite}/downloads/models/{model}/source.json",
    params:
        source=lambda w: config["models"][w.model]["source"],
    log:
        "results/{suite}/logs/download_model/{model}.log",
    resources:
        runtime=res("download", "runtime", 120),
        mem_mb=res("download", "mem_mb", 4000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m smcbench download {wildcards.model} --source {params.source:q} --out {output} "
        "--repo-type model --cache resources/cache 2> {log}"


rule prepare:
    input:
        "results/{suite}/downloads/datasets/{dataset}/source.json",
    output:
        meta="results/{suite}/data/{dataset}/{fold}/meta.json",
        train="results/{suite}/data/{dataset}/{fold}/train.jsonl",
        validation="results/{suite}/data/{dataset}/{fold}/validation.jsonl",
    params:
        settings=lambda w: C.prepare_params(config, w.dataset),
        family=lambda w: config["datasets"][w.dataset]["family"],
    log:
        "results/{suite}/logs/prepare/{dataset}_{fold}.log",
    resources:
        runtime=res("prepare", "runtime", 60),
        mem_mb=res("prepare", "mem_mb", 8000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m smcbench prepare {wildcards.dataset} --family {params.family} --source-json {input} "
        "--settings {params.settings:q} --fold {wildcards.fold} --out $(dirname {output.meta}) 2> {log}"


rule pretrained:
    input:
        "results/{suite}/downloads/models/{model}/source.json",
    output:
        "results/{suite}/pretrained/{model}/pretrained.json",
    params:
        entry=lambda w: C.pretrained_params(config, w.model),
    log:
        "results/{suite}/logs/pretrained/{model}.log",
    threads: res("pretrained", "threads", 2)
    resources:
        gpu=res("pretrained", "gpu", 0),
        runtime=res("pretrained", "runtime", 60),
        mem_mb=res("pretrained", "mem_mb", 8000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m smcbench pretrained {wildcards.model} --entry {params.entry:q} --source-json {input} "
        "--threads {threads} --out $(dirname {output}) 2> {log}"
