import json
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs workers side by side: one thread each, in the commands they start too (Snakemake
    # sets a step's own count). torch's threads spin while they wait for each other, so two processes of
    # two threads on two cores slow each other many times over; one thread each keeps both cores busy.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

FIRST = "test_workflow.py"  # the longest file (the quick workflow run): started first, on a worker of its own


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name != FIRST)  # stable: every other test keeps its order


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Where this interpreter's console scripts (snakemake, maml-convergence) live."""
    return Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(1234)
    yield


def env_with_bin(bin_dir: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def figures_predate_the_workflow(root: Path) -> str | None:
    """Why the committed figures/ cannot be held to this version of the workflow, or None when it can.

    figures/ is written only by the workflow (`make reproduce`, about two hours here). After a change to
    what it writes (the source data of each figure, the verdict table), the committed figures/ stays as
    the last run wrote it until the workflow runs again; the tests that read it say so instead of failing.
    """
    from maml_convergence.claims import has_verdict_table

    if not has_verdict_table(json.loads((root / "figures" / "claims.json").read_text())):
        return "figures/claims.json predates the verdict table: run `make reproduce` to regenerate figures/"
    if not (root / "figures" / "data" / "fig1" / "provenance.json").exists():
        return "figures/data/ holds no source data yet: run `make reproduce` to regenerate figures/"
    return None
