"""LPS-Net (Zhang et al., CVPR 2022): lightweight, progressively-scalable multi-path networks of plain 3x3 convs.

Follows the official ``YihengZhang-CV/LPS-Net`` ``lpsnet.py``. Each path is the same 5-stage stack of 3x3
Conv-BN-ReLU blocks (strides 2, 2, 2, 2, 1, so output stride 16) with its own weights, fed a bilinearly resized
copy of the image (ratio ``r`` per path). After stages 3 and 4 the paths interact by Bilateral-B: every path adds
the others bilinearly resized to its own size (align_corners=True). After stage 5 the paths are resized to the
first path's size, concatenated and classified by one 1x1 conv (logits at 1/16 of the first path's input), which
``val_miou.py`` bilinearly upsamples (align_corners=True) to the label size; the zoo model does the same to the
input size. Attribute names (``netH``/``netL``, ``stages``, ``head``) match the official code so its checkpoints
(``LPS-Net-S.pth`` is for ``deploy=True``, BatchNorm folded into conv biases) load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.board.preprocess import IMAGENET
from edgekit.models.registry import ModelSpec, register

PAPER = "LPS-Net (Zhang et al., CVPR 2022)"
STAGE_STRIDES = (2, 2, 2, 2, 1)
# The official attribute names of the path networks for 1, 2 and 3 paths (LPSNet1Path/2Path/3Path).
PATH_NAMES = {1: ("net",), 2: ("netH", "netL"), 3: ("net1", "net2", "net3")}

# val_miou.py: PIL RGB at the full Cityscapes size, ToTensor, ImageNet mean/std; latency is measured at 2048x1024.
LPSNET_CITYSCAPES = replace(
    IMAGENET,
    input_size=(2048, 1024),
    source="YihengZhang-CV/LPS-Net val_miou.py: PIL RGB 2048x1024, ToTensor, ImageNet mean/std",
)


@dataclass(frozen=True)
class LPSNetConfig:
    """The paper's {B, C, R}: blocks per stage, channels per stage, input scale of each path (highest first)."""

    depth: tuple[int, int, int, int, int]
    width: tuple[int, int, int, int, int]
    resolution: tuple[float, ...]


# get_lspnet_s/m/l of the official lpsnet.py (PaddleSeg's configs/lpsnet agree).
CONFIGS = {
    "lpsnet-s": LPSNetConfig((1, 3, 3, 10, 10), (8, 24, 48, 96, 96), (3 / 4, 1 / 4)),
    "lpsnet-m": LPSNetConfig((1, 3, 3, 10, 10), (8, 24, 48, 96, 96), (1, 1 / 4)),
    "lpsnet-l": LPSNetConfig((1, 3, 3, 10, 10), (8, 24, 64, 160, 160), (1, 1 / 4)),
}
# The start point of the official expand.py: what `edgekit scale` grows, one dimension at a time.
TINY = LPSNetConfig((1, 1, 1, 1, 1), (4, 8, 16, 32, 32), (1 / 2,))
SCALED = "lpsnet-scaled"  # the zoo name of any {B, C, R}, e.g. a network found by `edgekit scale`


