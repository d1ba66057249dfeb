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
