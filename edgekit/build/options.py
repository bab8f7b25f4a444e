"""What a build takes and what it returns: the one owner of ``edgekit build``'s defaults (the CLI reads them here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgekit.board.bundle import Bundle
from edgekit.board.targets import Target

DEFAULT_MODEL = "espnet"
DEFAULT_CALIBRATION = "default"


@dataclass
class BuildOptions:
    """Everything ``edgekit build`` accepts; the defaults make a meaningful bundle from nothing in minutes."""

    target: str | Path
    model: str | None = None
    checkpoint: Path | None = None
    weights: Path | None = None  # official .pth, imported with edgekit.weights
    data: Path | None = None  # Cityscapes-layout folder to train on (None: synthetic scenes)
    calib: str | Path | None = None  # calibration folder / YAML / name under calibration/
    precision: str | None = None
    strict: bool = False
    output: Path | None = None
    input_size: tuple[int, int] | None = None  # overrides the target's
    train_seconds: float = 300.0
    train_epochs: int = 1000  # the time budget ends training first unless a tiny set is used
    # The recipe measured for `edgekit train` on this class of machine (README, "Quality bar"): many small steps
    # beat few large ones on a CPU, so half-size crops, batch 2, a higher learning rate, one torch thread.
    train_batch_size: int = 2
    train_lr: float = 3e-3
    train_class_weighting: Literal["espnet", "none"] = "espnet"
    train_size: tuple[int, int] | None = None  # training crop (default: half the input size in each dimension)
    train_val_scenes: int = 30  # synthetic validation scenes per epoch (picks the best checkpoint)
    calib_count: int | None = None
    eval_scenes: int = 8
    dla_core: int | None = None
    compile: bool = True  # build the engine when TensorRT and a matching GPU are present
    seed: int = 0


@dataclass
class StageRecord:
    name: str
    seconds: float
    summary: str


@dataclass
class BuildResult:
    bundle: Bundle
    stages: list[StageRecord]
    engine_built: bool
    compile_note: str  # why there is or is not an engine, and what to run on the board

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


def default_output(target: Target, model: str) -> Path:
    return Path("runs") / "bundles" / f"{model}-{target.name}"
