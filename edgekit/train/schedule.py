"""The learning rate over a run: poly decay, or ESPNetv2's hybrid cyclic schedule."""

from __future__ import annotations

import math

from edgekit.train.config import TrainConfig


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
