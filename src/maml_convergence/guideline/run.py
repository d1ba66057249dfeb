"""One call of ``suggest`` past its protocol check: the state its curvature, probe and report share
(``_Run``), and its resume file (``_Checkpoint``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..checkpoint import Checkpoint
from .protocol import ProbeSettings


class _Checkpoint:
    """What an interrupted ``suggest`` had done: the curvature, the probe's iterations and every cell it
    trained, with the time spent; written after each round, read back when the model's parameters, the first
    meta-batch and the settings are the same (``checkpoint.Checkpoint``). The search is a function of the
    cells' outcomes, so a resumed run takes the same steps and ends with the same report."""

    def __init__(self, path, fingerprint: str, *, started: float):
        self.file = Checkpoint(path, fingerprint, "suggest", started)
        saved = self.file.load() or {"state": {}, "cells": {}}
        self.state, self.cells = saved["state"], saved["cells"]

    def save(self, **state) -> None:
        self.state.update(state)
        self.file.save({"state": self.state, "cells": self.cells})


@dataclass
class _Run:
    """What the phases of one ``suggest`` call share, and the notes they leave for its report."""

    setup: ProbeSettings
    resume: _Checkpoint
    say: Callable[[str], None]      # a line of progress on stderr (nothing unless verbose)
    verbose: bool                   # also the grid runner's progress bars
    rule: str                       # which cell the report answers with (ladder.RULES)
    budget_seconds: float
    started: float                  # time.monotonic() at the call, less the seconds of the parts it resumes
    # When the probe's rounds must stop; known only once the curvature has been timed, as the MAML Hessian
    # at the answer needs a multiple of that time after the probe.
    budget_end: float = math.inf
    notes: list[str] = field(default_factory=list)
