"""Resume files: how every step that can be interrupted picks up where it stopped, with identical results.

One format for all of them (the grid runner, ``suggest``, the per-item loops of Fig. 5, Fig. 7 and the
guideline's exact check, which share ``Checkpoint.map``): a torch file holding the
step's own state beside the fingerprint of what it computes, the time its earlier parts took and how often
it has resumed. It is read back only when the fingerprint matches (a file of another configuration, or one
cut short, is ignored with one line saying so), and written atomically (an interruption leaves the old file
or the new one, never half of one). The step removes it once its output is complete.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from .progress import progress_bar
from .provenance import atomic_write


class Checkpoint:
    """The resume file at ``path`` (None: the step keeps none) of the computation ``fingerprint`` identifies.

    ``load()`` returns the saved state or None; ``save(state)`` writes it with the time of this run and of
    every earlier part it resumed from (``elapsed``); ``run_info()`` is what provenance records of it.
    """

    def __init__(self, path: str | os.PathLike | None, fingerprint, label: str, started: float | None = None):
        """``started``: when this run began (``time.monotonic()``; default now)."""
        self.path = Path(path) if path is not None else None
        self.fingerprint, self.label = fingerprint, label
        self.earlier_seconds, self.resumed = 0.0, 0
        self._started = time.monotonic() if started is None else started

    def load(self):
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, weights_only=False)
        except Exception as e:  # noqa: BLE001 - a file cut short fails in torch's or pickle's own way
            self._say(f"ignoring checkpoint {self.path}: unreadable ({type(e).__name__}); starting over")
            return None
        if not isinstance(saved, dict) or "state" not in saved or saved.get("fingerprint") != self.fingerprint:
            self._say(f"ignoring checkpoint {self.path}: it belongs to a different configuration")
            return None
        self.earlier_seconds, self.resumed = saved["elapsed"], saved["resumed"] + 1
        self._say(f"resuming from checkpoint {self.path}")
        return saved["state"]

    @property
    def elapsed(self) -> float:
        """Seconds spent on this computation: this run's and every earlier part's it resumed from."""
        return self.earlier_seconds + time.monotonic() - self._started

    def save(self, state) -> None:
        if self.path is None:
            return
        with atomic_write(self.path) as tmp:
            torch.save({"fingerprint": self.fingerprint, "state": state, "elapsed": self.elapsed,
                        "resumed": self.resumed}, tmp)

    def remove(self) -> None:
        discard(self.path)

    def map(self, keys, compute, every: float, desc: str, unit: str) -> dict:
        """``compute(key)`` for each of ``keys`` not already in the resume file, in order, under a progress bar;
        what is done so far is saved whenever ``every`` seconds have passed since the last save (0: after each
        key), so an interrupted run resumes from it. Returns key -> result, the resumed ones included."""
        done, saved = self.load() or {}, time.monotonic()
        for key in progress_bar([k for k in keys if k not in done], desc=desc, unit=unit):
            done[key] = compute(key)
            if time.monotonic() - saved >= every:
                self.save(done)
                saved = time.monotonic()
        return done

    def run_info(self) -> dict:
        return {"earlier_seconds": self.earlier_seconds, "resumed": self.resumed}

    def _say(self, message: str) -> None:
        print(f"[{self.label}] {message}", file=sys.stderr)


def discard(path: str | os.PathLike | None) -> None:
    """The step's output is complete: its resume file (if it kept one) is no longer needed."""
    if path is not None:
        Path(path).unlink(missing_ok=True)
