"""Lite-HRNet (Yu et al., CVPR 2021) with the FCN segmentation head MMSegmentation attaches to it.

The backbone follows the official ``HRNet/Lite-HRNet`` ``models/backbones/litehrnet.py`` (module and attribute
names too, so checkpoints of the official or MMSegmentation code load unchanged):

* stem: a 3x3 stride-2 conv, then a shuffle block with a stride-2 depthwise conv (32 channels at 1/4);
* three stages of parallel branches at 1/4, 1/8, 1/16, 1/32 (40, 80, 160, 320 channels), each new branch made
  by a stride-2 depthwise-separable transition from the lowest-resolution branch;
* every module: ``num_blocks`` conditional channel weighting (CCW) blocks, then HRNet fusion of all branches;
* CCW block: split every branch in half; on one half, cross-resolution weighting (all branches average-pooled to
  the smallest size, 1x1-BN-ReLU, 1x1-BN-sigmoid, weights nearest-upsampled back), a depthwise 3x3 + BN, spatial
  weighting (global pool, 1x1-ReLU, 1x1-sigmoid); concatenate with the other half and channel-shuffle;
* the IterativeHead (``with_head=True``): top-down bilinear sums with depthwise-separable convs.

The official repository is pose-only and never released its segmentation code. The segmentation model here is
the one of MMSegmentation's Lite-HRNet port (PR #720, config ``fcn_litehr{18,30}-with-head.py``, the best of its
Cityscapes results): the IterativeHead's 1/4 output (40 channels) into an ``FCNHead`` (two 3x3 conv-BN-ReLU,
concatenation with the input, a third 3x3 conv-BN-ReLU, dropout 0.1, 1x1 classifier), logits bilinearly resized
(align_corners=False) to the input size. Inputs must be divisible by 32, like the official code (its fusion
upsamples by exact powers of two); there adaptive average pooling to the smallest branch is a plain average pool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.board.preprocess import IMAGENET
from edgekit.errors import EdgekitError
from edgekit.models.registry import ModelSpec, register

PAPER = "Lite-HRNet (Yu et al., CVPR 2021)"
INPUT_DIVISOR = 32  # the lowest-resolution branch is at 1/32

# MMSegmentation's Cityscapes pipeline used by the Lite-HRNet configs: mmcv (cv2) bilinear resize, BGR->RGB,
# ImageNet mean/std in 0-255 units; trained on 512x1024 crops.
LITEHRNET_CITYSCAPES = replace(
    IMAGENET,
    input_size=(1024, 512),
    resize="cv2-bilinear",
    source="mmsegmentation Cityscapes pipeline (Lite-HRNet PR #720 configs): cv2 bilinear, RGB, ImageNet mean/std",
)


@dataclass(frozen=True)
class LiteHRNetConfig:
    """The official ``extra`` settings; only ``num_modules`` differs between Lite-HRNet-18 and -30."""

    num_modules: tuple[int, int, int]
    stage_channels: tuple[tuple[int, ...], ...] = ((40, 80), (40, 80, 160), (40, 80, 160, 320))
    stem_channels: int = 32
    num_blocks: int = 2
    reduce_ratio: int = 8


# configs/top_down/lite_hrnet/coco/litehrnet_{18,30}_coco_256x192.py; MMSegmentation's configs use the same.
CONFIGS = {
    "litehrnet-18": LiteHRNetConfig(num_modules=(2, 4, 2)),
    "litehrnet-30": LiteHRNetConfig(num_modules=(3, 8, 3)),
}


class ConvBNAct(nn.Module):
    """mmcv's ConvModule as Lite-HRNet uses it: conv (bias only without BN), optional BN, optional activation."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        norm: bool = True,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, groups=groups, bias=not norm)
        self.bn = nn.BatchNorm2d(c_out) if norm else None
        self.activate = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.activate is None else self.activate(x)


def depthwise(channels: int, stride: int = 1) -> ConvBNAct:
    """Depthwise 3x3 + BN, no activation."""
    return ConvBNAct(channels, channels, 3, stride, groups=channels)


