# The drawing rules, one per notebook of the table of figures (src/maml_convergence/figures.py), named after
# it: each runs its notebook on the figure's source data (figures/data/<figure>/, rules/source_data.smk) and
# writes figures/<figure>.png and .pdf. A notebook that draws several figures (fig4bc) has one rule for all
# of them, the figure a wildcard. They run where Snakemake runs (localrule): drawing takes seconds.
# Each notebook's first cell is the caption of its figures; the report's caption is written from it with this
# run's config values (captions_mod.report_caption) to .snakemake/maml-convergence/report/<notebook>.rst when the
# workflow is read: beside Snakemake's own records, not in results/, which holds only what the steps computed.

_captions = captions_mod.write_report_captions(".snakemake/maml-convergence/report", config)

for _notebook, _drawn in figures_mod.by_notebook().items():
    _fig = "{fig}" if len(_drawn) > 1 else _drawn[0]

    rule:
        name:
            _notebook
        input:
            source=(lambda w: source_folder(w.fig)) if len(_drawn) > 1 else source_folder(_fig),
        output:
            png=report(f"figures/{_fig}.png", caption=str(_captions[_notebook]), category="Figures",
                       labels={"figure": _fig}),
            pdf=f"figures/{_fig}.pdf",
        wildcard_constraints:
            fig="|".join(_drawn),
        log:
            notebook=f"results/notebooks/{_fig if len(_drawn) > 1 else _notebook}.ipynb",
        params:
            notebook=_notebook,
        localrule: True
        conda:
            ENV
        notebook:
            # through params: the directive is read again when the job runs, after the loop has moved on (so the
            # report, which shows a notebook's code only for a path without braces, lists none for these rules)
            "../notebooks/{params.notebook}.ipynb"
