# dense → {before-training masks} → sparse training (method × level × seed), IMP round k from
# round k-1. Evaluation (validation for selection, test for the report) runs inside each training
# job on the selected checkpoint, so no second job reloads the model.

TRAIN_CMD = (
    "python -m smcbench train --params {params.p:q} --data $(dirname {input.data}) "
    "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output.metrics}) "
    "--threads {threads} --log {log}"
)


rule dense:
    input:
        data="results/{suite}/data/{dataset}/{fold}/meta.json",
        pretrained="results/{suite}/pretrained/{model}/pretrained.json",
    output:
        metrics="results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/metrics.json",
        model="results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/model.safetensors",
        layerwise="results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/layerwise.csv",
    params:
        p=lambda w: C.train_params(config, w.dataset, w.model, "dense", "-", "s0"),
    log:
        "results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/log.txt",
    benchmark:
        "results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/benchmark.tsv"
    threads: res("train", "threads", 1)
    resources:
        gpu=res("train", "gpu", 1),
        runtime=res("train", "runtime", 240),
        mem_mb=res("train", "mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        TRAIN_CMD + " --save-model"


rule mask:
    input:
        data="results/{suite}/data/{dataset}/{fold}/meta.json",
        pretrained="results/{suite}/pretrained/{model}/pretrained.json",
    output:
        "results/{suite}/masks/{dataset}/{fold}/{model}/{init}/{scope}/{level}/seed{seed}/mask.safetensors",
    params:
        p=lambda w: C.mask_params(config, w.dataset, w.model, w.init, C.scope_from_path(w.scope), w.level),
    log:
        "results/{suite}/masks/{dataset}/{fold}/{model}/{init}/{scope}/{level}/seed{seed}/log.txt",
    threads: res("mask", "threads", 1)
    resources:
        gpu=res("mask", "gpu", 1),
        runtime=res("mask", "runtime", 60),
        mem_mb=res("mask", "mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m smcbench mask --params {params.p:q} --data $(dirname {input.data}) "
        "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output}) "
        "--threads {threads} --log {log}"


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics="results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/metrics.json",
        layerwise="results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/layerwise.csv",
        mask="results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/mask.safetensors",
    params:
        p=lambda w: C.train_params(config, w.dataset, w.model, w.method, C.scope_from_path(w.scope), w.level),
        start=lambda w, input: f"--start-weights {input.start}" if "start" in input.keys() else "",
        mask=lambda w, input: f"--prev-mask {input.mask}" if "mask" in input.keys() else "",
    log:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/log.txt",
    benchmark:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/benchmark.tsv"
    threads: res("train", "threads", 1)
    resources:
        gpu=res("train", "gpu", 1),
        runtime=res("train", "runtime", 240),
        mem_mb=res("train", "mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        TRAIN_CMD + " {params.start} {params.mask}"


rule train_imp:
    input:
        unpack(imp_inputs),
    output:
        metrics="results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/metrics.json",
        layerwise="results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/layerwise.csv",
        mask="results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/mask.safetensors",
        model="results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/model.safetensors",
    params:
        p=lambda w: C.train_params(config, w.dataset, w.model, w.imp, C.scope_from_path(w.scope), w.level),
        mask=lambda w, input: f"--prev-mask {input.mask}" if "mask" in input.keys() else "",
    log:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/log.txt",
    benchmark:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/benchmark.tsv"
    threads: res("train", "threads", 1)
    resources:
        gpu=res("train", "gpu", 1),
        runtime=res("train", "runtime", 240),
        mem_mb=res("train", "mem_mb", 32000),
    conda:
        "../../envs/torch.yaml"
    shell:
        TRAIN_CMD + " --start-weights {input.start} {params.mask} --save-model"
