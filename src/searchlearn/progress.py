"""Progress bars for long work (rich), silent when output is not a terminal or under CI."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI") and not os.environ.get("SEARCHLEARN_QUIET")


class _Bar:
    def __init__(self, progress: Progress | None, task_id):
        self._progress, self._task = progress, task_id

    def advance(self, n: int = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **fields)

    def describe(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)


@contextmanager
def bar(description: str, total: int | None):
    """`with bar("SFT", total=steps) as b: ... b.advance()`: a rich bar on a terminal, nothing otherwise."""
    if not enabled():
        yield _Bar(None, None)
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
    if not os.environ.get("SEARCHLEARN_QUIET"):
        print(message, file=sys.stderr, flush=True)
