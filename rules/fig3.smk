# Fig. 3: linear regression (Appendix C), one grid per MAML order, with the Hessian spectrum at
# the paper's reference point for the theory overlay, and the audit: the stability boundary
# measured by bisection, against the paper's formula and the exact conditions.


rule linear_reference:
    output:
        "results/linear/reference.json",
    params:
        config=step_config("linear-reference"),
    log:
        "logs/linear_reference.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-reference --config-json {params.config:q} --out {output} 2>&1 | tee {log}"


rule linear_grid:
    output:
        grid="results/linear/{order}/grid.csv",
        provenance=report("results/linear/{order}/provenance.json", caption="report/provenance.rst",
                          category="Provenance"),
    wildcard_constraints:
        order="second|first",
    params:
        config=step_config("linear-grid"),
        checkpoint="results/linear/{order}/grid.ckpt",
    log:
        "logs/linear_grid_{order}.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-grid --order {wildcards.order} --config-json {params.config:q}"
        " --out {output.grid} --provenance {output.provenance} --checkpoint {params.checkpoint}"
        " 2>&1 | tee {log}"


rule linear_audit:
    input:
        reference=rules.linear_reference.output[0],
    output:
        table="results/audit/linear_boundary.csv",
        provenance=report("results/audit/provenance.json", caption="report/provenance.rst", category="Provenance"),
    params:
        config=step_config("linear-audit"),
    log:
        "logs/linear_audit.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-audit --config-json {params.config:q} --linear-reference {input.reference}"
        " --out {output.table} --provenance {output.provenance} 2>&1 | tee {log}"


FIGURE_SOURCES["fig3"] = {
    **{f"grid_{order}": rules.linear_grid.output.grid.format(order=order) for order in config["linear"]["orders"]},
    **{f"grid_{order}_provenance": rules.linear_grid.output.provenance.format(order=order)
       for order in config["linear"]["orders"]},
    "reference": rules.linear_reference.output[0],
    "audit": rules.linear_audit.output.table,
    "audit_provenance": rules.linear_audit.output.provenance,
}


rule fig3:
    input:
        source=source_folder("fig3"),
    output:
        png=report("figures/fig3.png", caption="report/fig3.rst", category="Figures", labels={"figure": "fig3"}),
        pdf="figures/fig3.pdf",
    log:
        notebook="results/notebooks/fig3.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig3.ipynb"
