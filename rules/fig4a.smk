# Fig. 4a: sinusoid regression (Section 4.1), the full (alpha, beta) grid (which also keeps the final
# parameters of its stable cells, for Fig. 7), the Hessian spectrum at a meta-trained point for the
# paper's theory drawn over it, and the local theory's prediction: 2/lambda_max of the MAML objective's
# own Hessian at each seed's initial parameters, per alpha.


rule sinusoid_grid:
    output:
        grid="results/sinusoid/grid.csv",
        final_params="results/sinusoid/final_params.pt",
        provenance="results/sinusoid/provenance.json",
    params:
        config=step_config("sinusoid-grid"),
        checkpoint="results/sinusoid/grid.ckpt",
    log:
        "logs/sinusoid_grid.log",
    threads: ALL_CORES
    resources:
        mem_mb=4000,
    conda:
        ENV
    shell:
        "maml-convergence sinusoid-grid --config-json {params.config:q} --out {output.grid}"
        " --final-params {output.final_params} --provenance {output.provenance} --checkpoint {params.checkpoint}"
        " 2>&1 | tee {log}"


rule sinusoid_reference:
    output:
        "results/sinusoid/reference.json",
    params:
        config=step_config("sinusoid-reference"),
    log:
        "logs/sinusoid_reference.log",
    conda:
        ENV
    shell:
        "maml-convergence sinusoid-reference --config-json {params.config:q} --out {output} 2>&1 | tee {log}"


rule sinusoid_local_bound:
    output:
        table="results/sinusoid/local-bound/bounds.csv",
        provenance="results/sinusoid/local-bound/provenance.json",
    params:
        config=step_config("sinusoid-local-bound"),
    log:
        "logs/sinusoid_local_bound.log",
    threads: ALL_CORES
    conda:
        ENV
    shell:
        "maml-convergence sinusoid-local-bound --config-json {params.config:q} --out {output.table}"
        " --provenance {output.provenance} 2>&1 | tee {log}"


FIGURE_SOURCES["fig4a"] = {"grid": rules.sinusoid_grid.output.grid,
                           "grid_provenance": rules.sinusoid_grid.output.provenance,
                           "reference": rules.sinusoid_reference.output[0],
                           "local_bound": rules.sinusoid_local_bound.output.table,
                           "local_bound_provenance": rules.sinusoid_local_bound.output.provenance}
