# dense → sparse training (method × level × seed), IMP round k from round k-1. Before-training
# masks (omp_before, random_before, snip) are computed inside the training job, seeded, so methods
# that share one (snip, snip+rigl) get the same mask without a job of its own. Evaluation
# (validation for selection, test for the report) runs inside each training
# job on the selected checkpoint, so no second job reloads the model. Each job has one param, `job`
# (common.smk): its own settings (canonical JSON, what it receives), the version of the code that
# defines it (`code`: the shared loop, its family, its method; smcbench.versions; tracked, not
# passed), so a code edit reruns exactly its jobs, and the flags naming its start files. One
# callable instead of three: Snakemake's cost per params callable and job is paid once.


rule dense:
    input:
        data=in_suite("data/{dataset}/{fold}/meta.json"),
        pretrained=in_suite("pretrained/{model}/pretrained.json"),
    output:
        metrics=in_suite("runs/{dataset}/{fold}/{model}/dense/seed{seed}/metrics.json"),
        model=in_suite("runs/{dataset}/{fold}/{model}/dense/seed{seed}/model.safetensors"),
        drift=in_suite("runs/{dataset}/{fold}/{model}/dense/seed{seed}/drift.csv"),
    params:
        job=dense_job,
    log:
        in_suite("runs/{dataset}/{fold}/{model}/dense/seed{seed}/log.txt"),
    priority: 10  # the methods that start from the dense weights wait for it
    threads: resource("train", "threads")
    resources:
        gpu=resource("train", "gpu"),
        runtime=runtime("train"),
        mem_mb=resource("train", "mem_mb"),
    conda:
        model_env
    shell:
        "python -m smcbench train --params {params.job[settings]:q} --data $(dirname {input.data}) "
        "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output.metrics}) "
        "--threads {threads} --log {log} --save-model"


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics=in_suite("runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/metrics.json"),
        mask=in_suite("runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/mask.safetensors"),
    params:
        job=train_job,
    log:
        in_suite("runs/{dataset}/{fold}/{model}/{method}/{scope}/{level}/seed{seed}/log.txt"),
    threads: resource("train", "threads")
    resources:
        gpu=resource("train", "gpu"),
        runtime=runtime("train"),
        mem_mb=resource("train", "mem_mb"),
    conda:
        model_env
    shell:
        "python -m smcbench train --params {params.job[settings]:q} --data $(dirname {input.data}) "
        "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output.metrics}) "
        "--threads {threads} --log {log} {params.job[starts]}"


rule train_imp:
    input:
        unpack(imp_inputs),
    output:
        metrics=in_suite("runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/metrics.json"),
        mask=in_suite("runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/mask.safetensors"),
        model=in_suite("runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/model.safetensors"),
    params:
        job=imp_job,
    log:
        in_suite("runs/{dataset}/{fold}/{model}/{imp}/{scope}/{level}/seed{seed}/log.txt"),
    threads: resource("train", "threads")
    resources:
        gpu=resource("train", "gpu"),
        runtime=runtime("train"),
        mem_mb=resource("train", "mem_mb"),
    conda:
        model_env
    shell:
        "python -m smcbench train --params {params.job[settings]:q} --data $(dirname {input.data}) "
        "--pretrained $(dirname {input.pretrained}) --seed {wildcards.seed} --out $(dirname {output.metrics}) "
        "--threads {threads} --log {log} {params.job[starts]} --save-model"
