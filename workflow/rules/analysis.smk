# Analyses, figures and tables of a suite (SPEC §4), all computed from results/{suite}/results.csv
# and the per-run files it points to. Every output is fixed-name (panels live inside the figures),
# so the targets do not depend on the data. Each is in the `snakemake --report` HTML with the
# caption in workflow/report/<name>.rst. Logic lives in smcbench.analysis (no imports here).

ANALYSIS_OUTPUTS = {
    "curves": ["figures/metric_vs_sparsity.png", "figures/metric_vs_sparsity.pdf", "tables/curves.csv"],
    "matching": ["tables/matching_sparsity.md", "tables/matching_sparsity.csv", "tables/missing_runs.csv"],
    "layerwise": ["figures/layerwise_sparsity.png", "figures/layerwise_sparsity.pdf",
                  "tables/layerwise_sparsity.csv"],
    "iou": ["figures/mask_iou.png", "figures/mask_iou.pdf", "figures/mask_iou_layers.png",
            "figures/mask_iou_layers.pdf", "tables/mask_iou.csv"],
    "drift": ["figures/weight_drift.png", "figures/weight_drift.pdf", "tables/weight_drift.csv"],
    "embeddings": ["figures/embeddings_ablation.png", "figures/embeddings_ablation.pdf",
                   "tables/embeddings_ablation.md", "tables/embeddings_ablation.csv"],
    "obert": ["figures/obert_roadmap.png", "figures/obert_roadmap.pdf", "tables/obert_roadmap.csv"],
    "modulewise": ["tables/modulewise.md", "tables/modulewise.csv"],
    "cost": ["figures/cost_vs_metric.png", "figures/cost_vs_metric.pdf", "tables/cost.csv",
             "tables/cost_runs.csv"],
}


def analysis_targets(suite):
    """Every figure and table of the analyses of `suite` (the inputs of `all_figures`)."""
    return [f"results/{suite}/{rel}" for outs in ANALYSIS_OUTPUTS.values() for rel in outs]


ANALYSIS_INPUT = {
    "results": "results/{suite}/results.csv",
    "primary": "results/{suite}/primary_metrics.json",
    "config": "results/{suite}/config.json",
}


def _analyze(sub):
    """The shell command of one analysis subcommand; warnings go to the console and the log."""
    return (f"python -m smcbench analyze {sub} --results {{input.results}} "
            "--primary-metrics {input.primary} --config {input.config} --out results/{wildcards.suite} "
            "2>&1 | tee {log}")


def _rep(rel, caption, category, subcategory):
    return report(f"results/{{suite}}/{rel}", caption=f"../report/{caption}.rst",
                  category=category, subcategory=subcategory)


wildcard_constraints:
    suite=r"[^/]+",


rule analysis_curves:
    input:
        **ANALYSIS_INPUT,
    output:
        png=_rep("figures/metric_vs_sparsity.png", "metric_vs_sparsity", "1. Metric vs sparsity", "figure"),
        pdf=_rep("figures/metric_vs_sparsity.pdf", "metric_vs_sparsity", "1. Metric vs sparsity", "figure (PDF)"),
        csv=_rep("tables/curves.csv", "curves_table", "1. Metric vs sparsity", "table"),
    log:
        "results/{suite}/logs/analysis_curves.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("curves")


rule analysis_matching:
    input:
        **ANALYSIS_INPUT,
    output:
        md=_rep("tables/matching_sparsity.md", "matching_sparsity", "0. Matching sparsity", "table (Markdown)"),
        csv=_rep("tables/matching_sparsity.csv", "matching_sparsity", "0. Matching sparsity", "table"),
        missing=_rep("tables/missing_runs.csv", "missing_runs", "0. Matching sparsity", "missing runs"),
    log:
        "results/{suite}/logs/analysis_matching.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("matching")


