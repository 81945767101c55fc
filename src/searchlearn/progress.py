"""Progress a person can follow: a rich bar on a terminal; in a plain log (CI, `nohup`, a pipe) one line at each
quarter of the work with the elapsed time and an estimate of what remains; nothing under SEARCHLEARN_QUIET."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def quiet() -> bool:
    return bool(os.environ.get("SEARCHLEARN_QUIET"))


def enabled() -> bool:
    """Whether to draw a live bar (a terminal, not CI, not quiet)."""
    return sys.stderr.isatty() and not os.environ.get("CI") and not quiet()


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _Bar:
    def __init__(self, progress: Progress | None, task_id):
        self._progress, self._task = progress, task_id

    def advance(self, n: int = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **fields)

    def skip(self, n: int) -> None:
        """Count n units done before this run (a resumed trainer's finished steps)."""
        self.advance(n)

    def describe(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)


class _Lines:
    """The plain-log stand-in for a bar: a line when the work crosses 25 %, 50 %, 75 % and 100 %."""

    def __init__(self, description: str, total: int | None):
        self.description, self.total, self.done = description, total, 0
        self.t0, self.start, self.next_quarter = time.time(), 0, 1

    def skip(self, n: int) -> None:
        """Count n units done before this run (a resumed trainer's): the estimate times only what this run does."""
        self.done = self.start = self.done + n
        while self.total and self.next_quarter <= 4 and self.done * 4 >= self.next_quarter * self.total:
            self.next_quarter += 1

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        if not self.total or quiet():
            return
        crossed = False
        while self.next_quarter <= 4 and self.done * 4 >= self.next_quarter * self.total:
            self.next_quarter, crossed = self.next_quarter + 1, True
        if crossed:
            elapsed = time.time() - self.t0
            rate = (self.done - self.start) / elapsed if elapsed > 0 and self.done > self.start else 0.0
            left = f", ≈ {duration((self.total - self.done) / rate)} left" if rate and self.done < self.total else ""
            print(f"{self.description}: {self.done}/{self.total} ({100 * self.done // self.total}%), "
                  f"{duration(elapsed)} elapsed{left}", file=sys.stderr, flush=True)

    def describe(self, text: str) -> None:
        self.description = text


@contextmanager
def bar(description: str, total: int | None):
    """`with bar("SFT", total=steps) as b: ... b.advance()`: a rich bar on a terminal, quarter lines otherwise."""
    if not enabled():
        lines = _Lines(description, total)
        yield lines
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))


def say(message: str) -> None:
    """A one-line status message on stderr (kept even when bars are off, so logs show the stages)."""
    if not quiet():
        print(message, file=sys.stderr, flush=True)
