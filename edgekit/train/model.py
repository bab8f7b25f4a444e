"""The network a run trains: from scratch or from an initial checkpoint, its optimizer, its checkpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.board.classes import ClassSet
from edgekit.board.preprocess import Preprocessing
from edgekit.checkpoint import Checkpoint
from edgekit.errors import EdgekitError
from edgekit.models import build_model, get_spec
from edgekit.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Network:
    """The model (never DDP-wrapped), its builder arguments and preprocessing: what a checkpoint records."""

    name: str
    model: nn.Module
    kwargs: dict[str, Any]
    preprocessing: Preprocessing
    classes: ClassSet

    def checkpoint(self, meta: dict[str, Any], training: dict[str, Any] | None = None) -> Checkpoint:
        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return Checkpoint(self.name, self.kwargs, self.classes, self.preprocessing, state, meta, training)


def build_network(config: TrainConfig, classes: ClassSet) -> Network:
    """The network for `classes`, from scratch or from an initial checkpoint (classifier replaced if it differs)."""
    spec = get_spec(config.model)
    if config.init_checkpoint is None:
        model = build_model(config.model, num_classes=len(classes), **config.model_kwargs)
        kwargs = {**spec.kwargs, **config.model_kwargs}
        return Network(config.model, model, kwargs, spec.default_preprocessing.with_size(*config.input_size), classes)
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
        log.info(
            "fine-tuning: %s has %d classes, the data %d; replaced the classifier (%d tensors, freshly initialised: "
            "%s%s)", config.init_checkpoint, init.num_classes, len(classes), len(replaced), ", ".join(replaced[:4]),
            ", ..." if len(replaced) > 4 else "",
        )  # fmt: skip
    elif init.classes.names != classes.names:
        log.info("fine-tuning: same class count, different class names: the classifier is kept and retrained")
    preprocessing = init.preprocessing.with_size(*config.input_size)
    return Network(config.model, model, dict(init.model_kwargs), preprocessing, classes)


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def upsample_to(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Logits at the masks' resolution (encoders such as ESPNet-C predict at 1/8)."""
    if logits.shape[-2:] == masks.shape[-2:]:
        return logits
    return F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
