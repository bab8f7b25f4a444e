"""Per-class IoU of a model on a split: after every training epoch, and for a checkpoint (`edgekit eval`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from edgekit.board import events
from edgekit.board.classes import ClassSet
from edgekit.board.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy, present_classes
from edgekit.board.synthetic import SyntheticScenes
from edgekit.checkpoint import Checkpoint
from edgekit.data.datasets import IGNORE_INDEX, SegmentationSource, open_dataset
from edgekit.data.loader import SegmentationDataset, collate
from edgekit.errors import EdgekitError
from edgekit.train.data import synthetic_val_base
from edgekit.train.model import unwrap, upsample_to

log = logging.getLogger(__name__)


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


@torch.no_grad()
def confusion(
    model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, work: events.Task | None
) -> tuple[np.ndarray, int, int]:
    """Confusion matrix, images scored, samples skipped as unreadable; `work` advances per batch."""
    model.eval()
    matrix = np.zeros((num_classes, num_classes), np.int64)
    images = skipped = 0
    for batch in loader:
        skipped += len(batch.skipped)
        if len(batch):
            logits = upsample_to(unwrap(model)(batch.images.to(device)), batch.masks)
            pred = logits.argmax(1).cpu().numpy()
            matrix += confusion_matrix(pred, batch.masks.numpy(), num_classes, IGNORE_INDEX)
            images += len(batch)
        if work is not None:
            work.advance()
    return matrix, images, skipped


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
        source = SyntheticScenes(synthetic_count, ckpt.preprocessing.input_size, synthetic_val_base(seed))
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
    with events.task("validating", total=len(loader)) as work:
        matrix, images, skipped = confusion(model, loader, ckpt.num_classes, torch.device("cpu"), work)
    if skipped:
        log.warning("%d unreadable samples skipped", skipped)
    return EvalReport(ckpt.classes, matrix, images, skipped)
