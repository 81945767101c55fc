"""Optional metric sinks beside metrics.jsonl: TensorBoard and Weights & Biases, chosen by the `report_to` config key.

Both get the records metrics.jsonl gets, under the same stable names (`learn/loss`, `search/pass@1`, ...). The x-axis
is a global step that runs on across phases: a trainer's records use `offset + step`, where a phase's offset is the
last global step seen before it started; evaluation records (which carry `round`, not `step`) are placed at the
current global step. Neither package is needed unless its sink is asked for; W&B runs offline when no API key is set
(`WANDB_API_KEY` unset and `wandb login` never run), writing under OUT/wandb for a later `wandb sync`.
"""

from __future__ import annotations

import os
from pathlib import Path

from searchlearn.config import ConfigError

SINKS = ("tensorboard", "wandb")


class GlobalStep:
    """Maps (phase, per-phase step) to one monotonic step."""

    def __init__(self):
        self.offsets: dict[str, int] = {}
        self.current = 0

    def __call__(self, record: dict) -> int:
        phase = str(record.get("phase", ""))
        if "step" in record and isinstance(record["step"], int):
            offset = self.offsets.setdefault(phase, self.current)
            self.current = max(self.current, offset + record["step"])
            return offset + record["step"]
        return self.current


def scalars(record: dict) -> dict[str, float]:
    """The record's numeric metrics (named `group/name`), without bookkeeping keys."""
    return {k: float(v) for k, v in record.items()
            if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardSink:
    """Event files under `directory`, read by `tensorboard --logdir DIR`."""

    def __init__(self, directory: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError("report_to: tensorboard needs the tensorboard package: pip install -e '.[tensorboard]'"
                              ) from e
        self.writer = SummaryWriter(log_dir=str(directory))
        self.step = GlobalStep()

    def __call__(self, record: dict) -> None:
        step = self.step(record)
        for name, value in scalars(record).items():
            self.writer.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbSink:
    """A W&B run in `directory` (offline unless an API key is configured)."""

    def __init__(self, directory: str | Path, project: str = "searchlearn", config: dict | None = None):
        try:
            import wandb
        except ImportError as e:
            raise ConfigError("report_to: wandb needs the wandb package: pip install -e '.[wandb]'") from e
        online = bool(os.environ.get("WANDB_API_KEY")) or os.environ.get("WANDB_MODE") == "online"
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, dir=str(directory), config=config or {},
                              mode=os.environ.get("WANDB_MODE", "online" if online else "offline"), reinit=True)
        self.step = GlobalStep()

    def __call__(self, record: dict) -> None:
        values = scalars(record)
        if values:
            self.run.log(values, step=self.step(record))

    def close(self) -> None:
        self.run.finish()


def make_sinks(names, out: str | Path, config: dict | None = None) -> list:
    """The sinks `names` asks for, writing under the run directory `out` (OUT/tensorboard, OUT/wandb)."""
    unknown = sorted(set(names) - set(SINKS))
    if unknown:
        raise ConfigError(f"report_to: unknown sink(s) {unknown}; choose from {', '.join(SINKS)}")
    out = Path(out)
    return [TensorBoardSink(out / "tensorboard") if name == "tensorboard" else WandbSink(out / "wandb", config=config)
            for name in dict.fromkeys(names)]
