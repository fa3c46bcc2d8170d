# dense → sparse training (method × level × seed), IMP round k from round k-1. Before-training
# masks (omp_before, random_before, snip) are computed inside the training job, seeded, so methods
# that share one (snip, snip+rigl) get the same mask without a job of its own. Evaluation
# (validation for selection, test for the report) runs inside each training
# job on the selected checkpoint, so no second job reloads the model. Each job's params carry its
# own settings (canonical JSON) and the version of the code that defines it (`code`: the shared
# loop, its family, its method; smcbench.versions), so a code edit reruns exactly its jobs.


rule dense:
    input:
        data="results/{suite}/data/{dataset}/{fold}/meta.json",
        pretrained="results/{suite}/pretrained/{model}/pretrained.json",
    output:
        metrics="results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/metrics.json",
        model="results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/model.safetensors",
        layerwise="results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/layerwise.csv",
        drift="results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/drift.csv",
    params:
        p=lambda w: C.train_params(config, w.dataset, w.model, "dense", "-", "s0"),
        code=lambda w: job_version(w.dataset, "dense"),
    log:
        "results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/log.txt",
    benchmark:
        "results/{suite}/runs/{dataset}/{fold}/{model}/dense/seed{seed}/benchmark.tsv"
    threads: resource("train", "threads")
    resources:
        gpu=resource("train", "gpu"),
        runtime=runtime("train"),
        mem_mb=resource("train", "mem_mb"),
    conda:
        model_env
    shell:
        "python -m smcbench train --params {params.p:q} --data $(dirname {input.data}) "
        "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output.metrics}) "
        "--threads {threads} --log {log} --save-model"


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics="results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/metrics.json",
        layerwise="results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/layerwise.csv",
        mask="results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/mask.safetensors",
    params:
        p=lambda w: C.train_params(config, w.dataset, w.model, w.method, C.scope_from_path(w.scope), w.level),
        code=lambda w: job_version(w.dataset, w.method),
        starts=lambda w, input: start_args(input),
    log:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/log.txt",
    benchmark:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/benchmark.tsv"
    threads: resource("train", "threads")
    resources:
        gpu=resource("train", "gpu"),
        runtime=runtime("train"),
        mem_mb=resource("train", "mem_mb"),
    conda:
        model_env
    shell:
        "python -m smcbench train --params {params.p:q} --data $(dirname {input.data}) "
        "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output.metrics}) "
        "--threads {threads} --log {log} {params.starts}"


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
        code=lambda w: job_version(w.dataset, w.imp),
        starts=lambda w, input: start_args(input),
    log:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/log.txt",
    benchmark:
        "results/{suite}/runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/benchmark.tsv"
    threads: resource("train", "threads")
    resources:
        gpu=resource("train", "gpu"),
        runtime=runtime("train"),
        mem_mb=resource("train", "mem_mb"),
    conda:
        model_env
    shell:
        "python -m smcbench train --params {params.p:q} --data $(dirname {input.data}) "
        "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output.metrics}) "
        "--threads {threads} --log {log} {params.starts} --save-model"
