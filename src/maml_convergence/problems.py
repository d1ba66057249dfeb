"""The table of problems: the paper's four, and where a new one is added (docs/extending.md).

A problem's name is its config section, the ``{dataset}``/``{problem}`` wildcard of the rules, the key of
its grid among the claims' inputs and the key of its claims. Everything that lists problems, or asks
what kind a problem is, reads it here (config validation, the spec builders and the grid runner through the
task family, data preparation, the claims, the rules). ``tests/test_problems.py`` fails on a problem's name
written as a string (or as one alternative of a pattern, "omniglot|miniimagenet") anywhere else in src/,
benchmarks/ or the rules, but as the key of a config section (``cfg["sinusoid"]``: the schema defines them).
Names that embed a problem's (a results folder, a step, a claim id: results/sinusoid/, sinusoid-grid,
C7-omniglot) are those things' names.

Plain data, no torch: the bottom layer, read by ``config`` and by the Snakefile without loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

# The names, each written once: code that must single one problem out says LINEAR, not the string.
LINEAR, SINUSOID, OMNIGLOT, MINIIMAGENET = "linear", "sinusoid", "omniglot", "miniimagenet"


@dataclass(frozen=True)
class Problem:
    name: str
    title: str                  # as a figure, a claim or a message names it
    family: str                 # its task distribution: a class of tasks.FAMILIES (the task-family protocol)
    model: str                  # the network its grids train: a name of models.MODELS
    figure: str | None = None   # the figure its grid is drawn in (the table of figures, figures.py), if any
    dtype: str = "float32"      # what its grids compute in
    repeats: str = "seed"       # what its grid's repetitions are: a data "draw" or a "seed" (stream and start)
    # Few-shot image problems only: the prepared dataset (data.py), the images each class has (a task draws
    # k_shot + k_query of them), the cluster minutes a chunk of its grid asks for (rules/fig4bc.smk)
    prepared: str | None = None
    images_per_class: int | None = None
    chunk_minutes: int | None = None


PROBLEMS = (
    Problem(LINEAR, title="linear regression", family="LinearRegressionTask", model="linear", figure="fig3",
            dtype="float64", repeats="draw"),
    Problem(SINUSOID, title="sinusoid regression", family="SinusoidTasks", model="sinusoid_mlp", figure="fig4a"),
    Problem(OMNIGLOT, title="Omniglot", family="FewShotTasks", model="omniglot_cnn", figure="fig4b",
            prepared="omniglot.npz", images_per_class=20, chunk_minutes=60),
    Problem(MINIIMAGENET, title="MiniImagenet", family="FewShotTasks", model="miniimagenet_cnn", figure="fig4c",
            prepared="miniimagenet-train.npz", images_per_class=600, chunk_minutes=24 * 60),
)
BY_NAME = {p.name: p for p in PROBLEMS}
NAMES = tuple(BY_NAME)
FEW_SHOT = tuple(p.name for p in PROBLEMS if p.prepared)  # the image grids (Fig. 4b, 4c), in the table's order


def get(name: str) -> Problem:
    """The problem called ``name``; an unknown name is one line naming the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown problem {name!r}; the problems are {', '.join(NAMES)}") from None
