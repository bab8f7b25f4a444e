"""Name -> network builder, so every stage (train, export, build, bench) builds any zoo model by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgekit.board.preprocess import Preprocessing
from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one network: how to build it and where it comes from."""

    name: str
    builder: Callable[..., nn.Module]  # builder(num_classes=..., **kwargs) -> nn.Module
    default_input_size: tuple[int, int]  # (width, height)
    paper: str
    default_preprocessing: Preprocessing
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, num_classes: int = 20, **overrides: Any) -> nn.Module:
        return self.builder(num_classes=num_classes, **{**self.kwargs, **overrides})


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EdgekitError(f"unknown model {name!r}; available: {', '.join(available_models())}") from None


def available_models() -> list[str]:
    return list(_REGISTRY)


def build_model(name: str, num_classes: int = 20, **overrides: Any) -> nn.Module:
    """Build a zoo network by name; it takes NCHW float input and returns NCHW logits at the input size."""
    return get_spec(name).build(num_classes=num_classes, **overrides)
