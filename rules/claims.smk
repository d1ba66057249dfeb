# The claims table: verdicts computed from the results above, never typed in.


rule claims:
    input:
        reference=rules.linear_reference.output[0],
        audit=rules.linear_audit.output.table,
        sinusoid_reference=rules.sinusoid_reference.output[0],
        fig5=rules.fig5_analysis.output.table,
        fig1=rules.fig1_runs.output.table,
        linear=expand("results/linear/{order}/grid.csv", order=config["linear"]["orders"]),
        linear_provenance=expand("results/linear/{order}/provenance.json", order=config["linear"]["orders"]),
        sinusoid=rules.sinusoid_grid.output.grid,
        sinusoid_provenance=rules.sinusoid_grid.output.provenance,
        omniglot="results/omniglot/grid.csv",
        miniimagenet="results/miniimagenet/grid.csv",
    output:
        json="results/claims.json",
        md="figures/CLAIMS.md",
    params:
        config=CONFIG_JSON,
    log:
        "logs/claims.log",
    conda:
        ENV
    shell:
        "maml-convergence claims --config-json {params.config:q} --linear-reference {input.reference}"
        " --linear-audit {input.audit} --sinusoid-reference {input.sinusoid_reference} --fig5 {input.fig5}"
        " --fig1 {input.fig1} --omniglot-grid {input.omniglot} --miniimagenet-grid {input.miniimagenet}"
        " --linear-grids {input.linear} --sinusoid-grid {input.sinusoid}"
        " --out-json {output.json} --out-md {output.md} 2>&1 | tee {log}"
