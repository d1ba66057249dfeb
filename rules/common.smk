# Helpers shared by the rules.

import fcntl
import glob

ENV = "../environment.yml"  # the pinned environment, for `snakemake --use-conda` (relative to rules/)
FEW_SHOT_FIGURES = {p.figure: p.name for p in problems_mod.PROBLEMS if p.name in problems_mod.FEW_SHOT}
FEW_SHOT = "|".join(problems_mod.FEW_SHOT)  # the {dataset} wildcard of the image rules
GUIDELINE_PROBLEMS = sorted(config["guideline"])  # where the workflow checks `maml-convergence suggest`
# Steps that use every core ask for more than any machine has; Snakemake scales a job down to
# --cores (workflow.cores itself is undefined in commands without --cores, such as --report).
ALL_CORES = 1024
FIGURES = figures_mod.names()  # the table of figures, src/maml_convergence/figures.py
# What each figure draws, kept beside it as its source data (rules/source_data.smk); each figure's
# rules fill in its entry (name -> result file, and <name>_provenance for the step behind table <name>).
FIGURE_SOURCES = {}


def step_config(step, dataset=None):
    """The config sections `step` reads (config_mod.STEP_SECTIONS), as JSON for its command line.

    Held in the params of the step's rule: Snakemake reruns a job whose params changed, so a
    step reruns when what it reads changes, and not when another section does. Data paths stay
    as written (relative to the repository); the command resolves them, so a moved checkout
    changes no params.
    """
    return json.dumps(config_mod.step_config(config, step, dataset), sort_keys=True)


def _clear_stale_locks():
    """Locks left by a Snakemake that died without cleaning up (kill -9, a crash, a lost node).

    Snakemake refuses to start while its locks exist, even when their owner is gone. Every run
    of this workflow holds an flock on .snakemake/maml-convergence.run.lock for its whole life;
    the kernel releases it when the process ends, however it ends. So when we can take it, no
    run of this workflow is alive here, and any locks found are stale: remove them.
    """
    if not workflow.is_main_process:
        return None
    os.makedirs(".snakemake", exist_ok=True)
    handle = open(os.path.join(".snakemake", "maml-convergence.run.lock"), "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return handle  # another run is alive: its locks are real
    locks = os.path.join(".snakemake", "locks")
    stale = [f for f in os.listdir(locks) if f.endswith(".lock")] if os.path.isdir(locks) else []
    if stale:
        print(f"maml-convergence: removing {len(stale)} stale Snakemake locks left by a run that was killed",
              file=sys.stderr)
        for name in stale:
            os.remove(os.path.join(locks, name))
    return handle


def image_chunks(wildcards):
    """The chunk tables of one image grid, and their provenance."""
    n = config[wildcards.dataset]["chunks"]
    return {
        "grids": expand(rules.image_grid.output.grid, dataset=wildcards.dataset, chunk=range(n)),
        "provenance": expand(rules.image_grid.output.provenance, dataset=wildcards.dataset, chunk=range(n)),
    }


def problem_grid(problem):
    """The grid a problem's recommendation is judged against."""
    if problem == problems_mod.SINUSOID:
        return {"grid": rules.sinusoid_grid.output.grid, "grid_provenance": rules.sinusoid_grid.output.provenance}
    return {k: v.format(dataset=problem) for k, v in (("grid", rules.image_merge.output.grid),
                                                      ("grid_provenance", rules.image_merge.output.provenance))}


def problem_data(wildcards):
    """An image problem reads its prepared dataset, checked against the record of this run."""
    return {"data": rules.prepare_data.output[0].format(dataset=wildcards.problem)} if wildcards.problem in \
        FEW_SHOT_FIGURES.values() else {}


PAPER_SETTINGS = config_mod.paper_settings(config)  # what the paper-scale Fig. 4b is computed with


def paper_chunk_files(wildcards):
    """Every chunk of the paper-scale Fig. 4b kept so far (rows and record): a new one changes the merge's
    input, so the merge reruns."""
    return sorted(glob.glob(os.path.join(config["paper_grid"]["folder"], "chunk-*.*")))


def source_folder(figure):
    """The source data of ``figure``, what its notebook reads: the folder's provenance.json."""
    return rules.source_data.output[0].format(figure=figure)


def name_path_pairs(wildcards, input):
    return " ".join(f"{name}={path}" for name, path in input.items())


def claim_inputs(wildcards, input):
    """name=path of every result the claims read, by its name in claims.INPUTS (a list: a pair a file); the
    provenance beside each is found by the claims, and is an input only so that its step runs first."""
    return " ".join(f"{name}={path}" for name, value in input.items() if not name.endswith("_provenance")
                    for path in ([value] if isinstance(value, str) else value))


def data_record(wildcards, input):
    return f"--dataset-record {input.data}" if "data" in input.keys() else ""


_RUN_LOCK = _clear_stale_locks()  # kept open (and locked) for the life of this process


def inner_steps(name):
    """linear, audit: 1 inner step; linear-n2, audit-n2: 2."""
    return int(name.rsplit("-n", 1)[1]) if "-n" in name else 1


def linear_sources(linear, audit):
    """What Fig. 3 (one inner step) or fig3-n2 (two) draws: each order's grid, the reference, the audit."""
    orders = config["linear"]["orders"]
    return {**{f"grid_{o}": rules.linear_grid.output.grid.format(linear=linear, order=o) for o in orders},
            **{f"grid_{o}_provenance": rules.linear_grid.output.provenance.format(linear=linear, order=o)
               for o in orders},
            "reference": rules.linear_reference.output[0],
            "audit": rules.linear_audit.output.table.format(audit=audit),
            "audit_provenance": rules.linear_audit.output.provenance.format(audit=audit)}
