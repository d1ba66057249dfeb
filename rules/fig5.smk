# Fig. 5 (Appendix B): is T g negligible next to H^2? A long training run with parameter
# snapshots, then the exact curvature at each snapshot. Both steps resume after an interruption.


rule fig5_train:
    output:
        "results/fig5/snapshots.pt",
    params:
        config=step_config("fig5-train"),
        checkpoint="results/fig5/train.ckpt",
    log:
        "logs/fig5_train.log",
    threads: ALL_CORES
    conda:
        ENV
    shell:
        "maml-convergence fig5-train --config-json {params.config:q} --out {output}"
        " --checkpoint {params.checkpoint} 2>&1 | tee {log}"


rule fig5_analysis:
    input:
        rules.fig5_train.output[0],
    output:
        table="results/fig5/curvature.csv",
        provenance="results/fig5/provenance.json",
    params:
        config=step_config("fig5-analysis"),
        checkpoint="results/fig5/analysis.ckpt",
    log:
        "logs/fig5_analysis.log",
    threads: ALL_CORES
    resources:
        mem_mb=4000,
    conda:
        ENV
    shell:
        "maml-convergence fig5-analysis --config-json {params.config:q} --snapshots {input}"
        " --out {output.table} --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


FIGURE_SOURCES["fig5"] = {"curvature": rules.fig5_analysis.output.table,
                          "curvature_provenance": rules.fig5_analysis.output.provenance}
