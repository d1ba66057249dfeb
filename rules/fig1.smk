# Fig. 1: task-gradient norms during training, MAML against joint training. Every seed
# and both alphas train in one vectorised run, which resumes from its checkpoint.


rule fig1_runs:
    output:
        table="results/fig1/gradients.csv",
        provenance="results/fig1/provenance.json",
    params:
        config=CONFIG_JSON,
        checkpoint="results/fig1/train.ckpt",
    log:
        "logs/fig1_runs.log",
    threads: workflow.cores
    conda:
        ENV
    shell:
        "maml-convergence fig1 --config-json {params.config:q} --out {output.table}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


rule fig1:
    input:
        table=rules.fig1_runs.output.table,
        provenance=rules.fig1_runs.output.provenance,
    output:
        png="figures/fig1.png",
        pdf="figures/fig1.pdf",
    log:
        notebook="results/notebooks/fig1.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig1.ipynb"
