# Fig. 3: linear regression (Appendix C), one grid per MAML order, with the Hessian spectrum at
# the paper's reference point for the theory overlay, and the audit: the stability boundary
# measured by bisection, against the paper's formula and the exact conditions. The grids and the
# audit run with one inner step (results/linear/, results/audit/) as in the paper, and again with
# two (results/linear-n2/, results/audit-n2/: fig3-n2, the paper's image grids' setting).


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
        grid="results/{linear}/{order}/grid.csv",
        provenance="results/{linear}/{order}/provenance.json",
    wildcard_constraints:
        linear=f"{problems_mod.LINEAR}|{problems_mod.LINEAR}-n2",  # one inner step, two
        order="second|first",
    params:
        config=step_config("linear-grid"),
        inner_steps=lambda w: inner_steps(w.linear),
        checkpoint="results/{linear}/{order}/grid.ckpt",
    log:
        "logs/{linear}_grid_{order}.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-grid --order {wildcards.order} --inner-steps {params.inner_steps}"
        " --config-json {params.config:q}"
        " --out {output.grid} --provenance {output.provenance} --checkpoint {params.checkpoint}"
        " 2>&1 | tee {log}"


rule linear_audit:
    input:
        reference=rules.linear_reference.output[0],
    output:
        table="results/{audit}/linear_boundary.csv",
        provenance="results/{audit}/provenance.json",
    wildcard_constraints:
        audit="audit|audit-n2",
    params:
        config=step_config("linear-audit"),
        inner_steps=lambda w: inner_steps(w.audit),
    log:
        "logs/linear_{audit}.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-audit --inner-steps {params.inner_steps} --config-json {params.config:q}"
        " --linear-reference {input.reference}"
        " --out {output.table} --provenance {output.provenance} 2>&1 | tee {log}"


FIGURE_SOURCES["fig3"] = linear_sources(problems_mod.LINEAR, "audit")
