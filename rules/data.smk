# The image datasets: fetched from their canonical sources (md5-checked downloads) or, when the
# configured mirror folder exists, read from it (sha256-checked), then turned into one prepared
# form that the experiments read. See src/maml_convergence/data.py.


rule omniglot_folder:
    output:
        directory(f"{DATA}/omniglot/omniglot-py"),
    params:
        config=CONFIG_JSON,
        root=lambda w, output: os.path.dirname(output[0]),
    log:
        "logs/omniglot_folder.log",
    conda:
        ENV
    shell:
        "maml-convergence fetch-omniglot --config-json {params.config:q} --root {params.root} 2>&1 | tee {log}"


rule omniglot_prepared:
    input:
        rules.omniglot_folder.output[0],
    output:
        f"{DATA}/prepared/omniglot.npz",
    params:
        config=CONFIG_JSON,
        root=lambda w, input: os.path.dirname(input[0]),
    log:
        "logs/omniglot_prepared.log",
    conda:
        ENV
    shell:
        "maml-convergence prepare-omniglot --config-json {params.config:q} --root {params.root}"
        " --out {output} 2>&1 | tee {log}"


rule miniimagenet_prepared:
    output:
        f"{DATA}/prepared/miniimagenet-{{split}}.npz",
    params:
        config=CONFIG_JSON,
        root=f"{DATA}/miniimagenet",
    wildcard_constraints:
        split="train|val|test",
    log:
        "logs/miniimagenet_prepared_{split}.log",
    conda:
        ENV
    shell:
        "maml-convergence prepare-miniimagenet --config-json {params.config:q} --root {params.root}"
        " --split {wildcards.split} --out {output} 2>&1 | tee {log}"
