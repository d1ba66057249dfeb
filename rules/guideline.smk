# The guideline tool (`maml-convergence suggest`), checked against the workflow's own grids: on each problem of
# the config's `guideline` section, suggest probes from the grid's starting parameters and task stream; its
# recommended cell and the paper's guideline cell are then trained as cells of that grid (claims G2-<problem>
# and G1-<problem>). On linear regression, whose stable region theory gives exactly, both cells are held to it
# (rule suggest_exact, claim G-exact).


rule suggest:
    input:
        unpack(problem_data),
    output:
        suggestion="results/guideline/{problem}/suggestion.json",
        probe="results/guideline/{problem}/probe.png",
    params:
        config=lambda w: step_config("suggest", w.problem),
        data=data_record,
        checkpoint="results/guideline/{problem}/suggest.ckpt",
    wildcard_constraints:
        problem="|".join(problems_mod.NAMES),
    log:
        "logs/suggest_{problem}.log",
    threads: ALL_CORES
    resources:
        mem_mb=4000,
    conda:
        ENV
    shell:
        "maml-convergence suggest --config-json {params.config:q} --problem {wildcards.problem} {params.data}"
        " --out {output.suggestion} --figure {output.probe} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


rule guideline_check:
    input:
        unpack(problem_data),
        suggestion=rules.suggest.output.suggestion,
    output:
        check="results/guideline/{problem}/check.csv",
        provenance="results/guideline/{problem}/provenance.json",
    params:
        config=lambda w: step_config("guideline-check", w.problem),
        data=data_record,
        checkpoint="results/guideline/{problem}/check.ckpt",
    wildcard_constraints:
        problem="|".join(problems_mod.NAMES),
    log:
        "logs/guideline_check_{problem}.log",
    threads: ALL_CORES
    conda:
        ENV
    shell:
        "maml-convergence guideline-check --config-json {params.config:q} --problem {wildcards.problem}"
        " {params.data} --suggestion {input.suggestion} --out {output.check} --provenance {output.provenance}"
        " --checkpoint {params.checkpoint} 2>&1 | tee {log}"


rule suggest_exact:
    output:
        cells="results/guideline-exact/cells.csv",
        provenance="results/guideline-exact/provenance.json",
    params:
        config=step_config("suggest-exact"),
        checkpoint="results/guideline-exact/suggest-exact.ckpt",
    log:
        "logs/suggest_exact.log",
    threads: ALL_CORES
    conda:
        ENV
    shell:
        "maml-convergence suggest-exact --config-json {params.config:q} --out {output.cells}"
        " --provenance {output.provenance} --checkpoint {params.checkpoint} 2>&1 | tee {log}"


FIGURE_SOURCES["guideline"] = {
    key.format(p): path
    for p in GUIDELINE_PROBLEMS
    for key, path in (("grid_{}", problem_grid(p)["grid"]), ("grid_{}_provenance", problem_grid(p)["grid_provenance"]),
                      ("suggestion_{}", rules.suggest.output.suggestion.format(problem=p)),
                      ("check_{}", rules.guideline_check.output.check.format(problem=p)),
                      ("check_{}_provenance", rules.guideline_check.output.provenance.format(problem=p)))
}
