"""Did a run reproduce what the repository holds? Its claims and source data against a committed reference.

The reference is a folder laid out as ``figures/`` is: ``claims.json`` and ``data/<figure>/`` (each figure's
source data). ``figures/`` itself is what a run of the workflow overwrites, so it is read as committed at git
HEAD; any other folder (the quick config's, ``tests/reference/quick``) as it is on disk.

For each claim of the reference: whether the run has it, whether it was computed from the same settings
(each row's ``settings_sha256``, a digest of the config its inputs were computed with; a row of other settings
is listed, not compared), whether its verdict is equal, and whether every number of its summary is within
TOLERANCE of the reference's. For each table of each figure's source data: the rows present and the largest
relative difference of each numeric column. The last line says "reproduced: k of n verdicts equal, m numbers
outside tolerance"; a verdict that differs is what fails a reproduction.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ROOT, ConfigError

# Two numbers a summary prints (three significant digits) agree within 2 % of the larger: rounding moves
# them by up to 0.5 %, float32 sums summed in another order (another CPU, thread count or GPU) by less than
# that on all but the cells at the edge of divergence.
TOLERANCE = 0.02
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


class Reference:
    """A committed reference folder (``claims.json``, ``data/<figure>/<table>``), from disk or from git HEAD."""

    def __init__(self, folder: str | Path, at_head: bool):
        self.folder, self.at_head = Path(folder), at_head

    @classmethod
    def of(cls, folder: str | Path, written_by_this_run: str | Path = "figures") -> "Reference":
        """The folder as committed at HEAD where this run writes it (``figures/`` of the working directory, when
        that is the repository's), else as on disk."""
        folder = Path(folder)
        return cls(folder, folder.resolve() == Path(written_by_this_run).resolve() and folder.resolve()
                   .is_relative_to(ROOT))

    def read(self, relative: str) -> bytes | None:
        if not self.at_head:
            path = self.folder / relative
            return path.read_bytes() if path.is_file() else None
        rel = (self.folder.resolve() / relative).relative_to(ROOT)
        done = subprocess.run(["git", "show", f"HEAD:{rel.as_posix()}"], cwd=ROOT, capture_output=True)
        return done.stdout if done.returncode == 0 else None

    def tables(self) -> list[str]:
        """The source-data tables it holds, as ``data/<figure>/<file>``."""
        if not self.at_head:
            return sorted(str(p.relative_to(self.folder)) for p in (self.folder / "data").glob("*/*.csv.gz"))
        rel = (self.folder.resolve() / "data").relative_to(ROOT).as_posix()
        done = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", rel], cwd=ROOT, capture_output=True,
                              text=True)
        prefix = (self.folder.resolve()).relative_to(ROOT).as_posix() + "/"
        return sorted(p.removeprefix(prefix) for p in done.stdout.split() if p.endswith(".csv.gz"))

    def __str__(self) -> str:
        return f"{self.folder} as committed at git HEAD" if self.at_head else str(self.folder)


def numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text)]


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= tolerance * max(abs(a), abs(b))


def compare_claims(computed: dict, reference: dict, tolerance: float = TOLERANCE) -> list[dict]:
    """One row per claim of the reference (and per claim the run added): its verdicts, whether they are equal,
    and how many numbers of its summary lie outside ``tolerance``."""
    got = {c["id"]: c for c in computed["claims"]}
    rows = []
    for want in reference["claims"]:
        mine = got.pop(want["id"], None)
        row = {"id": want["id"], "committed": want["verdict"], "computed": mine and mine["verdict"]}
        if mine is None:
            rows.append({**row, "status": "missing", "outside": 0})
            continue
        if want.get("settings_sha256") and mine.get("settings_sha256") and \
                want["settings_sha256"] != mine["settings_sha256"]:
            rows.append({**row, "status": "other settings", "outside": 0})
            continue
        a, b = numbers(mine["summary"]), numbers(want["summary"])
        outside = sum(not _close(x, y, tolerance) for x, y in zip(a, b)) + abs(len(a) - len(b))
        worst = next(((x, y) for x, y in zip(a, b) if not _close(x, y, tolerance)), None)
        rows.append({**row, "status": "equal" if mine["verdict"] == want["verdict"] else "DIFFERS",
                     "numbers": max(len(a), len(b)), "outside": outside,  # a number only one side has is outside
                     "first_outside": None if worst is None else {"computed": worst[0], "committed": worst[1]}})
    rows += [{"id": cid, "committed": None, "computed": c["verdict"], "status": "new", "outside": 0}
             for cid, c in got.items()]
    return rows