def pointwise(c_in: int, c_out: int) -> ConvBNAct:
    """1x1 + BN + ReLU."""
    return ConvBNAct(c_in, c_out, 1, act=nn.ReLU(inplace=True))


class ChannelShuffle(nn.Module):
    """ShuffleNet's 2-group channel shuffle (view as 2 x C/2, transpose, flatten) as one fixed channel gather.

    The same permutation, but with a constant index instead of shape-dependent reshapes, so the ONNX graph stays
    small and static. The index is a non-persistent buffer: checkpoints carry no extra key.
    """

    index: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        order = [group * half + i for i in range(half) for group in range(2)]
        self.register_buffer("index", torch.tensor(order), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, 1, self.index)


def split_half(x: torch.Tensor, half: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.chunk(2, dim=1)`` with the split point known statically (a constant Slice in ONNX)."""
    return x[:, :half], x[:, half:]


def upsample_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest upsampling by an exact integer factor: the official resize to the branch's size, statically."""
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


class SpatialWeighting(nn.Module):
    """Per-branch channel weights from the branch's own global average (the paper's function F)."""

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvBNAct(channels, int(channels / ratio), 1, norm=False, act=nn.ReLU(inplace=True))
        self.conv2 = ConvBNAct(int(channels / ratio), channels, 1, norm=False, act=nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class CrossResolutionWeighting(nn.Module):
    """Channel weights computed jointly from all branches pooled to the smallest one (the paper's function H).

    Branch ``i`` of ``n`` is ``2 ** (n - 1 - i)`` times the smallest, so adaptive pooling to the smallest size is
    an average pool with that kernel (identical values, and it exports to ONNX at any divisible input size).
    """

    def __init__(self, channels: list[int], ratio: int) -> None:
        super().__init__()
        self.channels = channels
        total = sum(channels)
        self.conv1 = ConvBNAct(total, int(total / ratio), 1, act=nn.ReLU(inplace=True))
        self.conv2 = ConvBNAct(int(total / ratio), total, 1, act=nn.Sigmoid())

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        last = len(x) - 1
        pooled = [F.avg_pool2d(s, 2 ** (last - i)) for i, s in enumerate(x[:-1])] + [x[-1]]
        weights = torch.split(self.conv2(self.conv1(torch.cat(pooled, dim=1))), self.channels, dim=1)
        return [s * upsample_nearest(w, 2 ** (last - i)) for i, (s, w) in enumerate(zip(x, weights, strict=True))]


class ConditionalChannelWeighting(nn.Module):
    """The CCW block that replaces the shuffle block's 1x1 convs with cross-resolution and spatial weighting."""

    def __init__(self, in_channels: list[int], reduce_ratio: int) -> None:
        super().__init__()
        branch_channels = [c // 2 for c in in_channels]
        self.branch_channels = branch_channels
        self.cross_resolution_weighting = CrossResolutionWeighting(branch_channels, reduce_ratio)
        self.depthwise_convs = nn.ModuleList(depthwise(c) for c in branch_channels)
        self.spatial_weighting = nn.ModuleList(SpatialWeighting(c, ratio=4) for c in branch_channels)
        self.shuffles = nn.ModuleList(ChannelShuffle(c) for c in in_channels)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        halves = [split_half(s, c) for s, c in zip(x, self.branch_channels, strict=True)]
        weighted = self.cross_resolution_weighting([h[1] for h in halves])
        weighted = [dw(s) for s, dw in zip(weighted, self.depthwise_convs, strict=True)]
        weighted = [sw(s) for s, sw in zip(weighted, self.spatial_weighting, strict=True)]
        return [
            shuffle(torch.cat([h[0], w], dim=1)) for h, w, shuffle in zip(halves, weighted, self.shuffles, strict=True)
        ]


class Stem(nn.Module):
    """3x3 stride-2 conv, then a ShuffleNetV2 down-sampling unit (expand ratio 1): 1/4 resolution."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.half_channels = half
        self.conv1 = ConvBNAct(in_channels, channels, 3, stride=2, act=nn.ReLU(inplace=True))
        self.branch1 = nn.Sequential(depthwise(half, stride=2), pointwise(half, channels - half))
        self.expand_conv = pointwise(half, channels)
        self.depthwise_conv = depthwise(channels, stride=2)
        self.linear_conv = pointwise(channels, half)
        self.shuffle = ChannelShuffle(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = split_half(self.conv1(x), self.half_channels)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return self.shuffle(torch.cat((self.branch1(x1), x2), dim=1))


def _dw_separable_bn(c_in: int, c_out: int, stride: int, relu: bool) -> nn.Sequential:
    """The fusion/transition step: depthwise 3x3 + BN, 1x1 + BN (+ ReLU), with plain nn layers as officially."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class LiteHRModule(nn.Module):
    """CCW blocks over all branches, then HRNet fusion into every branch (multiscale output)."""

    def __init__(self, in_channels: list[int], num_blocks: int, reduce_ratio: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.layers = nn.Sequential(
            *(ConditionalChannelWeighting(in_channels, reduce_ratio) for _ in range(num_blocks))
        )
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse_path(j, i) for j in range(len(in_channels))) for i in range(len(in_channels))
        )
        self.relu = nn.ReLU()

    def _fuse_path(self, j: int, i: int) -> nn.Module:
        """Branch j into branch i: 1x1 + BN + nearest upsample from lower resolutions, chains of stride-2
        depthwise-separable steps from higher ones (ReLU between steps), identity for itself."""
        c = self.in_channels
        if j > i:
            return nn.Sequential(
                nn.Conv2d(c[j], c[i], 1, 1, 0, bias=False),
                nn.BatchNorm2d(c[i]),
                nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
            )
        if j == i:
            return nn.Identity()
        steps = i - j
        return nn.Sequential(
            *(_dw_separable_bn(c[j], c[i] if k == steps - 1 else c[j], 2, relu=k < steps - 1) for k in range(steps))
        )

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = self.layers(x)
        fused = []
        for i, row in enumerate(cast(list[nn.ModuleList], self.fuse_layers)):
            # The official loop starts from branch 0's term and then adds every branch j >= 0 in place, so branch 0
            # counts twice, and for i = 0 the in-place sum overwrites out[0]: later rows take the fused, pre-ReLU
            # branch 0. The trained weights depend on this, so it is reproduced (each term computed once).
            y = row[0](out[0])
            y = y + y
            for j in range(1, len(out)):
                y = y + row[j](out[j])
            if i == 0:
                out = [y, *out[1:]]
            fused.append(self.relu(y))
        return fused


class DepthwiseSeparable(nn.Module):
    """mmcv's DepthwiseSeparableConvModule as the IterativeHead uses it: depthwise 3x3 + BN, 1x1 + BN + ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise_conv = depthwise(c_in)
        self.pointwise_conv = pointwise(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """Top-down: each branch plus the bilinearly upsampled (align_corners=True) result of the branch below,
    through depthwise 3x3 + BN and 1x1 + BN + ReLU; outputs (40, 40, 80, 160) channels, high resolution first."""

    def __init__(self, in_channels: list[int]) -> None:
        super().__init__()
        channels = in_channels[::-1]
        outs = [*channels[1:], channels[-1]]
        self.projects = nn.ModuleList(
            DepthwiseSeparable(c_in, c_out) for c_in, c_out in zip(channels, outs, strict=True)
        )

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        y: list[torch.Tensor] = []
        for s, project in zip(x[::-1], self.projects, strict=True):
            if y:
                # Branches differ by exactly 2x; with align_corners=True only the output size matters.
                s = s + F.interpolate(y[-1], scale_factor=2, mode="bilinear", align_corners=True)
            y.append(project(s))
        return y[::-1]


class LiteHRNet(nn.Module):
    """The backbone; returns the IterativeHead's outputs (or the raw branches without it), 1/4 first."""

    def __init__(self, config: LiteHRNetConfig, in_channels: int = 3, with_head: bool = True) -> None:
        super().__init__()
        self.config = config
        self.stem = Stem(in_channels, config.stem_channels)
        previous = [config.stem_channels]
        for index, (channels, num_modules) in enumerate(zip(config.stage_channels, config.num_modules, strict=True)):
            self.add_module(f"transition{index}", self._transition(previous, list(channels)))
            modules = (LiteHRModule(list(channels), config.num_blocks, config.reduce_ratio) for _ in range(num_modules))
            self.add_module(f"stage{index}", nn.Sequential(*modules))
            previous = list(channels)
        self.head_layer = IterativeHead(previous) if with_head else None
        self._init_weights()

    @staticmethod
    def _transition(previous: list[int], current: list[int]) -> nn.ModuleList:
        """Existing branches change width by depthwise 3x3 + 1x1; a new branch is a stride-2 step from the last."""
        layers: list[nn.Module] = []
        for i, c_out in enumerate(current):
            if i < len(previous):
                same = c_out == previous[i]
                layers.append(nn.Identity() if same else _dw_separable_bn(previous[i], c_out, 1, relu=True))
            else:
                c_in = previous[-1]
                steps = i + 1 - len(previous)
                layers.append(
                    nn.Sequential(
                        *(_dw_separable_bn(c_in, c_out if k == steps - 1 else c_in, 2, relu=True) for k in range(steps))
                    )
                )
        return nn.ModuleList(layers)

    def _init_weights(self) -> None:
        """The official ``init_weights(pretrained=None)``: conv weights N(0, 0.001), BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branches = [self.stem(x)]
        for index in range(len(self.config.stage_channels)):
            transition: nn.ModuleList = getattr(self, f"transition{index}")
            inputs = [layer(branches[min(j, len(branches) - 1)]) for j, layer in enumerate(transition)]
            branches = getattr(self, f"stage{index}")(inputs)
        return branches if self.head_layer is None else self.head_layer(branches)


class FCNHead(nn.Module):
    """MMSegmentation's FCNHead as configured in ``fcn_litehr18-with-head.py``: ``num_convs`` 3x3 conv-BN-ReLU,
    the input concatenated back (``concat_input``) through one more, dropout, then the 1x1 classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_convs: int = 2) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *(
                ConvBNAct(in_channels if i == 0 else channels, channels, 3, act=nn.ReLU(inplace=True))
                for i in range(num_convs)
            )
        )
        self.conv_cat = ConvBNAct(in_channels + channels, channels, 3, act=nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        """mmcv/mmseg defaults: ConvModules Kaiming-normal (fan_out, ReLU) with BN 1/0, classifier N(0, 0.01)."""
        for m in self.modules():
            if isinstance(m, ConvBNAct):
                nn.init.kaiming_normal_(m.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        if self.conv_seg.bias is not None:
            nn.init.zeros_(self.conv_seg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_cat(torch.cat([x, self.convs(x)], dim=1))
        return self.conv_seg(self.dropout(out))


class LiteHRNetSeg(nn.Module):
    """Backbone with IterativeHead, FCN head on its 1/4 output, logits resized to the input (MMSegmentation's
    EncoderDecoder, align_corners=False). ``backbone``/``decode_head`` are MMSegmentation's key prefixes."""

    def __init__(self, config: LiteHRNetConfig, num_classes: int = 20) -> None:
        super().__init__()
        self.backbone = LiteHRNet(config, with_head=True)
        width = config.stage_channels[-1][0]
        self.decode_head = FCNHead(width, width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.shape[-2] % INPUT_DIVISOR or x.shape[-1] % INPUT_DIVISOR):
            raise EdgekitError(
                f"Lite-HRNet needs an input height and width divisible by {INPUT_DIVISOR}, got "
                f"{x.shape[-1]}x{x.shape[-2]}; resize or pad the image (e.g. to 1024x512)"
            )
        logits = self.decode_head(self.backbone(x)[0])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_litehrnet(num_classes: int = 20, variant: str = "litehrnet-18") -> LiteHRNetSeg:
    return LiteHRNetSeg(CONFIGS[variant], num_classes=num_classes)


for _name in CONFIGS:
    register(ModelSpec(_name, build_litehrnet, (1024, 512), PAPER, LITEHRNET_CITYSCAPES, {"variant": _name}, 32, 32))
