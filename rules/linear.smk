# Fig. 3: linear regression (Appendix C), one grid per MAML order, with the
# Hessian spectrum at the paper's reference point for the theory overlay.


rule linear_reference:
    output:
        "results/linear/reference.json",
    params:
        config=CONFIG_JSON,
    log:
        "logs/linear_reference.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-reference --config-json {params.config:q} --out {output} > {log} 2>&1"


rule linear_grid:
    output:
        grid="results/linear/{order}/grid.csv",
        provenance="results/linear/{order}/provenance.json",
    wildcard_constraints:
        order="second|first",
    params:
        config=CONFIG_JSON,
        checkpoint="results/linear/{order}/grid.ckpt",
    log:
        "logs/linear_grid_{order}.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-grid --order {wildcards.order} --config-json {params.config:q}"
        " --out {output.grid} --provenance {output.provenance} --checkpoint {params.checkpoint}"
        " 2>&1 | tee {log}"


rule fig3:
    input:
        grids=expand("results/linear/{order}/grid.csv", order=config["linear"]["orders"]),
        provenance=expand("results/linear/{order}/provenance.json", order=config["linear"]["orders"]),
        reference=rules.linear_reference.output[0],
        audit="results/audit/linear_boundary.csv",
    output:
        png="figures/fig3.png",
        pdf="figures/fig3.pdf",
    log:
        notebook="results/notebooks/fig3.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig3.ipynb"
