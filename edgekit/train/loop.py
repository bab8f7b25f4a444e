"""The training loop: `train(config)`, single-process or under `torchrun` (DistributedDataParallel).

Every epoch ends with per-class IoU on the validation split; `best.pt` and `last.pt` are edgekit checkpoints
(model, classes, palette, preprocessing), `last.pt` also carries the optimizer, the :class:`TrainState` and the RNG
state, so that `resume` continues exactly where a run stopped (Ctrl-C and SIGTERM included: the step in progress
completes first).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from edgekit.board import events
from edgekit.board.classes import ClassSet
from edgekit.board.interrupts import StopRequest, deferred_interrupts
from edgekit.checkpoint import Checkpoint
from edgekit.data.datasets import IGNORE_INDEX, SegmentationSource
from edgekit.data.loader import Batch
from edgekit.errors import EdgekitError
from edgekit.train.config import TrainConfig, TrainResult
from edgekit.train.data import batches, espnet_class_weights, run_data, sources
from edgekit.train.distributed import Distribution, init_distributed
from edgekit.train.evaluate import EvalReport, confusion
from edgekit.train.folder import check_out_dir, clear_run_files, plot_history
from edgekit.train.model import build_network, make_optimizer, upsample_to
from edgekit.train.schedule import learning_rate

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where a run is and what it has recorded; last.pt carries it (beside optimizer and RNG) to resume exactly."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    elapsed_s: float = 0.0
    best_miou: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    epoch_losses: list[float] = field(default_factory=list)  # the epoch in progress: a resumed one reports all steps

    @classmethod
    def restore(cls, training: dict[str, Any]) -> TrainState:
        return cls(**{f.name: training[f.name] for f in fields(cls) if f.name in training})


def train(config: TrainConfig) -> TrainResult:
    """Train, validate every epoch, keep best/last checkpoints, metrics.jsonl and training_curve.png in out_dir."""
    env = init_distributed()
    threads = torch.get_num_threads()
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        return Trainer(config, env).run()
    finally:
        torch.set_num_threads(threads)  # a library call leaves the process as it found it
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _load_resume(config: TrainConfig) -> Checkpoint | None:
    resume = Checkpoint.load(config.resume) if config.resume else None
    if resume is not None and resume.training is None:
        raise EdgekitError(f"{config.resume} has no training state (only last.pt is resumable); use --init instead")
    if resume is not None and resume.model_name != config.model:
        raise EdgekitError(
            f"{config.resume} is a run of {resume.model_name}, not {config.model}; resume with --model "
            f"{resume.model_name}"
        )
    return resume


def _check_resume_classes(config: TrainConfig, resume: Checkpoint, classes: ClassSet) -> None:
    if resume.classes.names != classes.names:
        raise EdgekitError(
            f"{config.resume} was trained on {resume.num_classes} classes ({', '.join(resume.classes.names[:4])}, "
            f"...), the data has {len(classes)} ({', '.join(classes.names[:4])}, ...); resume on the same data"
        )


class Trainer:
    """One run: its network, optimizer, data and :class:`TrainState`, stepped an epoch at a time."""

    def __init__(self, config: TrainConfig, env: Distribution) -> None:
        self.started = time.monotonic()
        self.config, self.env = config, env
        torch.manual_seed(config.seed)
        continues_this_run = check_out_dir(config)
        if env.world > 1:
            dist.barrier()  # every rank has checked the folder before rank 0 writes into it
        resume = _load_resume(config)
        train_source, val_source, classes = sources(config)
        self.network = build_network(config, classes)
        if resume is not None:
            _check_resume_classes(config, resume, classes)
            self.network.model.load_state_dict(resume.state_dict)
        self.network.model.to(env.device)
        self.criterion = self._criterion(train_source)
        self.train_model: nn.Module = self.network.model
        if env.world > 1:
            device_ids = [env.device.index] if env.device.index is not None else None
            self.train_model = nn.parallel.DistributedDataParallel(self.network.model, device_ids=device_ids)
        self.optimizer = make_optimizer(config, self.network.model)
        self.data = run_data(config, self.network.preprocessing, train_source, val_source, env)
        self.state = TrainState()
        if resume is not None and resume.training is not None:
            self._restore(resume.training)
        config.out_dir.mkdir(parents=True, exist_ok=True)
        if not continues_this_run and env.main:
            clear_run_files(config.out_dir)
        self.best_path, self.last_path = config.out_dir / "best.pt", config.out_dir / "last.pt"
        self.elapsed_before = self.state.elapsed_s
        self.eval_reserve = 0.0  # seconds kept for the validation that ends a budgeted run; measured after each one
        self.step_seconds: list[float] = []
        self.consistent = True  # False while a step or an epoch's bookkeeping is half done: last.pt must not catch it

    def _criterion(self, train_source: SegmentationSource) -> nn.Module:
        classes = self.network.classes
        weights = espnet_class_weights(train_source, len(classes)) if self.config.class_weighting == "espnet" else None
        if weights is not None and self.env.main:
            log.info("class weights (ESPNet 1/ln(1.10+p)): %s", ", ".join(f"{w:.1f}" for w in weights.tolist()))
        weight = weights.to(self.env.device) if weights is not None else None
        return nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX)

    def _restore(self, training: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(training["optimizer"])
        torch.set_rng_state(training["torch_rng"])
        self.state = TrainState.restore(training)
        if self.env.main:
            log.info(
                "resuming %s: epoch %d, step %d of %d, best mIoU so far %.4f", self.config.resume,
                self.state.epoch + 1, self.state.step_in_epoch, self.data.steps_per_epoch, max(self.state.best_miou, 0),
            )  # fmt: skip

    # ------------------------------------------------------------------------------------------ time and saving
    def elapsed(self) -> float:
        """Seconds of this run, the runs it resumes included."""
        return self.elapsed_before + time.monotonic() - self.started

    def progress_fraction(self) -> float:
        """How far the run is, in [0, 1]: by steps, or by the time budget when that is further."""
        by_steps = self.state.global_step / max(self.data.steps_per_epoch * self.config.epochs, 1)
        if self.config.time_budget_s:
            return max(by_steps, self.elapsed() / self.config.time_budget_s)
        return by_steps

    def _save_last(self, meta: dict[str, Any]) -> None:
        if not self.env.main:
            return
        training = {
            **asdict(self.state),
            "elapsed_s": self.elapsed(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "schedule": {"name": self.config.schedule, "progress": self.progress_fraction()},
            "config": self.config.to_dict(),
        }
        self.network.checkpoint(meta, training).save(self.last_path)

    # ------------------------------------------------------------------------------------------------- the run
    def run(self) -> TrainResult:
        with deferred_interrupts() as stop:
            try:
                while self.state.epoch < self.config.epochs:
                    if self._epoch(stop):
                        break  # out of time
            except KeyboardInterrupt:
                self._after_interrupt()
                raise
            if stop.requested and self.env.main:  # came after the last check; raised as the block ends
                log.info("interrupted after the last step: the run is complete, %s is saved", self.best_path)
        if self.env.main and self.state.history:
            plot_history(self.state.history, self.config.out_dir / "training_curve.png")
        if self.state.skipped and self.env.main:
            log.warning("%d unreadable training samples were skipped", self.state.skipped)
        return TrainResult(self.best_path, self.last_path, float(self.state.best_miou), list(self.state.history))

    def _after_interrupt(self) -> None:
        if not self.env.main:
            return
        if self.consistent:
            self._save_last({"interrupted": True, "epoch": self.state.epoch})
            log.info(
                "interrupted: saved %s after step %d of epoch %d; continue with the same command plus --resume %s",
                self.last_path, self.state.step_in_epoch, self.state.epoch + 1, self.last_path,
            )  # fmt: skip
        else:
            log.warning("interrupted mid-step: %s was not updated (it holds the previous save)", self.last_path)

    def _epoch(self, stop: StopRequest) -> bool:
        """One epoch (what is left of it, resumed) and its validation; whether the time budget ends the run."""
        if self.env.any_(stop.requested)[0]:
            raise stop.interrupted()
        epoch, config = self.state.epoch, self.config
        loader = self.data.epoch_loader(epoch, self.state.step_in_epoch)
        out_of_time = False
        with self.env.task(f"epoch {epoch + 1}/{config.epochs}", self.data.steps_per_epoch) as work:
            if work is not None and self.state.step_in_epoch:
                work.advance(self.state.step_in_epoch)
            self.train_model.train()
            for batch in batches(loader, stop):
                self._show_step(work, self._step(batch))
                stop_now, out_of_time = self._stop_flags(stop)
                if stop_now:  # the step is complete: last.pt resumes exactly after it
                    raise stop.interrupted()
                if out_of_time:
                    break
        if self.env.any_(stop.requested)[0]:  # requested while a batch was being fetched
            raise stop.interrupted()
        self._end_epoch(epoch, out_of_time)
        return out_of_time

    def _step(self, batch: Batch) -> float:
        """One optimisation step at the schedule's learning rate; returns that learning rate."""
        lr = learning_rate(self.config, self.progress_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        step_started = time.monotonic()
        self.consistent = False
        loss = optimisation_step(
            self.train_model, self.criterion, self.optimizer, batch, self.data.train_size, self.env.device,
            self.env.world > 1,
        )  # fmt: skip
        self.step_seconds.append(time.monotonic() - step_started)
        for item in batch.skipped:
            log.warning("skipped unreadable %s: %s", item.what, item.reason)
        self.state.skipped += len(batch.skipped)
        if loss is not None:
            self.state.epoch_losses.append(loss)
        self.state.step_in_epoch += 1
        self.state.global_step += 1
        self.consistent = True
        return lr

    def _show_step(self, work: events.Task | None, lr: float) -> None:
        """The bar's loss and learning rate, and a log line five times an epoch (for logs without bars)."""
        losses = self.state.epoch_losses
        status = f"loss {np.mean(losses[-20:]):.3f} lr {lr:.2e}" if losses else ""
        if work is not None:
            work.update(status=status)
            work.advance()
        step, steps = self.state.step_in_epoch, self.data.steps_per_epoch
        if self.env.main and step % max(1, steps // 5) == 0:
            log.info("epoch %d step %d/%d: %s (%.0f s)", self.state.epoch + 1, step, steps, status, self.elapsed())

    def _stop_flags(self, stop: StopRequest) -> tuple[bool, bool]:
        """(a stop was requested, the time budget is spent) on any rank, with the closing validation reserved."""
        if not self.eval_reserve and self.step_seconds:
            # Before the first validation: a forward pass costs about a third of a training step.
            (width, height), (train_width, train_height) = self.config.input_size, self.data.train_size
            pixel_ratio = (width * height) / (train_width * train_height)
            self.eval_reserve = float(np.median(self.step_seconds)) * len(self.data.val) * pixel_ratio / 3
        budget = self.config.time_budget_s
        budget_spent = bool(budget) and self.elapsed() + self.eval_reserve >= float(budget or 0)
        stop_now, out_of_time = self.env.any_(stop.requested, budget_spent)
        return stop_now, out_of_time

    # ----------------------------------------------------------------------------------------- end of an epoch
    def _validate(self) -> EvalReport:
        """The confusion over every rank's share of the validation split; remeasures the validation reserve."""
        started = time.monotonic()
        classes = self.network.classes
        with self.env.task("validating", len(self.data.val)) as work:
            matrix, _, skipped = confusion(self.train_model, self.data.val, len(classes), self.env.device, work)
        matrix = self.env.sum_(torch.from_numpy(matrix)).numpy()
        self.eval_reserve = 1.2 * (time.monotonic() - started)
        return EvalReport(classes, matrix, 0, skipped)

    def _end_epoch(self, epoch: int, out_of_time: bool) -> None:
        """Validate, record the epoch in the state and metrics.jsonl, save best.pt (if better) and last.pt."""
        report = self._validate()
        losses = self.state.epoch_losses
        loss_sum = self.env.sum_(torch.tensor([float(np.sum(losses)), float(len(losses))], dtype=torch.float64))
        self.consistent = False
        record = {
            "epoch": epoch + 1,
            "train_loss": float(loss_sum[0]) / max(float(loss_sum[1]), 1.0),
            "lr": learning_rate(self.config, self.progress_fraction()),
            "miou": report.miou,
            "pixel_accuracy": report.pixel_accuracy,
            "iou": report.per_class(),
            "elapsed_s": round(self.elapsed(), 1),
            "skipped": self.state.skipped + report.skipped,
            "partial_epoch": out_of_time,
        }
        self.state.history.append(record)
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        self.state.epoch_losses = []
        meta = {"miou": report.miou, "iou": report.per_class(), "epoch": epoch + 1}
        meta["trained_with"] = self.config.to_dict()
        if self.env.main:
            self._publish(record, meta)
        self.state.best_miou = max(self.state.best_miou, report.miou)  # every rank: the confusion is all-reduced
        self._save_last(meta)
        self.consistent = True

    def _publish(self, record: dict[str, Any], meta: dict[str, Any]) -> None:
        with (self.config.out_dir / "metrics.jsonl").open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        log.info(
            "epoch %d: loss %.4f  val mIoU %.4f  pixel acc %.4f  (%.0f s)", record["epoch"], record["train_loss"],
            record["miou"], record["pixel_accuracy"], record["elapsed_s"],
        )  # fmt: skip
        if record["miou"] > self.state.best_miou:
            self.network.checkpoint(meta).save(self.best_path)


def optimisation_step(
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
    logits = upsample_to(model(batch.images.to(device)), batch.masks)
    loss = criterion(logits, batch.masks.to(device))
    loss.backward()
    optimizer.step()
    return float(loss.item())
