# The image datasets (resources, shared by every run): fetched once from their canonical sources
# (md5-checked downloads) or, when the configured mirror folder exists, read from it
# (sha256-checked), and prepared under data/. Each run keeps a record of the prepared file it
# uses (its sha256), so the steps that read it notice if it changes. See src/maml_convergence/data.py.


rule prepare_data:
    output:
        "results/data/{dataset}/record.json",
    params:
        config=step_config("prepare-data"),
    wildcard_constraints:
        dataset=FEW_SHOT,
    log:
        "logs/prepare_data_{dataset}.log",
    conda:
        ENV
    shell:
        "maml-convergence prepare-data --config-json {params.config:q} --dataset {wildcards.dataset}"
        " --out {output} 2>&1 | tee {log}"
