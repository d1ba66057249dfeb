# maml-convergence: regenerate every figure of Takagi et al. (2019) and the claims table.
#
#   snakemake --cores all                                 # the paper's settings
#   snakemake --cores all --configfile config/quick.yaml  # small grids (tests, CI)
#
# Which rule file, command, function, config section and notebook make each figure: the table
# in docs/figures.md (tests/test_docs.py holds it to the code).
#
# Each rule passes its command only the config sections it reads (rules/common.smk), so an edit
# reruns only what depends on it. Results (ignored by git) go to results/, the prepared datasets
# (shared by every run) to data/, figures (committed) to figures/. `snakemake --report report.html`
# gathers the figures with captions, the claims table and the provenance.

import json
import os
import sys

from snakemake.utils import min_version

from maml_convergence import config as config_mod

min_version("8.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Snakemake's --config reads nested values as strings; read them again where the schema wants
# numbers. Then the schema, plus range and finiteness checks: the first problem stops the
# workflow with one line naming the key.
try:
    config.update(config_mod.validate(config_mod.coerce_command_line(config)))
except config_mod.ConfigError as error:
    sys.exit(f"maml-convergence: {error}")
# The steps' commands (maml-convergence, jupyter) come from the environment that runs the workflow, so
# .venv/bin/snakemake works without activating .venv.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), *os.get_exec_path()]))
# Each step records the whole config of the run in its provenance (it reads only its sections).
os.environ.update(MAML_CONVERGENCE_WORKFLOW_CONFIG=json.dumps(config, sort_keys=True))


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/source_data.smk"
include: "rules/fig1.smk"
include: "rules/fig2.smk"
include: "rules/fig3.smk"
include: "rules/fig3_n2.smk"
include: "rules/fig4a.smk"
include: "rules/fig4bc.smk"
include: "rules/fig4b_paper.smk"
include: "rules/fig5.smk"
include: "rules/fig6.smk"
include: "rules/fig7.smk"
include: "rules/guideline.smk"
include: "rules/claims.smk"


# On a cluster these run where Snakemake runs, not as jobs: a download needs the internet that compute nodes
# often lack, and merging, source data, claims and drawing take seconds, less than a job's start-up.
localrules:
    all,
    prepare_data,
    image_merge,
    paper_grid_merge,
    source_data,
    claims,
    publish_claims,
    reproduction,
    fig1,
    fig2,
    fig3,
    fig3_n2,
    fig4a,
    fig4bc,
    fig4b_paper,
    fig5,
    fig6,
    fig7,
    guideline,


rule all:
    input:
        rules.fig1.output,
        rules.fig2.output,
        rules.fig3.output,
        rules.fig3_n2.output,
        rules.fig4a.output,
        expand(rules.fig4bc.output, fig=["fig4b", "fig4c"]),
        rules.fig4b_paper.output,
        rules.fig5.output,
        rules.fig6.output,
        rules.fig7.output,
        rules.guideline.output,
        rules.publish_claims.output,
        rules.reproduction.output,
        rules.project_image_grids.output,
    default_target: True
