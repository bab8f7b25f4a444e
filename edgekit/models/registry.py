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
    # Input sizes the network takes: width and height multiples of `stride` and at least `min_side` (measured by
    # a forward pass per size: ESPNet's concatenations need 8, ESPNetv2 16, Lite-HRNet 32; ESPNet-C and LPS-Net
    # resize to their input and take any size from `min_side` up).
    stride: int = 1
    min_side: int = 1

    def build(self, num_classes: int = 20, **overrides: Any) -> nn.Module:
        return self.builder(num_classes=num_classes, **{**self.kwargs, **overrides})

    def check_input_size(self, size: tuple[int, int], what: str = "--input-size") -> None:
        """A one-line error naming sizes that work when the network cannot take ``size`` (WxH)."""
        width, height = size
        if width % self.stride == 0 and height % self.stride == 0 and min(width, height) >= self.min_side:
            return

        def nearest(side: int) -> int:
            return max(self.min_side, round(side / self.stride) * self.stride)

        rule = f"multiples of {self.stride}, " if self.stride > 1 else ""
        raise EdgekitError(
            f"{what} {width}x{height} does not fit {self.name}: width and height must be {rule}at least "
            f"{self.min_side} (e.g. {nearest(width)}x{nearest(height)}, or its default "
            f"{self.default_input_size[0]}x{self.default_input_size[1]})"
        )


@dataclass(frozen=True)
class OfficialModel:
    """A zoo network as an official weight file describes it, with how each setting was found.

    The adapter that reads a family's released files sits beside its network (``espnet.describe_official``,
    ``espnetv2.describe_official``, as timm keeps a ``checkpoint_filter_fn`` beside each model);
    ``edgekit.weights`` loads the files through them.
    """

    name: str
    kwargs: dict[str, Any]
    preprocessing: Preprocessing
    notes: tuple[str, ...]  # one line per setting and where it came from
    source: str  # the authors' repository and folder the file comes from


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


def check_input_size(name: str, size: tuple[int, int], what: str = "--input-size") -> None:
    """``size`` (WxH) is one the zoo network ``name`` takes, else a one-line error saying which sizes work."""
    get_spec(name).check_input_size(size, what)


def available_models() -> list[str]:
    return list(_REGISTRY)


def build_model(name: str, num_classes: int = 20, **overrides: Any) -> nn.Module:
    """Build a zoo network by name; it takes NCHW float input and returns NCHW logits at the input size."""
    return get_spec(name).build(num_classes=num_classes, **overrides)
