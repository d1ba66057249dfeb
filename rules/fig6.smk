# Fig. 6: where the local theory stops applying. Cells on both sides of the measured Fig. 4a boundary,
# trained again with the sharpness monitor: the MAML objective's top Hessian eigenvalue against 2/beta
# over training (Cohen et al.'s edge of stability).


rule fig6_runs:
    input:
        grid=rules.sinusoid_grid.output.grid,
    output:
        table="results/fig6/sharpness.csv",
        provenance="results/fig6/provenance.json",
    params:
        config=step_config("fig6-runs"),
        checkpoint="results/fig6/train.ckpt",
    log:
        "logs/fig6_runs.log",
    threads: ALL_CORES
    conda:
        ENV
    shell:
        "maml-convergence fig6-runs --config-json {params.config:q} --sinusoid-grid {input.grid} --out {output.table}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


FIGURE_SOURCES["fig6"] = {"sharpness": rules.fig6_runs.output.table,
                          "sharpness_provenance": rules.fig6_runs.output.provenance}
