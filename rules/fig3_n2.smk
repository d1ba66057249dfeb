# fig3-n2 (supplementary): Fig. 3's grids and the audit again with two inner steps, the setting of
# the paper's image grids (Fig. 4b/4c), with the exact two-step bound drawn on them (rules/fig3.smk
# computes both; the claims judge the audit, rows A-*-n2-*).

FIGURE_SOURCES["fig3-n2"] = linear_sources("linear-n2", "audit-n2")


rule fig3_n2:
    input:
        source=source_folder("fig3-n2"),
    output:
        png=report("figures/fig3-n2.png", caption="report/fig3_n2.rst", category="Figures",
                   labels={"figure": "fig3-n2"}),
        pdf="figures/fig3-n2.pdf",
    log:
        notebook="results/notebooks/fig3_n2.ipynb",
    conda:
        ENV
    notebook:
        "../notebooks/fig3_n2.ipynb"
