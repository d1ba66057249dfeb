import json
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


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