def _numeric(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def compare_table(computed: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """Rows present, and the largest relative difference of each numeric column (NaN against NaN is equal,
    NaN against a number is infinite); rows are compared in order when both have as many."""
    out = {"rows": len(computed), "rows_committed": len(reference), "columns": {}}
    if len(computed) != len(reference):
        return out
    for column in _numeric(reference):
        if column not in computed:
            out["columns"][column] = math.inf
            continue
        a, b = computed[column].to_numpy(dtype=float), reference[column].to_numpy(dtype=float)
        both_nan = np.isnan(a) & np.isnan(b)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
        rel = np.where(both_nan | (a == b), 0.0, np.where(np.isnan(rel), math.inf, rel))
        out["columns"][column] = float(rel.max()) if len(rel) else 0.0
    return out


def compare_source_data(figures: Path, reference: Reference) -> list[dict]:
    rows = []
    for table in reference.tables():
        mine = figures / table
        committed = reference.read(table)
        frame = lambda raw: pd.read_csv(io.BytesIO(gzip.decompress(raw)))
        if not mine.is_file() or committed is None:
            rows.append({"table": table, "rows": None, "rows_committed": None, "columns": {}, "missing": True})
            continue
        rows.append({"table": table, **compare_table(frame(mine.read_bytes()), frame(committed))})
    return rows


def reproduction(computed_claims: str | Path, figures: str | Path, reference: Reference,
                 tolerance: float = TOLERANCE) -> dict:
    """The comparison (module docstring): claims and source data, and the line that sums it up."""
    raw = reference.read("claims.json")
    if raw is None:
        raise ConfigError(f"no reference claims.json in {reference}: nothing to compare with")
    claims = compare_claims(json.loads(Path(computed_claims).read_text()), json.loads(raw), tolerance)
    tables = compare_source_data(Path(figures), reference)
    compared = [r for r in claims if r["status"] in ("equal", "DIFFERS")]
    equal = sum(r["status"] == "equal" for r in compared)
    outside = sum(r["outside"] for r in compared) + sum(
        sum(v > tolerance for v in t["columns"].values()) for t in tables)
    return {"reference": str(reference), "tolerance": tolerance, "claims": claims, "source_data": tables,
            "verdicts_equal": equal, "verdicts_compared": len(compared), "numbers_outside": outside,
            "differs": [r["id"] for r in compared if r["status"] == "DIFFERS"],
            "line": f"reproduced: {equal} of {len(compared)} verdicts equal, {outside} numbers outside tolerance"}


def to_markdown(result: dict) -> str:
    lines = [f"# Reproduction against {result['reference']}", "",
             f"Numbers agree when within {result['tolerance']:.0%} of the larger; a claim computed from other "
             "settings than the committed one is listed, not compared.", "",
             "| claim | committed | computed | | summary numbers outside tolerance |", "|---|---|---|---|---|"]
    for r in result["claims"]:
        first = r.get("first_outside")
        detail = f"{r['outside']} of {r.get('numbers', 0)}" + (
            f" (first: {first['computed']:g}, committed {first['committed']:g})" if first else "")
        lines.append(f"| {r['id']} | {r['committed']} | {r['computed']} | {r['status']} | "
                     f"{detail if r['status'] in ('equal', 'DIFFERS') else ''} |")
    lines += ["", "| source data | rows (committed) | largest relative difference |", "|---|---|---|"]
    for t in result["source_data"]:
        worst = max(t["columns"].items(), key=lambda kv: kv[1], default=None)
        rows = "missing" if t.get("missing") else f"{t['rows']} ({t['rows_committed']})"
        lines.append(f"| {t['table']} | {rows} | " + (f"{worst[1]:.3g} ({worst[0]})" if worst and worst[1] > 0
                                                        else "0" if worst else "") + " |")
    return "\n".join(lines + ["", result["line"]]) + "\n"
