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
