# Fig. 4b (Omniglot) and 4c (MiniImagenet): the (alpha, beta) grid of few-shot classification,
# split into chunks. Each chunk is one job with declared resources, so a profile can send the
# chunks to GPUs or cluster nodes (profiles/local-gpu, profiles/slurm); the merge checks that
# every cell came back exactly once. Before anything trains, project_image_grids times both grids on
# this device (seconds) and stops the run, with one line, when they would take longer than
# max_projected_hours (default 12): the highest priority and every core, so it runs first and alone.


rule project_image_grids:
    output:
        "results/projection.json",
    params:
        config=step_config("project-image-grids"),
    log:
        "logs/project_image_grids.log",
    threads: ALL_CORES
    priority: 100
    resources:
        mem_mb=16000,
        runtime=10,
    conda:
        ENV
    shell:
        "maml-convergence project-image-grids --config-json {params.config:q} --out {output} 2>&1 | tee {log}"


rule image_grid:
    input:
        data=rules.prepare_data.output[0],
    output:
        grid="results/{dataset}/chunks/{chunk}/grid.csv",
        provenance="results/{dataset}/chunks/{chunk}/provenance.json",
    params:
        config=lambda w: step_config("image-grid", w.dataset),
        chunks=lambda w: config[w.dataset]["chunks"],
        checkpoint="results/{dataset}/chunks/{chunk}/grid.ckpt",
    wildcard_constraints:
        dataset=FEW_SHOT,
        chunk=r"\d+",
    log:
        "logs/image_grid_{dataset}_chunk{chunk}.log",
    threads: ALL_CORES
    resources:
        mem_mb=16000,
        runtime=lambda w: problems_mod.get(w.dataset).chunk_minutes,
    conda:
        ENV
    shell:
        "maml-convergence image-grid --config-json {params.config:q} --dataset {wildcards.dataset}"
        " --chunk {wildcards.chunk} --chunks {params.chunks} --dataset-record {input.data} --out {output.grid}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


rule image_merge:
    input:
        unpack(image_chunks),
        data=rules.prepare_data.output[0],
    output:
        grid="results/{dataset}/grid.csv",
        provenance="results/{dataset}/provenance.json",
    params:
        config=lambda w: step_config("image-merge", w.dataset),
    wildcard_constraints:
        dataset=FEW_SHOT,
    log:
        "logs/image_merge_{dataset}.log",
    conda:
        ENV
    shell:
        "maml-convergence image-merge --config-json {params.config:q} --dataset {wildcards.dataset}"
        " --chunks {input.grids} --chunk-provenance {input.provenance} --dataset-record {input.data}"
        " --out {output.grid} --provenance {output.provenance} 2>&1 | tee {log}"


for fig, dataset in FEW_SHOT_FIGURES.items():
    FIGURE_SOURCES[fig] = {"grid": rules.image_merge.output.grid.format(dataset=dataset),
                           "grid_provenance": rules.image_merge.output.provenance.format(dataset=dataset)}