def resize_like(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Bilinear resize to the reference's size with align_corners=True, the official ``upsample``.

    The size is taken from the tensor (not converted to Python ints) so an ONNX trace keeps it symbolic.
    """
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=True)


def bilateral_interaction(features: list[torch.Tensor]) -> list[torch.Tensor]:
    """Bilateral-B: each path plus every other path resized to its size, all from the pre-interaction features."""
    fused = []
    for i, own in enumerate(features):
        out = own
        for j, other in enumerate(features):
            if j != i:
                out = out + resize_like(other, own)
        fused.append(out)
    return fused


class ConvBNReLU3x3(nn.Sequential):
    """The only block: 3x3 conv, BN, ReLU; in deploy form BN is folded into the conv bias."""

    def __init__(self, c_in: int, c_out: int, stride: int, deploy: bool = False) -> None:
        if deploy:
            super().__init__(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=True), nn.ReLU(inplace=True))
        else:
            super().__init__(
                nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
            )


class BaseNet(nn.Module):
    """One path: five stages; the first block of each stage carries the stage stride."""

    def __init__(self, depth: tuple[int, ...], width: tuple[int, ...], deploy: bool = False) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        c_in = 3
        for blocks, c_out, stride in zip(depth, width, STAGE_STRIDES, strict=True):
            self.stages.append(
                nn.Sequential(
                    *(
                        ConvBNReLU3x3(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, deploy)
                        for i in range(blocks)
                    )
                )
            )
            c_in = c_out


class LPSNet(nn.Module):
    """Multi-path LPS-Net; ``forward`` returns logits at the input size, ``forward_logits`` the raw 1/16 ones."""

    def __init__(self, config: LPSNetConfig, num_classes: int = 20, deploy: bool = False) -> None:
        super().__init__()
        if len(config.resolution) not in PATH_NAMES or any(r <= 0 for r in config.resolution):
            raise ValueError(f"LPS-Net has 1 to 3 paths with positive ratios, got {config.resolution}")
        if list(config.resolution) != sorted(config.resolution, reverse=True):
            raise ValueError(f"path ratios must be listed highest first, got {config.resolution}")
        self.config = config
        self.path_names = PATH_NAMES[len(config.resolution)]
        for name in self.path_names:
            self.add_module(name, BaseNet(config.depth, config.width, deploy))
        self.head = nn.Conv2d(config.width[-1] * len(self.path_names), num_classes, 1, 1, 0, bias=True)

    @property
    def paths(self) -> list[BaseNet]:
        return [getattr(self, name) for name in self.path_names]

    def path_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image resized to each path's resolution, ``floor(H * r)`` x ``floor(W * r)`` as the official
        ``int(H * r)``; bilinear with align_corners=True ignores the scale itself, so values match too."""
        return [
            x if r == 1 else F.interpolate(x, scale_factor=r, mode="bilinear", align_corners=True)
            for r in self.config.resolution
        ]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-path stage-5 features; Bilateral-B interaction after stages 3 and 4."""
        features = self.path_inputs(x)
        for stage in range(len(STAGE_STRIDES)):
            features = [path.stages[stage](f) for path, f in zip(self.paths, features, strict=True)]
            if stage in (2, 3) and len(features) > 1:
                features = bilateral_interaction(features)
        return features

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at 1/16 of the first path's input: the paths concatenated at path 1's size, then the 1x1 head."""
        first, *others = self.forward_features(x)
        return self.head(torch.cat([first, *(resize_like(f, first) for f in others)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_like(self.forward_logits(x), x)


def build_lpsnet(num_classes: int = 20, variant: str = "lpsnet-m", deploy: bool = False) -> LPSNet:
    """``deploy=True`` builds the BN-folded form the released ``LPS-Net-S.pth`` was saved in."""
    return LPSNet(CONFIGS[variant], num_classes=num_classes, deploy=deploy)


def build_scaled_lpsnet(
    num_classes: int = 20,
    depth: Sequence[int] = TINY.depth,
    width: Sequence[int] = TINY.width,
    resolution: Sequence[float] = TINY.resolution,
    deploy: bool = False,
) -> LPSNet:
    """Any {B, C, R}, given as plain lists so that a checkpoint's ``model_kwargs`` rebuild it (default: the tiny
    start point)."""
    if len(depth) != 5 or len(width) != 5:
        raise ValueError(f"LPS-Net has 5 stages: got depth {list(depth)}, width {list(width)}")
    config = LPSNetConfig(
        (depth[0], depth[1], depth[2], depth[3], depth[4]),
        (width[0], width[1], width[2], width[3], width[4]),
        tuple(float(r) for r in resolution),
    )
    return LPSNet(config, num_classes=num_classes, deploy=deploy)


for _name in CONFIGS:
    register(ModelSpec(_name, build_lpsnet, (2048, 1024), PAPER, LPSNET_CITYSCAPES, {"variant": _name}, 1, 4))
# Scaled paths go down to 1/8 of the input: 8 pixels a side keep one at the smallest ratio.
register(ModelSpec(SCALED, build_scaled_lpsnet, (2048, 1024), PAPER, LPSNET_CITYSCAPES, {}, 1, 8))
