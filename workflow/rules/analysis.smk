# Analyses, figures and tables of a suite (SPEC §4), all computed from results/{suite}/results.csv
# (+ layerwise.csv, every run's per-tensor sparsity) and the per-run files it points to, each
# declared as an input (analysis_run_files). Every output
# is fixed-name (panels live inside the figures), so the targets do not depend on the data. Each is
# in the `snakemake --report` HTML with the caption in workflow/report/<name>.rst. Logic lives in
# smcbench.analysis; helpers in common.smk.


rule analysis_curves:
    input:
        **ANALYSIS_INPUT,
        runs=analysis_run_files("curves"),
    output:
        png=_rep("figures/metric_vs_sparsity.png", "metric_vs_sparsity", "1. Metric vs sparsity", "figure"),
        pdf=_rep("figures/metric_vs_sparsity.pdf", "metric_vs_sparsity", "1. Metric vs sparsity", "figure (PDF)"),
        csv=_rep("tables/curves.csv", "curves_table", "1. Metric vs sparsity", "table"),
    log:
        in_suite("logs/analysis_curves.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("curves")


rule analysis_matching:
    input:
        **ANALYSIS_INPUT,
        runs=analysis_run_files("matching"),
    output:
        md=_rep("tables/matching_sparsity.md", "matching_sparsity", "0. Matching sparsity", "table (Markdown)"),
        csv=_rep("tables/matching_sparsity.csv", "matching_sparsity", "0. Matching sparsity", "table"),
        missing=_rep("tables/missing_runs.csv", "missing_runs", "0. Matching sparsity", "missing runs"),
        png=_rep("figures/matching_sparsity.png", "matching_sparsity_figure", "0. Matching sparsity", "figure"),
        pdf=_rep("figures/matching_sparsity.pdf", "matching_sparsity_figure", "0. Matching sparsity",
                 "figure (PDF)"),
    log:
        in_suite("logs/analysis_matching.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("matching")


rule analysis_layerwise:
    input:
        **ANALYSIS_INPUT,
        layerwise=in_suite("layerwise.csv"),
        runs=analysis_run_files("layerwise"),
    output:
        **{f"png_{f}": _rep(f"figures/layerwise_sparsity_{f}.png", "layerwise_sparsity", "2. Layerwise sparsity",
                            f"{f}") for f in ANALYSIS_FAMILIES},
        **{f"pdf_{f}": _rep(f"figures/layerwise_sparsity_{f}.pdf", "layerwise_sparsity", "2. Layerwise sparsity",
                            f"{f} (PDF)") for f in ANALYSIS_FAMILIES},
        csv=_rep("tables/layerwise_sparsity.csv", "layerwise_sparsity", "2. Layerwise sparsity", "table"),
    log:
        in_suite("logs/analysis_layerwise.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("layerwise")


rule analysis_iou:
    input:
        **ANALYSIS_INPUT,
        layerwise=in_suite("layerwise.csv"),
        runs=analysis_run_files("iou"),
    output:
        **{f"png_{f}": _rep(f"figures/mask_iou_{f}.png", "mask_iou", "3. Lazy regime", f"mask IoU, {f}")
           for f in ANALYSIS_FAMILIES},
        **{f"pdf_{f}": _rep(f"figures/mask_iou_{f}.pdf", "mask_iou", "3. Lazy regime", f"mask IoU, {f} (PDF)")
           for f in ANALYSIS_FAMILIES},
        **{f"png_layers_{f}": _rep(f"figures/mask_iou_layers_{f}.png", "mask_iou_layers", "3. Lazy regime",
                                   f"mask IoU per layer, {f}") for f in ANALYSIS_FAMILIES},
        **{f"pdf_layers_{f}": _rep(f"figures/mask_iou_layers_{f}.pdf", "mask_iou_layers", "3. Lazy regime",
                                   f"mask IoU per layer, {f} (PDF)") for f in ANALYSIS_FAMILIES},
        csv=_rep("tables/mask_iou.csv", "mask_iou", "3. Lazy regime", "mask IoU table"),
    log:
        in_suite("logs/analysis_iou.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("iou")


rule analysis_drift:
    input:
        **ANALYSIS_INPUT,
        runs=analysis_run_files("drift"),
    output:
        png=_rep("figures/weight_drift.png", "weight_drift", "3. Lazy regime", "weight drift"),
        pdf=_rep("figures/weight_drift.pdf", "weight_drift", "3. Lazy regime", "weight drift (PDF)"),
        csv=_rep("tables/weight_drift.csv", "weight_drift", "3. Lazy regime", "weight drift table"),
    log:
        in_suite("logs/analysis_drift.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("drift")


rule analysis_embeddings:
    input:
        **ANALYSIS_INPUT,
        runs=analysis_run_files("embeddings"),
    output:
        png=_rep("figures/embeddings_ablation.png", "embeddings_ablation", "4. Ablations", "embeddings pruned or not"),
        pdf=_rep("figures/embeddings_ablation.pdf", "embeddings_ablation", "4. Ablations", "embeddings pruned or not (PDF)"),
        md=_rep("tables/embeddings_ablation.md", "embeddings_ablation", "4. Ablations", "embeddings table (Markdown)"),
        csv=_rep("tables/embeddings_ablation.csv", "embeddings_ablation", "4. Ablations", "embeddings table"),
    log:
        in_suite("logs/analysis_embeddings.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("embeddings")


rule analysis_obert:
    input:
        **ANALYSIS_INPUT,
        runs=analysis_run_files("obert"),
    output:
        png=_rep("figures/obert_roadmap.png", "obert_roadmap", "4. Ablations", "oBERT roadmap"),
        pdf=_rep("figures/obert_roadmap.pdf", "obert_roadmap", "4. Ablations", "oBERT roadmap (PDF)"),
        csv=_rep("tables/obert_roadmap.csv", "obert_roadmap", "4. Ablations", "oBERT table"),
    log:
        in_suite("logs/analysis_obert.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("obert")


rule analysis_modulewise:
    input:
        **ANALYSIS_INPUT,
        runs=analysis_run_files("modulewise"),
    output:
        md=_rep("tables/modulewise.md", "modulewise", "4. Ablations", "module-wise 5% (Markdown)"),
        csv=_rep("tables/modulewise.csv", "modulewise", "4. Ablations", "module-wise 5%"),
    log:
        in_suite("logs/analysis_modulewise.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("modulewise")


rule analysis_cost:
    input:
        **ANALYSIS_INPUT,
        runs=analysis_run_files("cost"),
    output:
        png=_rep("figures/cost_vs_metric.png", "cost_vs_metric", "5. Cost", "figure"),
        pdf=_rep("figures/cost_vs_metric.pdf", "cost_vs_metric", "5. Cost", "figure (PDF)"),
        csv=_rep("tables/cost.csv", "cost_table", "5. Cost", "per method"),
        runs=_rep("tables/cost_runs.csv", "cost_table", "5. Cost", "per run"),
    log:
        in_suite("logs/analysis_cost.log"),
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        _analyze("cost")
