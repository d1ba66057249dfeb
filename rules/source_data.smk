# The source data of each figure, kept beside it in figures/data/<figure>/ (committed with the
# figures): the result tables its notebook draws and the provenance of the steps that computed them.
# Each figure's rule file says what goes in (FIGURE_SOURCES, rules/common.smk); its notebook reads only this folder, so
# the committed figure is drawn from the committed source data, and a fresh clone opens every
# notebook without running the workflow.

rule source_data:
    input:
        unpack(lambda w: FIGURE_SOURCES[w.figure]),
    output:
        report("figures/data/{figure}/provenance.json", caption="report/provenance.rst", category="Provenance",
               labels={"figure": "{figure}"}),
    params:
        inputs=name_path_pairs,
        folder=lambda w, output: os.path.dirname(output[0]),
    wildcard_constraints:
        figure="|".join(FIGURES),
    log:
        "logs/source_data_{figure}.log",
    conda:
        ENV
    shell:
        "maml-convergence source-data --figure {wildcards.figure} --inputs {params.inputs}"
        " --out-dir {params.folder} 2>&1 | tee {log}"
