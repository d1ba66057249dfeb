"""A figure's source data: the tables its notebook draws, kept beside the figure in ``figures/data/<figure>/``.

The workflow writes them (``maml-convergence source-data``) from the results of the steps the figure
draws on, and the figure's notebook reads them, run by the workflow or opened by hand on a fresh
clone, with no workflow run. Tables are CSV compressed with gzip and a fixed header time, so an
unchanged table gives an unchanged file. ``provenance.json`` names the commit that wrote the folder,
each file's sha256 and origin, and the provenance of the step that computed each table; reading a
file checks its sha256, so a hand-edited number stops the notebook with one line naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from .config import ConfigError
from .provenance import git_commit, replace_dir, versions, write_json

PROVENANCE = "provenance.json"
STEP_PROVENANCE = "_provenance"  # an input named <table>_provenance is the provenance of the step behind <table>


class SourceDataError(ConfigError):
    """A source-data folder is missing, incomplete or edited by hand; the message names the file."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stored(name: str, path: Path) -> tuple[str, bytes]:
    """The file name and bytes under which the input ``name`` (at ``path``) is kept."""
    raw = path.read_bytes()
    if path.suffix == ".csv":
        return f"{name}.csv.gz", gzip.compress(raw, compresslevel=9, mtime=0)
    if path.suffix == ".json":
        return f"{name}.json", raw
    raise SourceDataError(f"source data '{name}': {path} is neither a .csv table nor a .json record")


def write(figure: str, inputs: dict[str, str | os.PathLike], out_dir: str | os.PathLike) -> dict:
    """Keep ``inputs`` (name -> result file) as the source data of ``figure`` in ``out_dir``.

    An input named ``<table>_provenance`` is the provenance of the step that computed ``<table>``: it
    goes into the folder's provenance.json instead of a file of its own. The folder is built beside
    ``out_dir`` and renamed into place, so an interrupted write never leaves a folder that looks complete.
    """
    out_dir = Path(out_dir)
    missing = [str(p) for p in inputs.values() if not Path(p).is_file()]
    if missing:
        raise SourceDataError(f"source data of {figure}: missing result file {missing[0]}")
    building = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    files, steps = {}, {}
    for name, path in sorted(inputs.items()):
        path = Path(path)
        if name.endswith(STEP_PROVENANCE):
            steps[name[: -len(STEP_PROVENANCE)]] = json.loads(path.read_text())
            continue
        stored, data = _stored(name, path)
        (building / stored).write_bytes(data)
        files[stored] = {"sha256": _sha256(data), "from": str(path)}
    unmatched = sorted(set(steps) - {f.split(".")[0] for f in files})
    if unmatched:
        raise SourceDataError(f"source data of {figure}: provenance for '{unmatched[0]}', which is not one of its "
                              "tables")
    record = {"figure": figure, "git_commit": git_commit(), "versions": versions(), "files": files, "steps": steps}
    write_json(building / PROVENANCE, record)
    replace_dir(building, out_dir)
    return record


class SourceData:
    """One figure's source-data folder, read back: ``table(name)``, ``record(name)``, ``provenance(name)``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / PROVENANCE
        if not path.is_file():
            raise SourceDataError(f"{path}: no source data here (run the workflow, or check out figures/data)")
        self.meta = json.loads(path.read_text())

    @property
    def names(self) -> list[str]:
        return sorted(f.split(".")[0] for f in self.meta["files"])

    def _read(self, stored: str) -> bytes:
        path = self.folder / stored
        if stored not in self.meta["files"] or not path.is_file():
            raise SourceDataError(f"{path}: not in this figure's source data ({', '.join(self.names)})")
        data = path.read_bytes()
        if _sha256(data) != self.meta["files"][stored]["sha256"]:
            raise SourceDataError(f"{path}: its sha256 differs from {self.folder / PROVENANCE}: edited after the "
                                  f"workflow wrote it")
        return data

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(gzip.decompress(self._read(f"{name}.csv.gz"))))

    def record(self, name: str) -> dict:
        return json.loads(self._read(f"{name}.json"))

    def provenance(self, name: str) -> dict:
        """The provenance of the step that computed table ``name``."""
        if name not in self.meta["steps"]:
            raise SourceDataError(f"{self.folder / PROVENANCE}: no provenance of a step for '{name}'")
        return self.meta["steps"][name]
