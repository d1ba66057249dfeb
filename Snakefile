# maml-convergence: regenerate every figure of Takagi et al. (2019) and the claims table.
#
#   snakemake --cores all                                 # the paper's settings
#   snakemake --cores all --configfile config/quick.yaml  # small grids (tests, CI)
#
# The figures, their rule files and notebooks: the table of figures (src/maml_convergence/figures.py),
# from which the drawing rules (rules/figures.smk) and `all` follow. Which command, function and config
# section make each figure: the table in docs/figures.md (tests/test_docs.py holds it to the code).
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
from maml_convergence import captions as captions_mod
from maml_convergence import figures as figures_mod
from maml_convergence import problems as problems_mod

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
# What each figure draws, computed (the table of figures names the rule file of each) ...
for _rules in figures_mod.rule_files():

    include: f"rules/{_rules}.smk"


include: "rules/claims.smk"
# ... and drawn: one rule per notebook of the table, each a localrule.
include: "rules/figures.smk"


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


rule all:
    input:
        [f"figures/{name}.{ext}" for name in figures_mod.names() for ext in ("png", "pdf")],
        rules.publish_claims.output,
        rules.reproduction.output,
        rules.project_image_grids.output,
    default_target: True
