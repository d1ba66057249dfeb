# Fig. 2: the paper's beta_c(alpha) curves and feasible region (theory only).


rule fig2_theory:
    output:
        curves="results/fig2/curves.csv",
        provenance="results/fig2/provenance.json",
    params:
        config=CONFIG_JSON,
    log:
        "logs/fig2_theory.log",
    conda:
        ENV
    shell:
        "maml-convergence fig2 --config-json {params.config:q} --out {output.curves}"
        " --provenance {output.provenance} > {log} 2>&1"


rule fig2:
    input:
        curves=rules.fig2_theory.output.curves,
        provenance=rules.fig2_theory.output.provenance,
    output:
        png="figures/fig2.png",
        pdf="figures/fig2.pdf",
    log:
        notebook="results/notebooks/fig2.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig2.ipynb"
