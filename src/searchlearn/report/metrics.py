"""Metrics sinks: append-only metrics.jsonl (stable names like `learn/loss`) and an atomic metrics.json."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class MetricsLog:
    """Appends one JSON record per line; each record gets a wall-clock `time`. `sinks` (report/sinks.py: TensorBoard,
    W&B) receive every record too."""

    def __init__(self, path: str | Path, sinks=()):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sinks = list(sinks)

    def __call__(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        for sink in self.sinks:
            sink(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def write_json(path: str | Path, data) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())
