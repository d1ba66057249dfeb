# Fig. 4a: sinusoid regression (Section 4.1), the full (alpha, beta) grid.


rule sinusoid_grid:
    output:
        grid="results/sinusoid/grid.csv",
        provenance="results/sinusoid/provenance.json",
    params:
        config=CONFIG_JSON,
        checkpoint="results/sinusoid/grid.ckpt",
    log:
        "logs/sinusoid_grid.log",
    threads: workflow.cores
    resources:
        mem_mb=4000,
    conda:
        ENV
    shell:
        "maml-convergence sinusoid-grid --config-json {params.config:q} --out {output.grid}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


rule fig4a:
    input:
        grid=rules.sinusoid_grid.output.grid,
        provenance=rules.sinusoid_grid.output.provenance,
        reference="results/sinusoid/reference.json",
    output:
        png="figures/fig4a.png",
        pdf="figures/fig4a.pdf",
    log:
        notebook="results/notebooks/fig4a.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig4a.ipynb"
