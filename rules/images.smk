# Fig. 4b (Omniglot) and 4c (MiniImagenet): the (alpha, beta) grid of few-shot classification,
# split into chunks. Each chunk is one job with declared resources, so a profile can send the
# chunks to GPUs or cluster nodes (profiles/local-gpu, profiles/slurm); the merge checks that
# every cell came back exactly once.

rule image_chunk:
    input:
        data=lambda w: PREPARED[w.dataset],
    output:
        grid="results/{dataset}/chunks/{chunk}.csv",
        provenance="results/{dataset}/chunks/{chunk}.json",
    params:
        config=CONFIG_JSON,
        chunks=lambda w: config[w.dataset]["chunks"],
        checkpoint="results/{dataset}/chunks/{chunk}.ckpt",
    wildcard_constraints:
        dataset="omniglot|miniimagenet",
        chunk=r"\d+",
    log:
        "logs/{dataset}_chunk{chunk}.log",
    threads: workflow.cores
    resources:
        mem_mb=16000,
        runtime=lambda w: 60 if w.dataset == "omniglot" else 24 * 60,
    conda:
        ENV
    shell:
        "maml-convergence image-grid --config-json {params.config:q} --dataset {wildcards.dataset}"
        " --chunk {wildcards.chunk} --chunks {params.chunks} --data {input.data} --out {output.grid}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


rule image_grid:
    input:
        unpack(image_chunks),
        data=lambda w: PREPARED[w.dataset],
    output:
        grid="results/{dataset}/grid.csv",
        provenance="results/{dataset}/provenance.json",
    params:
        config=CONFIG_JSON,
    wildcard_constraints:
        dataset="omniglot|miniimagenet",
    log:
        "logs/{dataset}_grid.log",
    conda:
        ENV
    shell:
        "maml-convergence image-merge --config-json {params.config:q} --dataset {wildcards.dataset}"
        " --chunks {input.grids} --chunk-provenance {input.provenance} --data {input.data} --out {output.grid}"
        " --provenance {output.provenance} 2>&1 | tee {log}"


rule fig4b:
    input:
        grid="results/omniglot/grid.csv",
        provenance="results/omniglot/provenance.json",
    output:
        png="figures/fig4b.png",
        pdf="figures/fig4b.pdf",
    log:
        notebook="results/notebooks/fig4b.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig4b.ipynb"


rule fig4c:
    input:
        grid="results/miniimagenet/grid.csv",
        provenance="results/miniimagenet/provenance.json",
    output:
        png="figures/fig4c.png",
        pdf="figures/fig4c.pdf",
    log:
        notebook="results/notebooks/fig4c.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig4c.ipynb"
