# maml-convergence: regenerate every figure of Takagi et al. (2019) and the claims table.
#
#   snakemake --cores all                               # the paper's settings
#   snakemake --cores all --configfile config/quick.yaml  # small grids (tests, CI)
#
# Results (expensive, ignored by git) go to results/, figures (committed) to figures/.

import json
import os
import sys

from snakemake.utils import min_version

from maml_convergence.config import ConfigError, validate

min_version("8.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Same JSON schema that snakemake.utils.validate reads, plus range and grid checks;
# the first problem stops the workflow with one message naming the key.
try:
    validate(config)
except ConfigError as error:
    sys.exit(f"maml-convergence: {error}")
# Data paths are relative to the repository, whatever --directory says, so every run shares
# one copy of the prepared datasets.
for key in ("root", "mirror"):
    if config["data"][key] is not None:
        config["data"][key] = os.path.normpath(os.path.join(workflow.basedir, config["data"][key]))
DATA = config["data"]["root"]
# Every step gets the whole merged config, so what it records is what it ran.
CONFIG_JSON = json.dumps(config, sort_keys=True)
ENV = os.path.join(workflow.basedir, "environment.yml")


include: "rules/common.smk"
include: "rules/fig1.smk"
include: "rules/fig2.smk"
include: "rules/linear.smk"
include: "rules/sinusoid.smk"
include: "rules/fig5.smk"
include: "rules/data.smk"
include: "rules/images.smk"
include: "rules/audit.smk"
include: "rules/claims.smk"


rule all:
    input:
        expand("figures/{fig}.{ext}", fig=["fig1", "fig2", "fig3", "fig4a", "fig4b", "fig4c", "fig5"], ext=["png", "pdf"]),
        "results/claims.json",
        "figures/CLAIMS.md",
    default_target: True
