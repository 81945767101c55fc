"""A run directory and its resumable stages: what makes `demo` and `loop` continue a killed run where it stopped.

A stage is a named piece of work whose result (a JSON-able dict) is written atomically to OUT/stages/NAME.json when it
finishes; on `--resume` a finished stage is read back and never redone. Long stages (trainers) also checkpoint under
OUT/ckpt/, so an interrupted one resumes from its last checkpoint. Per-step and per-round records go to
OUT/metrics.jsonl.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from searchlearn import progress
from searchlearn.report.metrics import MetricsLog, read_json, write_json
from searchlearn.report.sinks import make_sinks

OUTPUTS = ("stages", "ckpt", "metrics.jsonl", "metrics.json", "report.html")  # what a fresh (non-resumed) run clears


class Run:
    """Paths of one run directory, its metrics log, and its timed, atomic, resumable stages (`run.stage(name, fn)`)."""

    def __init__(self, out: str | Path, resume: bool, sinks: tuple[str, ...] = (), config: dict | None = None):
        self.out = Path(out)
        if not resume:
            for sub in OUTPUTS:
                path = self.out / sub
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        (self.out / "stages").mkdir(parents=True, exist_ok=True)
        self.log = MetricsLog(self.out / "metrics.jsonl", make_sinks(sinks, self.out, config))
        self.results: dict[str, dict] = {}  # every stage run or read back so far, in order (without its "data")
        self.planned: list[str] = []  # the stages the run expects, in order (for "stage k of K" lines)

    def plan(self, names: list[str]) -> None:
        """Announce stages still to come, so that progress lines can say how far the run is."""
        self.planned += [n for n in names if n not in self.planned]

    def stage_path(self, name: str) -> Path:
        return self.out / "stages" / f"{name}.json"

    def done(self, name: str) -> dict | None:
        """The result of a finished stage, or None."""
        return read_json(self.stage_path(name)) if self.stage_path(name).exists() else None

    def stage(self, name: str, fn: Callable[[], dict]) -> dict:
        """Run `fn` as stage `name` (timed into result["seconds"]), or read its finished result back."""
        result = self.done(name)
        if result is None:
            t0 = time.time()
            result = fn()
            result["seconds"] = time.time() - t0
            write_json(self.stage_path(name), result)
            where = f"[{self.planned.index(name) + 1}/{len(self.planned)}] " if name in self.planned else ""
            progress.say(f"{where}{name} done in {progress.duration(result['seconds'])} "
                         f"({progress.duration(self.seconds + result['seconds'])} of stages so far)")
        self.results[name] = {k: v for k, v in result.items() if k != "data"}
        return result

    def ckpt(self, name: str) -> Path:
        return self.out / "ckpt" / name

    @property
    def seconds(self) -> float:
        """Compute time of the stages so far (a resumed run counts each stage once)."""
        return sum(r["seconds"] for r in self.results.values())
