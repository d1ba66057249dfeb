# fig3-n2 (supplementary): Fig. 3's grids and the audit again with two inner steps, the setting of
# the paper's image grids (Fig. 4b/4c), with the exact two-step bound drawn on them (rules/fig3.smk
# computes both; the claims judge the audit, rows A-*-n2-*).

FIGURE_SOURCES["fig3-n2"] = linear_sources("linear-n2", "audit-n2")
