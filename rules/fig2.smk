# Fig. 2: the paper's beta_c(alpha) curves and feasible region (theory only).


rule fig2_curves:
    output:
        curves="results/fig2/curves.csv",
        provenance="results/fig2/provenance.json",
    params:
        config=step_config("fig2-curves"),
    log:
        "logs/fig2_curves.log",
    conda:
        ENV
    shell:
        "maml-convergence fig2-curves --config-json {params.config:q} --out {output.curves}"
        " --provenance {output.provenance} 2>&1 | tee {log}"


FIGURE_SOURCES["fig2"] = {"curves": rules.fig2_curves.output.curves,
                          "curves_provenance": rules.fig2_curves.output.provenance}