rule analysis_layerwise:
    input:
        **ANALYSIS_INPUT,
    output:
        png=_rep("figures/layerwise_sparsity.png", "layerwise_sparsity", "2. Layerwise sparsity", "figure"),
        pdf=_rep("figures/layerwise_sparsity.pdf", "layerwise_sparsity", "2. Layerwise sparsity", "figure (PDF)"),
        csv=_rep("tables/layerwise_sparsity.csv", "layerwise_sparsity", "2. Layerwise sparsity", "table"),
    log:
        "results/{suite}/logs/analysis_layerwise.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("layerwise")


rule analysis_iou:
    input:
        **ANALYSIS_INPUT,
    output:
        png=_rep("figures/mask_iou.png", "mask_iou", "3. Lazy regime", "mask IoU"),
        pdf=_rep("figures/mask_iou.pdf", "mask_iou", "3. Lazy regime", "mask IoU (PDF)"),
        png_layers=_rep("figures/mask_iou_layers.png", "mask_iou_layers", "3. Lazy regime", "mask IoU per layer"),
        pdf_layers=_rep("figures/mask_iou_layers.pdf", "mask_iou_layers", "3. Lazy regime", "mask IoU per layer (PDF)"),
        csv=_rep("tables/mask_iou.csv", "mask_iou", "3. Lazy regime", "mask IoU table"),
    log:
        "results/{suite}/logs/analysis_iou.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("iou")


rule analysis_drift:
    input:
        **ANALYSIS_INPUT,
    output:
        png=_rep("figures/weight_drift.png", "weight_drift", "3. Lazy regime", "weight drift"),
        pdf=_rep("figures/weight_drift.pdf", "weight_drift", "3. Lazy regime", "weight drift (PDF)"),
        csv=_rep("tables/weight_drift.csv", "weight_drift", "3. Lazy regime", "weight drift table"),
    log:
        "results/{suite}/logs/analysis_drift.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("drift")


rule analysis_embeddings:
    input:
        **ANALYSIS_INPUT,
    output:
        png=_rep("figures/embeddings_ablation.png", "embeddings_ablation", "4. Ablations", "embeddings pruned or not"),
        pdf=_rep("figures/embeddings_ablation.pdf", "embeddings_ablation", "4. Ablations", "embeddings pruned or not (PDF)"),
        md=_rep("tables/embeddings_ablation.md", "embeddings_ablation", "4. Ablations", "embeddings table (Markdown)"),
        csv=_rep("tables/embeddings_ablation.csv", "embeddings_ablation", "4. Ablations", "embeddings table"),
    log:
        "results/{suite}/logs/analysis_embeddings.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("embeddings")


rule analysis_obert:
    input:
        **ANALYSIS_INPUT,
    output:
        png=_rep("figures/obert_roadmap.png", "obert_roadmap", "4. Ablations", "oBERT roadmap"),
        pdf=_rep("figures/obert_roadmap.pdf", "obert_roadmap", "4. Ablations", "oBERT roadmap (PDF)"),
        csv=_rep("tables/obert_roadmap.csv", "obert_roadmap", "4. Ablations", "oBERT table"),
    log:
        "results/{suite}/logs/analysis_obert.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("obert")


rule analysis_modulewise:
    input:
        **ANALYSIS_INPUT,
    output:
        md=_rep("tables/modulewise.md", "modulewise", "4. Ablations", "module-wise 5% (Markdown)"),
        csv=_rep("tables/modulewise.csv", "modulewise", "4. Ablations", "module-wise 5%"),
    log:
        "results/{suite}/logs/analysis_modulewise.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("modulewise")


rule analysis_cost:
    input:
        **ANALYSIS_INPUT,
    output:
        png=_rep("figures/cost_vs_metric.png", "cost_vs_metric", "5. Cost", "figure"),
        pdf=_rep("figures/cost_vs_metric.pdf", "cost_vs_metric", "5. Cost", "figure (PDF)"),
        csv=_rep("tables/cost.csv", "cost_table", "5. Cost", "per method"),
        runs=_rep("tables/cost_runs.csv", "cost_table", "5. Cost", "per run"),
    log:
        "results/{suite}/logs/analysis_cost.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    shell:
        _analyze("cost")
