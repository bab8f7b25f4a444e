"""What a run trains and validates on: the dataset splits (or synthetic scenes), class weights and the loaders."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from edgekit.board.classes import ClassSet
from edgekit.board.interrupts import StopRequest
from edgekit.board.preprocess import Preprocessing
from edgekit.board.synthetic import SyntheticScenes
from edgekit.data.datasets import IGNORE_INDEX, SegmentationSource, open_dataset
from edgekit.data.loader import Batch, SegmentationDataset, collate
from edgekit.data.transforms import Augmentation
from edgekit.errors import EdgekitError
from edgekit.train.config import TrainConfig
from edgekit.train.distributed import Distribution, SkipFirst

SYNTHETIC_VAL_OFFSET = 5_000_000  # validation scenes never share a seed with training scenes

log = logging.getLogger(__name__)


def synthetic_val_base(seed: int) -> int:
    """The first scene seed of a run's synthetic validation split (`edgekit eval` scores the same scenes)."""
    return seed * 10_000_000 + SYNTHETIC_VAL_OFFSET


def sources(config: TrainConfig) -> tuple[SegmentationSource, SegmentationSource, ClassSet]:
    """The training and validation splits, unreadable pairs dropped (and said), and their classes."""
    if config.data is None:
        train = SyntheticScenes(config.synthetic_train, config.input_size, config.seed * 10_000_000)
        val = SyntheticScenes(config.synthetic_val, config.input_size, synthetic_val_base(config.seed))
        return train, val, train.classes
    train_set, val_set = open_dataset(config.data, "train"), open_dataset(config.data, "val")
    for note in dict.fromkeys(train_set.notes + val_set.notes):
        log.info("data: %s", note)
    cleaned = []
    for dataset in (train_set, val_set):
        unreadable = dataset.verify()
        for sample in unreadable:
            log.warning("skipping unreadable %s or %s", sample.image, sample.mask)
        if unreadable:
            log.warning("%d unreadable pairs skipped in %s", len(unreadable), dataset.split)
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


@dataclass
class RunData:
    """The training set with its distributed sampler, and this rank's share of the validation set."""

    train: SegmentationDataset
    sampler: DistributedSampler[Any]
    val: DataLoader
    train_size: tuple[int, int]  # (width, height) of the training samples: the crop, or the input size
    config: TrainConfig

    @property
    def drop_last(self) -> bool:
        return len(self.sampler) >= self.config.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return len(self.sampler) // self.config.batch_size if self.drop_last else 1

    def epoch_loader(self, epoch: int, steps_done: int) -> DataLoader:
        """The epoch's batches after the first `steps_done` (a resumed epoch sees the rest)."""
        self.sampler.set_epoch(epoch)
        self.train.set_epoch(epoch)
        return DataLoader(
            self.train,
            batch_size=self.config.batch_size,
            sampler=SkipFirst(self.sampler, steps_done * self.config.batch_size),
            num_workers=self.config.num_workers,
            collate_fn=collate,
            drop_last=self.drop_last,
            persistent_workers=False,
            # its own seed: a loader drawing from the global RNG would shift it on every resume
            generator=torch.Generator().manual_seed(self.config.seed * 100_003 + epoch),
        )


def run_data(
    config: TrainConfig,
    preprocessing: Preprocessing,
    train_source: SegmentationSource,
    val_source: SegmentationSource,
    env: Distribution,
) -> RunData:
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
    return RunData(train_data, sampler, val_loader, train_size, config)


def batches(loader: DataLoader, stop: StopRequest) -> Iterator[Batch]:
    """The loader's batches; once a stop is requested a failing fetch (a Ctrl-C reaches the loader's worker
    processes too, and they exit) ends the epoch early instead of raising, so the stop is handled after it."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception:
            if stop.requested:
                return
            raise
        yield batch
