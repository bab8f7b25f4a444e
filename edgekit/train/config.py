"""What a training run is asked to do (`TrainConfig`) and what it leaves (`TrainResult`); the CLI's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgekit.errors import EdgekitError
from edgekit.models import get_spec


@dataclass
class TrainConfig:
    model: str
    data: Path | None  # a dataset folder; None = synthetic street scenes generated in memory
    out_dir: Path
    input_size: tuple[int, int] = (512, 256)  # (width, height)
    epochs: int = 100
    time_budget_s: float | None = None  # wall-clock budget for the whole run, validation included
    batch_size: int = 8
    lr: float = 5e-4
    optimizer: Literal["adam", "sgd"] = "adam"
    schedule: Literal["poly", "cyclic"] = "poly"
    class_weighting: Literal["espnet", "none"] = "espnet"
    init_checkpoint: Path | None = None  # an edgekit checkpoint (official weights: `edgekit import-weights`)
    num_workers: int = 2
    seed: int = 0
    resume: Path | None = None
    weight_decay: float = 5e-4
    synthetic_train: int = 400  # scenes per epoch when data is None
    synthetic_val: int = 40
    augment: bool = True
    crop_size: tuple[int, int] | None = None  # train on random crops of this WxH (validation stays at input_size)
    threads: int | None = None  # torch intra-op threads; 1 is fastest on a CPU shared with other jobs
    overwrite: bool = False  # replace an earlier run in out_dir (otherwise only --resume may write there)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # builder arguments, e.g. an lpsnet-scaled {B, C, R}

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.data = Path(self.data) if self.data is not None else None
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        spec = get_spec(self.model)
        spec.check_input_size(self.input_size, "--input-size")
        if self.crop_size is not None:
            self.crop_size = (int(self.crop_size[0]), int(self.crop_size[1]))
            if self.crop_size[0] > self.input_size[0] or self.crop_size[1] > self.input_size[1]:
                raise EdgekitError(f"crop {self.crop_size} must fit in the input size {self.input_size}")
            spec.check_input_size(self.crop_size, "--crop")
        if self.optimizer not in ("adam", "sgd"):
            raise EdgekitError(f"optimizer must be adam or sgd, not {self.optimizer!r}")
        if self.schedule not in ("poly", "cyclic"):
            raise EdgekitError(f"schedule must be poly or cyclic, not {self.schedule!r}")
        if self.class_weighting not in ("espnet", "none"):
            raise EdgekitError(f"class weighting must be espnet or none, not {self.class_weighting!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise EdgekitError("epochs and batch size must be at least 1 and the learning rate positive")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        data["input_size"] = list(self.input_size)
        data["crop_size"] = list(self.crop_size) if self.crop_size else None
        return data


@dataclass
class TrainResult:
    best: Path
    last: Path
    best_miou: float
    history: list[dict[str, Any]] = field(default_factory=list)
