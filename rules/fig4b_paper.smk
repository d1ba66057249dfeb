# Fig. 4b at the paper's scale, drawn from the chunks kept in config["paper_grid"]["folder"]
# (committed), which `maml-convergence paper-grid` computes a few at a time wherever a GPU is at hand
# (docs/gpu-and-cluster.md). The workflow never computes them: it draws what is there, marked
# "k of n chunks" until all are. The grid's settings are config/config.yaml's omniglot section
# as shipped, whatever --configfile this run has; a chunk computed for other settings is refused.

rule paper_grid_merge:
    input:
        chunks=paper_chunk_files,
        data=rules.prepare_data.output[0].format(dataset=problems_mod.OMNIGLOT),
    output:
        grid="results/omniglot-paper/grid.csv",
        provenance="results/omniglot-paper/provenance.json",
    params:
        config=json.dumps(config_mod.step_config(PAPER_SETTINGS, "paper-grid-merge"), sort_keys=True),
        folder=config["paper_grid"]["folder"],
    log:
        "logs/paper_grid_merge.log",
    conda:
        ENV
    shell:
        "maml-convergence paper-grid-merge --config-json {params.config:q} --folder {params.folder:q}"
        " --dataset-record {input.data} --out {output.grid} --provenance {output.provenance} 2>&1 | tee {log}"


FIGURE_SOURCES["fig4b-paper"] = {"grid": rules.paper_grid_merge.output.grid,
                                 "grid_provenance": rules.paper_grid_merge.output.provenance}
