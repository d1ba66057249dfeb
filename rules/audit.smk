# The audit: the stability boundary of linear-regression MAML measured by bisection,
# against the paper's formula and the exact quadratic conditions; and the Hessian
# spectrum at a meta-trained sinusoid point, for the theory drawn on Fig. 4a.


rule linear_audit:
    input:
        reference=rules.linear_reference.output[0],
    output:
        table="results/audit/linear_boundary.csv",
        provenance="results/audit/provenance.json",
    params:
        config=CONFIG_JSON,
    log:
        "logs/linear_audit.log",
    conda:
        ENV
    shell:
        "maml-convergence linear-audit --config-json {params.config:q} --linear-reference {input.reference}"
        " --out {output.table} --provenance {output.provenance} > {log} 2>&1"


rule sinusoid_reference:
    output:
        "results/sinusoid/reference.json",
    params:
        config=CONFIG_JSON,
    log:
        "logs/sinusoid_reference.log",
    conda:
        ENV
    shell:
        "maml-convergence sinusoid-reference --config-json {params.config:q} --out {output} > {log} 2>&1"
