"""The result files the claims are judged from, by the names of the workflow rule's inputs, each read once."""

from __future__ import annotations

import hashlib
import json
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..problems import FEW_SHOT  # the few-shot grids, in the order their claims are listed


INPUTS = ("linear_reference", "linear_grids", "linear_audit", "linear_audit_n2", "sinusoid_grid",
          "sinusoid_reference", "sinusoid_local_bound", "fig1", "fig2", "fig5", "fig7", *FEW_SHOT,
          "omniglot_paper", "guideline", "guideline_exact")  # a few-shot grid's input is named after its problem
LISTS = ("linear_grids", "guideline")  # several files: a grid per MAML order; per problem a report, then its check
REQUIRED = ("linear_reference", "linear_grids", "linear_audit", "sinusoid_grid", "sinusoid_reference")


def provenance_of(result_path) -> dict:
    """The provenance.json beside a result file: the settings it was computed with."""
    return json.loads((Path(result_path).parent / "provenance.json").read_text())


class Results:
    """``paths``: input name -> file (``linear_grids``: a list, one per MAML order; ``guideline``: problem ->
    (suggestion report, its check)). ``near_edge_factor``: the one setting the claims take from the config."""

    def __init__(self, paths: dict, near_edge_factor: float):
        unknown = sorted(set(paths) - set(INPUTS))
        if unknown:
            raise ValueError(f"unknown claims input(s) {unknown}; known: {', '.join(INPUTS)}")
        self.paths = {k: v for k, v in paths.items() if v}
        self.near_edge_factor = near_edge_factor
        self.table = cache(pd.read_csv)
        self.record = cache(lambda path: json.loads(Path(path).read_text()))  # a JSON result
        self.provenance = cache(provenance_of)

    def has(self, *names: str) -> bool:
        return all(n in self.paths for n in names)

    def path(self, name: str):
        return self.paths[name]

    def few_shot(self) -> list[str]:
        """The few-shot grids given."""
        return [d for d in FEW_SHOT if d in self.paths]

    @cached_property
    def eigenvalues(self) -> dict:
        """Each data draw's spectrum at the linear-regression reference point."""
        reference = self.record(self.paths["linear_reference"])
        return {d["seed"]: np.asarray(d["eigenvalues"]) for d in reference["draws"]}

    def config_of(self, path) -> dict:
        """The config a result was computed with: its provenance's (a JSON record carries its own)."""
        path = Path(path)
        if path.suffix == ".json":
            record = self.record(path)
            if "provenance" in record:
                return record["provenance"]["config"]
            if "settings" in record:  # suggest's report
                return {**record["settings"], **record.get("provenance", {}).get("config", {})}
        return self.provenance(path)["config"] if (path.parent / "provenance.json").is_file() else {}

    def settings_digest(self, names) -> str:
        """A digest of the config every input in ``names`` was computed with (not the device or the checkpoint
        interval, which change how, not what): two rows with the same digest judged the same computation."""
        files = []
        for name in names:
            value = self.paths[name]
            files += [f for pair in value.values() for f in pair] if isinstance(value, dict) else \
                list(value) if isinstance(value, list) else [value]
        configs = [{k: v for k, v in self.config_of(f).items() if k not in ("device", "checkpoint_every")}
                   for f in files]
        return hashlib.sha256(json.dumps(configs, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def sources(self) -> dict:
        return {k: list(map(str, v)) if k == "linear_grids" else
                {p: list(map(str, f)) for p, f in v.items()} if k == "guideline" else str(v)
                for k, v in self.paths.items()}
