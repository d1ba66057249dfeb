# Fig. 1: task-gradient norms during training, MAML against joint training. Every seed
# and both alphas train in one vectorised run, which resumes from its checkpoint.


rule fig1_runs:
    output:
        table="results/fig1/gradients.csv",
        provenance="results/fig1/provenance.json",
    params:
        config=step_config("fig1-runs"),
        checkpoint="results/fig1/train.ckpt",
    log:
        "logs/fig1_runs.log",
    threads: ALL_CORES
    conda:
        ENV
    shell:
        "maml-convergence fig1-runs --config-json {params.config:q} --out {output.table}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


FIGURE_SOURCES["fig1"] = {"gradients": rules.fig1_runs.output.table,
                          "gradients_provenance": rules.fig1_runs.output.provenance}


rule fig1:
    input:
        source=source_folder("fig1"),
    output:
        png=report("figures/fig1.png", caption="report/fig1.rst", category="Figures", labels={"figure": "fig1"}),
        pdf="figures/fig1.pdf",
    log:
        notebook="results/notebooks/fig1.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig1.ipynb"
