# Fig. 7: the edge of stability over the whole Fig. 4a grid. At every cell of seed `seed` that did not
# diverge, the MAML objective's top Hessian eigenvalue at the final parameters the grid kept:
# lambda_max beta / 2 (claim E1). Fig. 6 follows a few cells over training; this
# reads where every cell ends.


rule fig7_sharpness:
    input:
        grid=rules.sinusoid_grid.output.grid,
        final_params=rules.sinusoid_grid.output.final_params,
    output:
        table="results/fig7/sharpness.csv",
        provenance="results/fig7/provenance.json",
    params:
        config=step_config("fig7-sharpness"),
        checkpoint="results/fig7/sharpness.ckpt",
    log:
        "logs/fig7_sharpness.log",
    threads: ALL_CORES
    conda:
        ENV
    shell:
        "maml-convergence fig7-sharpness --config-json {params.config:q} --sinusoid-grid {input.grid}"
        " --final-params {input.final_params} --out {output.table}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


FIGURE_SOURCES["fig7"] = {"sharpness": rules.fig7_sharpness.output.table,
                          "sharpness_provenance": rules.fig7_sharpness.output.provenance}
