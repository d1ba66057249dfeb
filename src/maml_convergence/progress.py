"""Progress bars that suit both a terminal and a log file.

On a terminal, tqdm redraws one line with carriage returns. Written to a log (Snakemake tees
every step's output into ``logs/``), those redraws pile up as thousands of frames on one line;
there the bar is printed as a plain line every ``LOG_INTERVAL`` seconds instead.
"""

from __future__ import annotations

import io
import sys

from tqdm.auto import tqdm

LOG_INTERVAL = 30.0  # seconds between progress lines in a log


class _Lines(io.TextIOBase):
    """A stream that writes each tqdm frame as one line, without carriage returns."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        frame = text.replace("\r", "").strip()
        if frame:
            self.stream.write(frame + "\n")
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)``; on a stream that is not a terminal, one line per interval."""
    stream = kwargs.pop("file", None) or sys.stderr
    if not stream.isatty():
        kwargs.setdefault("mininterval", LOG_INTERVAL)
        kwargs.setdefault("maxinterval", LOG_INTERVAL)
        kwargs["ascii"] = True  # block characters read badly in a log
        stream = _Lines(stream)
    return tqdm(iterable, file=stream, **kwargs)
