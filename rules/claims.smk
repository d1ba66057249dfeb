# The claims table: verdicts computed from the results above, never typed in. It reads only the
# `claims` section of the config; every other setting comes from its inputs' provenance. Written to
# results/claims/ (absent on a fresh clone, so a run computes everything it rests on), then published
# to figures/ (committed, beside the figures); figures/claims.json holds every number, and
# tests/test_reproduce.py recomputes the cheap ones and holds them to it. At the end of a run,
# `reproduction` compares what was computed with the committed reference (config: reproduction).


rule claims:
    input:
        linear_reference=rules.linear_reference.output[0],
        linear_audit=rules.linear_audit.output.table.format(audit="audit"),
        audit_provenance=rules.linear_audit.output.provenance.format(audit="audit"),
        linear_audit_n2=rules.linear_audit.output.table.format(audit="audit-n2"),
        audit_n2_provenance=rules.linear_audit.output.provenance.format(audit="audit-n2"),
        sinusoid_reference=rules.sinusoid_reference.output[0],
        fig5=rules.fig5_analysis.output.table,
        fig5_provenance=rules.fig5_analysis.output.provenance,
        fig1=rules.fig1_runs.output.table,
        fig2=rules.fig2_curves.output.curves,
        fig2_provenance=rules.fig2_curves.output.provenance,
        fig7=rules.fig7_sharpness.output.table,
        fig7_provenance=rules.fig7_sharpness.output.provenance,
        linear_grids=expand(rules.linear_grid.output.grid, linear=problems_mod.LINEAR,
                            order=config["linear"]["orders"]),
        linear_provenance=expand(rules.linear_grid.output.provenance, linear=problems_mod.LINEAR,
                                 order=config["linear"]["orders"]),
        sinusoid_grid=rules.sinusoid_grid.output.grid,
        sinusoid_provenance=rules.sinusoid_grid.output.provenance,
        **{k: v for d in problems_mod.FEW_SHOT for k, v in (
            (d, rules.image_merge.output.grid.format(dataset=d)),
            (f"{d}_provenance", rules.image_merge.output.provenance.format(dataset=d)))},
        sinusoid_local_bound=rules.sinusoid_local_bound.output.table,
        omniglot_paper=rules.paper_grid_merge.output.grid,
        omniglot_paper_provenance=rules.paper_grid_merge.output.provenance,
        guideline=[f for p in GUIDELINE_PROBLEMS for f in (rules.suggest.output.suggestion.format(problem=p),
                                                           rules.guideline_check.output.check.format(problem=p))],
        guideline_exact=rules.suggest_exact.output.cells,
        guideline_exact_provenance=rules.suggest_exact.output.provenance,
    output:
        json="results/claims/claims.json",
        md="results/claims/CLAIMS.md",
    params:
        config=step_config("claims"),
        inputs=claim_inputs,
    log:
        "logs/claims.log",
    conda:
        ENV
    shell:
        "maml-convergence claims --config-json {params.config:q} --inputs {params.inputs}"
        " --out-json {output.json} --out-md {output.md} 2>&1 | tee {log}"


rule publish_claims:
    input:
        json=rules.claims.output.json,
        md=rules.claims.output.md,
    output:
        json=report("figures/claims.json", caption="report/claims.rst", category="Claims"),
        md=report("figures/CLAIMS.md", caption="report/claims.rst", category="Claims"),
    log:
        "logs/publish_claims.log",
    conda:
        ENV
    shell:
        "(cp -v {input.json} {output.json} && cp -v {input.md} {output.md}) > {log} 2>&1"


rule reproduction:
    input:
        claims=rules.claims.output.json,
        source=expand(rules.source_data.output[0], figure=FIGURES),
    output:
        json="results/reproduction.json",
    params:
        config=step_config("reproduction"),
    log:
        md="results/reproduction.md",
        log="logs/reproduction.log",
    conda:
        ENV
    shell:
        "maml-convergence reproduction --config-json {params.config:q} --claims {input.claims} --figures figures"
        " --out-json {output.json} --out-md {log.md} 2>&1 | tee {log.log}"
