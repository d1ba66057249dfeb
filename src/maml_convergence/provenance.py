"""What produced a result: configuration, seed, package versions, commit, device, wall time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "numpy", "pandas", "matplotlib", "higher", "snakemake", "maml-convergence")


def resolve_device(name: str) -> str:
    import torch  # in the functions, not at the top: figure notebooks read provenance and need no torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device': 'cuda', but torch sees no CUDA device here (use auto or cpu)")
    return name


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model}, {torch.get_num_threads()} threads"


def git_commit() -> str:
    if os.environ.get("MAML_CONVERGENCE_COMMIT"):  # set where the code travels without .git
        return os.environ["MAML_CONVERGENCE_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "config", "rules", "Snakefile",
                                "notebooks"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def record(experiment: str, config: dict, device: str, wall_seconds: float, workflow_config: dict | None = None,
           **extra) -> dict:
    """``config``: what the step read; ``workflow_config``: the whole configuration of the run it was part of."""
    import torch

    whole = workflow_config if workflow_config is not None else config
    return {"experiment": experiment, "seed": config.get("seed", whole.get("seed")), "config": config,
            "workflow_config": whole,
            "device": device_description(device), "git_commit": git_commit(), "versions": versions(),
            "wall_seconds": round(wall_seconds, 3), "torch_threads": torch.get_num_threads(),
            "command": " ".join(sys.argv), **_gpu_memory(device), **extra}


def _gpu_memory(device: str) -> dict:
    import torch

    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return {}
    return {"gpu_peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def stamp(prov: dict) -> str:
    """One line for the corner of a figure."""
    return (f"maml-convergence {prov['git_commit']} | {prov['device']} | seed {prov['seed']} | "
            f"{prov['experiment']}")


def write_json(path: str | os.PathLike, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike):
    """Yields a temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends without
    an exception, so a reader never sees half a file and an interruption leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def replace_dir(built: str | os.PathLike, final: str | os.PathLike) -> None:
    """Put the folder ``built`` (complete) in the place of ``final``: a reader sees the old folder, none, or the
    new one, never a folder half written."""
    shutil.rmtree(final, ignore_errors=True)
    os.replace(built, final)
