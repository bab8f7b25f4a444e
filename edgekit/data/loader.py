"""Torch datasets over any SegmentationSource: augmented, preprocessed exactly as the model expects, at training size.

Samples that cannot be decoded come back as `Skipped` markers instead of exceptions, so one corrupt file never
kills an epoch; `collate` drops them and hands their names to the training loop, which warns and counts.
Augmentation randomness derives from (seed, epoch, index), so data is identical whatever the worker count and a
resumed run sees the same samples as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from edgekit.board.preprocess import Preprocessing
from edgekit.data.datasets import SegmentationSource, UnreadableSample
from edgekit.data.transforms import Augmentation, resize_pair


@dataclass(frozen=True)
class Skipped:
    what: str
    reason: str


Item = tuple[torch.Tensor, torch.Tensor] | Skipped


class SegmentationDataset(Dataset[Item]):
    """(3xHxW float32 network input, HxW int64 train ids) at the preprocessing's size."""

    def __init__(
        self,
        source: SegmentationSource,
        preprocessing: Preprocessing,
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ) -> None:
        self.source = source
        self.preprocessing = preprocessing
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Item:
        try:
            image, mask = self.source.read(index)
        except UnreadableSample as exc:
            return Skipped(self.source.describe(index), str(exc))
        size = self.preprocessing.input_size
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = self.augmentation(image, mask, size, rng)
        else:
            image, mask = resize_pair(image, mask, size)
        x = torch.from_numpy(self.preprocessing(image)[0])
        return x, torch.from_numpy(mask.astype(np.int64))


@dataclass
class Batch:
    images: torch.Tensor
    masks: torch.Tensor
    skipped: list[Skipped]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def collate(items: list[Item]) -> Batch:
    good = [item for item in items if not isinstance(item, Skipped)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    if not good:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.int64), skipped)
    return Batch(torch.stack([g[0] for g in good]), torch.stack([g[1] for g in good]), skipped)
