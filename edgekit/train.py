"""Training and evaluation of any zoo model on any dataset reader (or the synthetic street scenes).

One function, `train(config)`, runs single-process or under `torchrun` (DistributedDataParallel, gloo on CPU, nccl
on GPUs). Every epoch ends with per-class IoU on the validation split; `best.pt` and `last.pt` are edgekit
checkpoints (model, classes, palette, preprocessing), `last.pt` also carries the optimizer, schedule position and
RNG state so that `resume` continues exactly where a run stopped (Ctrl-C included).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from edgekit.board.classes import ClassSet
from edgekit.board.interrupts import StopRequest, deferred_interrupts
from edgekit.board.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy, present_classes
from edgekit.board.outputs import check_output_dir
from edgekit.board.preprocess import Preprocessing
from edgekit.board.synthetic import SyntheticScenes
from edgekit.checkpoint import Checkpoint
from edgekit.data.datasets import SegmentationSource, open_dataset
from edgekit.data.loader import Batch, SegmentationDataset, collate
from edgekit.data.transforms import Augmentation
from edgekit.errors import EdgekitError
from edgekit.models import build_model, get_spec

IGNORE_INDEX = 255
SYNTHETIC_VAL_OFFSET = 5_000_000  # validation scenes never share a seed with training scenes
console = Console(stderr=True)


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


@dataclass
class EvalReport:
    classes: ClassSet
    confusion: np.ndarray
    images: int
    skipped: int

    @property
    def iou(self) -> np.ndarray:
        return iou_per_class(self.confusion)

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion)

    @property
    def present(self) -> np.ndarray:
        return present_classes(self.confusion)

    @property
    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.confusion)

    def per_class(self) -> dict[str, float]:
        """IoU of each class present in the ground truth, by name."""
        return {
            name: round(float(v), 4) for name, v, p in zip(self.classes.names, self.iou, self.present, strict=True) if p
        }


# ----------------------------------------------------------------------------------------------------- distribution
@dataclass(frozen=True)
class _Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_(self, *flags: bool) -> list[bool]:
        """Per flag, whether any rank raised it (one all-reduce for all of them)."""
        if self.world == 1:
            return list(flags)
        summed = self.sum_(torch.tensor([int(f) for f in flags], device=self.device))
        return [bool(v) for v in summed.tolist()]


def _init_distributed() -> _Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return _Dist(0, 1, torch.device("cuda" if cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if cuda:
        torch.cuda.set_device(local)
    rank = dist.get_rank()
    if rank == 0:
        console.print(f"distributed: {world} processes, backend {backend}")
    return _Dist(rank, world, torch.device(f"cuda:{local}" if cuda else "cpu"))


class _SkipFirst(Sampler[int]):
    """The epoch's sampler with its first `skip` indices dropped: resuming mid-epoch sees the remaining samples."""

    def __init__(self, base: DistributedSampler[Any], skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        for position, index in enumerate(self.base):
            if position >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


# -------------------------------------------------------------------------------------------------- data and model
def _sources(config: TrainConfig) -> tuple[SegmentationSource, SegmentationSource, ClassSet]:
    if config.data is None:
        base = config.seed * 10_000_000
        train = SyntheticScenes(config.synthetic_train, config.input_size, base)
        val = SyntheticScenes(config.synthetic_val, config.input_size, base + SYNTHETIC_VAL_OFFSET)
        return train, val, train.classes
    train_set, val_set = open_dataset(config.data, "train"), open_dataset(config.data, "val")
    for note in dict.fromkeys(train_set.notes + val_set.notes):
        console.print(f"data: {note}")
    cleaned = []
    for dataset in (train_set, val_set):
        unreadable = dataset.verify()
        for sample in unreadable:
            console.print(f"[yellow]warning: skipping unreadable {sample.image} or {sample.mask}[/]")
        if unreadable:
            console.print(f"[yellow]warning: {len(unreadable)} unreadable pairs skipped in {dataset.split}[/]")
        cleaned.append(dataset.without(unreadable))
    return cleaned[0], cleaned[1], train_set.classes


def espnet_class_weights(source: SegmentationSource, num_classes: int, max_samples: int = 200) -> torch.Tensor:
    """ESPNet's weighting 1 / ln(1.10 + p_class) from the class frequencies of (up to max_samples) training masks."""
    histogram = np.zeros(num_classes, np.float64)
    step = max(1, len(source) // max_samples)
    for index in range(0, len(source), step):
        try:
            mask = source.read_mask(index)
        except EdgekitError:
            continue
        histogram += np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=num_classes)[:num_classes]
    if histogram.sum() == 0:
        raise EdgekitError("the training masks hold no labelled pixel: check the masks and the class list")
    return torch.tensor(1.0 / np.log(1.10 + histogram / histogram.sum()), dtype=torch.float32)


def _build(config: TrainConfig, classes: ClassSet) -> tuple[nn.Module, dict[str, Any], Preprocessing]:
    """The network for `classes`, from scratch or from an initial checkpoint (classifier replaced if it differs)."""
    spec = get_spec(config.model)
    if config.init_checkpoint is None:
        model = build_model(config.model, num_classes=len(classes), **config.model_kwargs)
        kwargs = {**spec.kwargs, **config.model_kwargs}
        return model, kwargs, spec.default_preprocessing.with_size(*config.input_size)
    init = Checkpoint.load(config.init_checkpoint)
    if init.model_name != config.model:
        raise EdgekitError(
            f"{config.init_checkpoint} holds {init.model_name}, not {config.model}; pass --model {init.model_name}"
        )
    model = build_model(config.model, num_classes=len(classes), **init.model_kwargs)
    own = model.state_dict()
    kept = {k: v for k, v in init.state_dict.items() if k in own and own[k].shape == v.shape}
    replaced = sorted(k for k in own if k not in kept)
    model.load_state_dict({**own, **kept})
    if replaced:
        console.print(
            f"fine-tuning: {config.init_checkpoint} has {init.num_classes} classes, the data {len(classes)}; "
            f"replaced the classifier ({len(replaced)} tensors, freshly initialised: {', '.join(replaced[:4])}"
            f"{', ...' if len(replaced) > 4 else ''})"
        )
    elif init.classes.names != classes.names:
        console.print("fine-tuning: same class count, different class names: the classifier is kept and retrained")
    return model, dict(init.model_kwargs), init.preprocessing.with_size(*config.input_size)


# --------------------------------------------------------------------------------------------------------- schedule
def learning_rate(config: TrainConfig, progress: float) -> float:
    """The learning rate at `progress` in [0, 1] of the run.

    poly: lr * (1 - progress)^0.9. cyclic: ESPNetv2's hybrid schedule (EdgeNets HybirdLR) in epoch units: a
    warm-up epoch at lr, then cycles of 5 epochs decaying linearly from 5*lr to lr for the first 60% of the epochs,
    then a linear decay to zero.
    """
    progress = min(max(progress, 0.0), 1.0)
    if config.schedule == "poly":
        return config.lr * (1.0 - progress) ** 0.9
    cycle_len = 5
    epoch = progress * config.epochs
    cyclic_epochs = max(1, math.ceil(0.6 * config.epochs))
    if epoch < cyclic_epochs:
        index = int(epoch)
        return config.lr if index == 0 else config.lr * (cycle_len - (index - 1) % cycle_len)
    linear_epochs = config.epochs - cyclic_epochs + 1
    return config.lr * max(0.0, 1.0 - (epoch - cyclic_epochs + 1) / linear_epochs)


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


# ------------------------------------------------------------------------------------------------------ evaluation
def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _upsample_to(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Logits at the masks' resolution (encoders such as ESPNet-C predict at 1/8)."""
    if logits.shape[-2:] == masks.shape[-2:]:
        return logits
    return F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def _confusion(
    model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, progress: Progress | None
) -> tuple[np.ndarray, int, int]:
    """Confusion matrix, images scored, samples skipped as unreadable."""
    model.eval()
    confusion = np.zeros((num_classes, num_classes), np.int64)
    images = skipped = 0
    task = progress.add_task("validating", total=len(loader), status="") if progress else None
    for batch in loader:
        skipped += len(batch.skipped)
        if len(batch):
            logits = _upsample_to(_unwrap(model)(batch.images.to(device)), batch.masks)
            pred = logits.argmax(1).cpu().numpy()
            confusion += confusion_matrix(pred, batch.masks.numpy(), num_classes, IGNORE_INDEX)
            images += len(batch)
        if progress and task is not None:
            progress.advance(task)
    if progress and task is not None:
        progress.remove_task(task)
    return confusion, images, skipped


def progress_bars() -> Progress:
    """The training bars (with ETA) on the training console; other long commands nest theirs in it."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def evaluate(
    checkpoint: Path,
    data: Path | None,
    split: str = "val",
    batch_size: int = 4,
    num_workers: int = 0,
    synthetic_count: int = 40,
    seed: int = 0,
) -> EvalReport:
    """Score a checkpoint on a dataset split (data None: the synthetic validation scenes) at its input size."""
    ckpt = Checkpoint.load(checkpoint)
    source: SegmentationSource
    if data is None:
        source = SyntheticScenes(
            synthetic_count, ckpt.preprocessing.input_size, seed * 10_000_000 + SYNTHETIC_VAL_OFFSET
        )
    else:
        source = open_dataset(Path(data), split)
    if tuple(source.classes.names) != tuple(ckpt.classes.names[: len(source.classes)]):
        raise EdgekitError(
            f"{checkpoint} predicts {ckpt.num_classes} classes ({', '.join(ckpt.classes.names[:5])}, ...) but the "
            f"data has {len(source.classes)} ({', '.join(source.classes.names[:5])}, ...): evaluate on the data the "
            "model was trained for"
        )
    model = ckpt.build()
    loader = DataLoader(
        SegmentationDataset(source, ckpt.preprocessing),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate,
    )
    with progress_bars() as progress:
        confusion, images, skipped = _confusion(model, loader, ckpt.num_classes, torch.device("cpu"), progress)
    if skipped:
        console.print(f"[yellow]warning: {skipped} unreadable samples skipped[/]")
    return EvalReport(ckpt.classes, confusion, images, skipped)


# --------------------------------------------------------------------------------------------------------- training
RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "training_curve.png")


def is_training_run(folder: Path) -> bool:
    """Whether every entry of ``folder`` is a file that training writes (the folder is a run, nothing else)."""
    entries = list(folder.iterdir())
    return bool(entries) and all(e.name in RUN_FILES or e.name.endswith(".pt.partial") for e in entries)


def _check_out_dir(config: TrainConfig) -> bool:
    """Refuse to write into a folder of other files, or over an earlier run without --resume (of that run) or
    --overwrite; whether this run continues the one in the folder (else the folder's run files are replaced)."""
    out = config.out_dir
    check_output_dir(out, "training output folder", is_training_run, "a training run (best.pt, last.pt, ...)")
    continues_this_run = config.resume is not None and config.resume.resolve().parent == out.resolve()
    if not continues_this_run and not config.overwrite and out.is_dir() and is_training_run(out):
        metrics = out / "metrics.jsonl"
        epochs = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        raise EdgekitError(
            f"{out} already holds a training run ({epochs} epochs in metrics.jsonl); continue it with --resume "
            f"{out / 'last.pt'}, replace it with --overwrite, or choose another --out"
        )
    return continues_this_run


def _checkpoint(
    model: nn.Module,
    config: TrainConfig,
    classes: ClassSet,
    model_kwargs: dict[str, Any],
    preprocessing: Preprocessing,
    meta: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> Checkpoint:
    state = {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
    return Checkpoint(config.model, model_kwargs, classes, preprocessing, state, meta, training)


def _plot(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:red", label="train loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("train loss", color="tab:red")
    miou_axis = loss_axis.twinx()
    miou_axis.plot(epochs, [h["miou"] for h in history], "s-", color="tab:blue", label="val mIoU")
    miou_axis.set_ylabel("validation mIoU", color="tab:blue")
    miou_axis.set_ylim(0, 1)
    fig.suptitle("edgekit training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(config: TrainConfig) -> TrainResult:
    """Train, validate every epoch, keep best/last checkpoints, metrics.jsonl and training_curve.png in out_dir."""
    env = _init_distributed()
    threads = torch.get_num_threads()
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        return _train(config, env)
    finally:
        torch.set_num_threads(threads)  # a library call leaves the process as it found it
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, env: _Dist) -> TrainResult:
    started = time.monotonic()
    torch.manual_seed(config.seed)
    continues_this_run = _check_out_dir(config)
    if env.world > 1:
        dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    resume = Checkpoint.load(config.resume) if config.resume else None
    if resume is not None and resume.training is None:
        raise EdgekitError(f"{config.resume} has no training state (only last.pt is resumable); use --init instead")
    if resume is not None and resume.model_name != config.model:
        raise EdgekitError(
            f"{config.resume} is a run of {resume.model_name}, not {config.model}; resume with --model "
            f"{resume.model_name}"
        )
    train_source, val_source, classes = _sources(config)
    model, model_kwargs, preprocessing = _build(config, classes)
    if resume is not None:
        if resume.classes.names != classes.names:
            raise EdgekitError(
                f"{config.resume} was trained on {resume.num_classes} classes ({', '.join(resume.classes.names[:4])}, "
                f"...), the data has {len(classes)} ({', '.join(classes.names[:4])}, ...); resume on the same data"
            )
        model.load_state_dict(resume.state_dict)
    model.to(env.device)
    weights = espnet_class_weights(train_source, len(classes)) if config.class_weighting == "espnet" else None
    if weights is not None and env.main:
        console.print("class weights (ESPNet 1/ln(1.10+p)): " + ", ".join(f"{w:.1f}" for w in weights.tolist()))
    criterion = nn.CrossEntropyLoss(weight=weights.to(env.device) if weights is not None else None, ignore_index=255)
    train_model: nn.Module = model
    if env.world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.index is not None else None
        )
    optimizer = _optimizer(config, model)

    augmentation = Augmentation() if config.augment else None
    train_size = config.crop_size or config.input_size
    train_data = SegmentationDataset(train_source, preprocessing.with_size(*train_size), augmentation, config.seed)
    val_data = SegmentationDataset(val_source, preprocessing)
    sampler: DistributedSampler[Any] = DistributedSampler(
        train_data, num_replicas=env.world, rank=env.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    val_subset = torch.utils.data.Subset(val_data, range(env.rank, len(val_data), env.world))
    val_loader = DataLoader(
        val_subset, batch_size=config.batch_size, num_workers=config.num_workers, collate_fn=collate
    )
    per_rank = len(sampler)
    drop_last = per_rank >= config.batch_size
    steps_per_epoch = per_rank // config.batch_size if drop_last else 1
    total_steps = steps_per_epoch * config.epochs

    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "elapsed_s": 0.0,
        "best_miou": -1.0,
        "history": [],
        "skipped": 0,
        "epoch_losses": [],  # the losses of the epoch in progress: an epoch resumed mid-way reports all its steps
    }
    if resume is not None and resume.training is not None:
        training = resume.training
        optimizer.load_state_dict(training["optimizer"])
        torch.set_rng_state(training["torch_rng"])
        state.update({k: training[k] for k in state if k in training})
        if env.main:
            console.print(
                f"resuming {config.resume}: epoch {state['epoch'] + 1}, step {state['step_in_epoch']} of "
                f"{steps_per_epoch}, best mIoU so far {max(state['best_miou'], 0):.4f}"
            )
    config.out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = config.out_dir / "metrics.jsonl"
    best_path, last_path = config.out_dir / "best.pt", config.out_dir / "last.pt"
    if not continues_this_run and env.main:
        for name in RUN_FILES:  # --overwrite: nothing of the earlier run may mix with this one
            (config.out_dir / name).unlink(missing_ok=True)
    elapsed_before = float(state["elapsed_s"])
    eval_reserve = 0.0  # seconds kept for the validation that ends a budgeted run; measured after each one
    step_seconds: list[float] = []

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - started

    def progress_fraction() -> float:
        by_steps = state["global_step"] / max(total_steps, 1)
        if config.time_budget_s:
            return max(by_steps, elapsed() / config.time_budget_s)
        return by_steps

    def training_state() -> dict[str, Any]:
        return {
            **state,
            "elapsed_s": elapsed(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "schedule": {"name": config.schedule, "progress": progress_fraction()},
            "config": config.to_dict(),
        }

    def save_last(meta: dict[str, Any]) -> None:
        if env.main:
            _checkpoint(model, config, classes, model_kwargs, preprocessing, meta, training_state()).save(last_path)

    progress = progress_bars() if env.main else None
    if progress:
        progress.start()
    interrupted = False
    consistent = True  # False while a step or the epoch's bookkeeping is half done: last.pt must not catch that
    with deferred_interrupts() as stop:
        try:
            out_of_time = False
            while state["epoch"] < config.epochs and not out_of_time:
                if env.any_(stop.requested)[0]:
                    raise stop.interrupted()
                epoch = int(state["epoch"])
                sampler.set_epoch(epoch)
                train_data.set_epoch(epoch)
                loader = DataLoader(
                    train_data,
                    batch_size=config.batch_size,
                    sampler=_SkipFirst(sampler, int(state["step_in_epoch"]) * config.batch_size),
                    num_workers=config.num_workers,
                    collate_fn=collate,
                    drop_last=drop_last,
                    persistent_workers=False,
                    # its own seed: a loader drawing from the global RNG would shift it on every resume
                    generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch),
                )
                task = (
                    progress.add_task(
                        f"epoch {epoch + 1}/{config.epochs}",
                        total=steps_per_epoch,
                        completed=state["step_in_epoch"],
                        status="",
                    )
                    if progress
                    else None
                )
                train_model.train()
                losses: list[float] = state["epoch_losses"]
                for batch in _batches(loader, stop):
                    lr = learning_rate(config, progress_fraction())
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    step_started = time.monotonic()
                    consistent = False
                    loss = _step(train_model, criterion, optimizer, batch, train_size, env.device, env.world > 1)
                    step_seconds.append(time.monotonic() - step_started)
                    for item in batch.skipped:
                        console.print(f"[yellow]warning: skipped unreadable {item.what}: {item.reason}[/]")
                    state["skipped"] += len(batch.skipped)
                    if loss is not None:
                        losses.append(loss)
                    state["step_in_epoch"] += 1
                    state["global_step"] += 1
                    consistent = True
                    if progress and task is not None:
                        status = f"loss {np.mean(losses[-20:]):.3f} lr {lr:.2e}" if losses else ""
                        progress.update(task, advance=1, status=status)
                        if not console.is_terminal and state["step_in_epoch"] % max(1, steps_per_epoch // 5) == 0:
                            console.print(f"epoch {epoch + 1} step {state['step_in_epoch']}/{steps_per_epoch}: "
                                          f"{status} ({elapsed():.0f} s)")  # fmt: skip
                    if not eval_reserve and step_seconds:
                        # Before the first validation: a forward pass costs about a third of a training step.
                        pixel_ratio = (config.input_size[0] * config.input_size[1]) / (train_size[0] * train_size[1])
                        eval_reserve = float(np.median(step_seconds)) * len(val_loader) * pixel_ratio / 3
                    budget_spent = bool(config.time_budget_s) and elapsed() + eval_reserve >= float(
                        config.time_budget_s or 0
                    )
                    stop_now, out_of_time = env.any_(stop.requested, budget_spent)
                    if stop_now:  # the step is complete: last.pt resumes exactly after it
                        raise stop.interrupted()
                    if out_of_time:
                        break
                if env.any_(stop.requested)[0]:  # requested while a batch was being fetched
                    raise stop.interrupted()
                if progress and task is not None:
                    progress.remove_task(task)
                eval_started = time.monotonic()
                confusion, _, val_skipped = _confusion(train_model, val_loader, len(classes), env.device, progress)
                confusion = env.sum_(torch.from_numpy(confusion)).numpy()
                eval_reserve = 1.2 * (time.monotonic() - eval_started)
                report = EvalReport(classes, confusion, 0, val_skipped)
                loss_sum = env.sum_(torch.tensor([float(np.sum(losses)), float(len(losses))], dtype=torch.float64))
                consistent = False
                record = {
                    "epoch": epoch + 1,
                    "train_loss": float(loss_sum[0]) / max(float(loss_sum[1]), 1.0),
                    "lr": learning_rate(config, progress_fraction()),
                    "miou": report.miou,
                    "pixel_accuracy": report.pixel_accuracy,
                    "iou": report.per_class(),
                    "elapsed_s": round(elapsed(), 1),
                    "skipped": int(state["skipped"]) + val_skipped,
                    "partial_epoch": out_of_time,
                }
                state["history"].append(record)
                state["epoch"] += 1
                state["step_in_epoch"] = 0
                state["epoch_losses"] = []
                meta = {
                    "miou": report.miou,
                    "iou": report.per_class(),
                    "epoch": epoch + 1,
                    "trained_with": config.to_dict(),
                }
                if env.main:
                    with metrics_path.open("a") as stream:
                        stream.write(json.dumps(record) + "\n")
                    console.print(
                        f"epoch {epoch + 1}: loss {record['train_loss']:.4f}  val mIoU {report.miou:.4f}  "
                        f"pixel acc {report.pixel_accuracy:.4f}  ({record['elapsed_s']:.0f} s)"
                    )
                    if report.miou > state["best_miou"]:
                        _checkpoint(model, config, classes, model_kwargs, preprocessing, meta).save(best_path)
                state["best_miou"] = max(state["best_miou"], report.miou)  # every rank: the confusion is all-reduced
                save_last(meta)
                consistent = True
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if progress:
                progress.stop()
            if interrupted and env.main and consistent:
                save_last({"interrupted": True, "epoch": state["epoch"]})
                console.print(
                    f"interrupted: saved {last_path} after step {state['step_in_epoch']} of epoch "
                    f"{state['epoch'] + 1}; continue with the same command plus --resume {last_path}"
                )
            elif interrupted and env.main:
                console.print(f"interrupted mid-step: {last_path} was not updated (it holds the previous save)")
    if env.main and state["history"]:
        _plot(state["history"], config.out_dir / "training_curve.png")
    if state["skipped"] and env.main:
        console.print(f"[yellow]{state['skipped']} unreadable training samples were skipped[/]")
    return TrainResult(best_path, last_path, float(state["best_miou"]), list(state["history"]))


def _batches(loader: DataLoader, stop: StopRequest) -> Iterator[Batch]:
    """The loader's batches; once a stop is requested a failing fetch (a Ctrl-C reaches the loader's worker
    processes too, and they exit) ends the epoch early instead of raising, so the stop is handled after it."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception:
            if stop.requested:
                return
            raise
        yield batch


def _step(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    size: tuple[int, int],
    device: torch.device,
    distributed: bool,
) -> float | None:
    """One optimisation step; under DDP a batch of only unreadable samples still joins the gradient sync."""
    optimizer.zero_grad(set_to_none=True)
    if len(batch) == 0:
        if not distributed:
            return None
        dummy = torch.zeros(1, 3, size[1], size[0], device=device)
        (model(dummy).sum() * 0.0).backward()
        optimizer.step()
        return None
    logits = _upsample_to(model(batch.images.to(device)), batch.masks)
    loss = criterion(logits, batch.masks.to(device))
    loss.backward()
    optimizer.step()
    return float(loss.item())
