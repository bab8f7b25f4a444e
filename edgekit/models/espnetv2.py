"""ESPNetv2 segmentation (Mehta et al., CVPR 2019), as released in ``sacmehta/EdgeNets``.

Module and attribute names follow the official ``model/segmentation/espnetv2.py``, ``model/classification/
espnetv2.py`` and ``nn_layers/{eesp,efficient_pyramid_pool,efficient_pt,espnet_utils,cnn_utils}.py`` exactly, so
the released Cityscapes checkpoints load with no renamed or missing keys. The encoder is the ImageNet EESPNet
truncated after level 4 (1/16); the decoder is four efficient pyramid pooling blocks merged with the encoder
features at 1/8, 1/4 and 1/2.

Two official operations do not export to ONNX as written: adaptive average pooling to sizes that do not divide
the input (the pyramid's 1.5x, 0.5x and 0.1x branches) and the unbounded ``while`` of the input shortcut. While
exporting, that pooling becomes a sum of a few gathers with fixed per-window weights — the same windows and the
same averages as ``F.adaptive_avg_pool2d`` (equal up to float rounding, ~1e-7) — and the shortcut loop is bounded.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.board.preprocess import IMAGENET
from edgekit.errors import EdgekitError
from edgekit.models.registry import ModelSpec, OfficialModel, get_spec, register

PAPER = "ESPNetv2 (Mehta et al., CVPR 2019)"

# model/classification/espnetv2_config.py: channels of levels 1-5 and the final expansion, per width scale s.
CHANNELS: dict[float, tuple[int, ...]] = {
    0.5: (16, 32, 64, 128, 256, 1024),
    1.0: (32, 64, 128, 256, 512, 1024),
    1.25: (32, 80, 160, 320, 640, 1024),
    1.5: (32, 96, 192, 384, 768, 1024),
    2.0: (32, 128, 256, 512, 1024, 1280),
}
REPEATS = (0, 3, 7, 3)  # EESP units after the down-sampler of levels 2..5
RECEPTIVE_LIMITS = (13, 11, 9, 7, 5)  # largest effective kernel per level
BRANCHES = 4  # K parallel depth-wise dilated branches in every EESP unit
IMAGE_CHANNELS = 3  # the input-image shortcut works on the RGB image
DECODER_PLANES = 16  # dec_feat_dict['city'] (and 'pascal')
PYRAMID_SCALES = (2.0, 1.5, 1.0, 0.5, 0.1)


# --- nn_layers/espnet_utils.py: blocks with named attributes (conv, bn, act) -----------------------------------


class CBR(nn.Module):
    """Convolution, BatchNorm, PReLU (``espnet_utils.CBR``)."""

    def __init__(self, n_in: int, n_out: int, k_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_in, n_out, k_size, stride, (k_size - 1) // 2, bias=False, groups=groups)
        self.bn = nn.BatchNorm2d(n_out)
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class CB(nn.Module):
    """Convolution and BatchNorm (``espnet_utils.CB``)."""

    def __init__(self, n_in: int, n_out: int, k_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_in, n_out, k_size, stride, (k_size - 1) // 2, bias=False, groups=groups)
        self.bn = nn.BatchNorm2d(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class BR(nn.Module):
    """BatchNorm and PReLU (``espnet_utils.BR``)."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(n_out)
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class CDilated(nn.Module):
    """A bias-free (grouped) dilated convolution whose padding keeps the size at stride 1."""

    def __init__(self, n_in: int, n_out: int, k_size: int, stride: int = 1, d: int = 1, groups: int = 1) -> None:
        super().__init__()
        padding = (k_size - 1) // 2 * d
        self.conv = nn.Conv2d(n_in, n_out, k_size, stride, padding, dilation=d, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


# --- nn_layers/eesp.py ------------------------------------------------------------------------------------------


class EESP(nn.Module):
    """Extremely efficient spatial pyramid: grouped 1x1 reduce, K depth-wise dilated 3x3 branches with hierarchical
    feature fusion, BR, grouped 1x1 expand, residual when shapes match, PReLU.

    Branch dilations come from effective kernel sizes 3, 5, 7, 9 capped at ``r_lim`` (capped ones fall back to 3)
    and sorted, i.e. dilations 1..4. With ``down_method='avg'`` and stride 2 it returns before residual and
    activation: the down-sampler concatenates and activates.
    """

    def __init__(
        self, n_in: int, n_out: int, stride: int = 1, k: int = BRANCHES, r_lim: int = 7, down_method: str = "esp"
    ) -> None:
        super().__init__()
        if n_out % k:
            raise ValueError(f"EESP needs n_out ({n_out}) divisible by the branch count ({k})")
        n = n_out // k
        self.stride = stride
        self.proj_1x1 = CBR(n_in, n, 1, stride=1, groups=k)
        self.k_sizes = sorted(ksize if ksize <= r_lim else 3 for ksize in (3 + 2 * i for i in range(k)))
        self.spp_dw = nn.ModuleList(CDilated(n, n, 3, stride, groups=n, d=(ks - 1) // 2) for ks in self.k_sizes)
        self.conv_1x1_exp = CB(n_out, n_out, 1, 1, groups=k)
        self.br_after_cat = BR(n_out)
        self.module_act = nn.PReLU(n_out)
        self.down_avg = down_method == "avg"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.proj_1x1(x)
        outputs = [self.spp_dw[0](reduced)]
        for branch in self.spp_dw[1:]:
            outputs.append(branch(reduced) + outputs[-1])
        expanded = self.conv_1x1_exp(self.br_after_cat(torch.cat(outputs, 1)))
        if self.stride == 2 and self.down_avg:
            return expanded
        if expanded.shape == x.shape:
            expanded = expanded + x
        return self.module_act(expanded)


class DownSampler(nn.Module):
    """Strided EESP concatenated with a 3x3 average pool of its input, plus the long-range image shortcut.

    The shortcut average-pools the image until its height equals the feature map's (the official ``while``
    loop), then a 3x3 CBR and a 1x1 CB project it to ``n_out`` channels, added before the final PReLU.
    """

    def __init__(self, n_in: int, n_out: int, k: int = BRANCHES, r_lim: int = 9, reinf: bool = True) -> None:
        super().__init__()
        self.eesp = EESP(n_in, n_out - n_in, stride=2, k=k, r_lim=r_lim, down_method="avg")
        self.avg = nn.AvgPool2d(kernel_size=3, padding=1, stride=2)
        if reinf:
            self.inp_reinf = nn.Sequential(CBR(IMAGE_CHANNELS, IMAGE_CHANNELS, 3, 1), CB(IMAGE_CHANNELS, n_out, 1, 1))
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        avg_out = self.avg(x)
        output = torch.cat([avg_out, self.eesp(x)], 1)
        if image is not None:
            target_height = avg_out.shape[2]
            for _ in range(max(1, int(image.shape[2]).bit_length())):  # halving reaches any height within log2 steps
                image = F.avg_pool2d(image, kernel_size=3, padding=1, stride=2)
                if image.shape[2] == target_height:
                    break
            else:
                raise EdgekitError(f"image height {image.shape[2]} never matches feature height {target_height}")
            output = output + self.inp_reinf(image)
        return self.act(output)


# --- model/classification/espnetv2.py (levels 1-4: the segmentation model deletes level 5 and the classifier) ----


class EESPNet(nn.Module):
    """The EESPNet encoder as the segmentation model keeps it: levels 1 to 4, output stride 16."""

    def __init__(self, s: float = 2.0) -> None:
        super().__init__()
        if s not in CHANNELS:
            raise EdgekitError(f"ESPNetv2 width scale s={s} is not one of {sorted(CHANNELS)}")
        channels = CHANNELS[s]
        self.config = channels
        self.input_reinforcement = True
        self.level1 = CBR(IMAGE_CHANNELS, channels[0], 3, 2)
        self.level2_0 = DownSampler(channels[0], channels[1], r_lim=RECEPTIVE_LIMITS[0])
        self.level3_0 = DownSampler(channels[1], channels[2], r_lim=RECEPTIVE_LIMITS[1])
        self.level3 = nn.ModuleList(
            EESP(channels[2], channels[2], r_lim=RECEPTIVE_LIMITS[2]) for _ in range(REPEATS[1])
        )
        self.level4_0 = DownSampler(channels[2], channels[3], r_lim=RECEPTIVE_LIMITS[2])
        self.level4 = nn.ModuleList(
            EESP(channels[3], channels[3], r_lim=RECEPTIVE_LIMITS[3]) for _ in range(REPEATS[2])
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder features at 1/2, 1/4, 1/8 and 1/16."""
        out_l1 = self.level1(x)
        out_l2 = self.level2_0(out_l1, x)
        out_l3 = self.level3_0(out_l2, x)
        for layer in self.level3:
            out_l3 = layer(out_l3)
        out_l4 = self.level4_0(out_l3, x)
        for layer in self.level4:
            out_l4 = layer(out_l4)
        return out_l1, out_l2, out_l3, out_l4


# --- nn_layers/cnn_utils.py: blocks kept in an nn.Sequential (keys cbr.0, cbr.1, cbr.2 / br.0, br.1) -----------


class SeqCBR(nn.Module):
    """Convolution, BatchNorm, PReLU in a Sequential named ``cbr`` (``cnn_utils.CBR``)."""

    def __init__(self, n_in: int, n_out: int, k_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.cbr = nn.Sequential(
            nn.Conv2d(n_in, n_out, k_size, stride, (k_size - 1) // 2, bias=False, groups=groups),
            nn.BatchNorm2d(n_out),
            nn.PReLU(n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cbr(x)


class SeqBR(nn.Module):
    """BatchNorm and PReLU in a Sequential named ``br`` (``cnn_utils.BR``)."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.br = nn.Sequential(nn.BatchNorm2d(n_out), nn.PReLU(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.br(x)


class Shuffle(nn.Module):
    """Channel shuffle across ``groups`` groups."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.reshape(batch, self.groups, channels // self.groups, height, width).transpose(1, 2)
        return x.reshape(batch, channels, height, width)


def _pool_along(x: torch.Tensor, dim: int, size_out: int) -> torch.Tensor:
    """Adaptive average pooling of one dimension as a weighted sum of gathers (exports as Gather/Mul/Add).

    Windows are PyTorch's: ``[floor(i*n/m), ceil((i+1)*n/m))``. Offset ``j`` of every window is gathered at once;
    windows shorter than the longest repeat their last index with weight 0.
    """
    size_in = x.shape[dim]
    starts = [i * size_in // size_out for i in range(size_out)]
    ends = [((i + 1) * size_in + size_out - 1) // size_out for i in range(size_out)]
    shape = [1] * x.dim()
    shape[dim] = size_out
    pooled: torch.Tensor | None = None
    for offset in range(max(e - s for s, e in zip(starts, ends, strict=True))):
        index = torch.tensor([min(s + offset, e - 1) for s, e in zip(starts, ends, strict=True)], device=x.device)
        weight = torch.tensor(
            [1.0 / (e - s) if offset < e - s else 0.0 for s, e in zip(starts, ends, strict=True)],
            dtype=x.dtype,
            device=x.device,
        ).reshape(shape)
        term = x.index_select(dim, index) * weight
        pooled = term if pooled is None else pooled + term
    assert pooled is not None
    return pooled


def adaptive_avg_pool2d(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` that also exports to ONNX, for any output size and with a dynamic batch.

    Eager PyTorch runs the official operator (bit-identical to the authors' code, and 4-6x faster on CPU than the
    gathers). While tracing for export, sizes that divide the input become the equal fixed-window average pool and
    the others two separable gather-sums (same windows, equal to ~1e-7): ONNX has no adaptive pooling, and the
    exporter refuses it for such sizes or when it cannot see the input size.
    """
    if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
        return F.adaptive_avg_pool2d(x, size)
    height, width = int(x.shape[2]), int(x.shape[3])
    if height % size[0] == 0 and width % size[1] == 0:
        kernel = (height // size[0], width // size[1])
        return F.avg_pool2d(x, kernel, stride=kernel)
    return _pool_along(_pool_along(x, 2, size[0]), 3, size[1])


def _resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


# --- nn_layers/efficient_pyramid_pool.py, nn_layers/efficient_pt.py ---------------------------------------------


class EfficientPyrPool(nn.Module):
    """Efficient pyramid pooling: a 1x1 projection, a depth-wise 3x3 conv applied at 2x, 1.5x, 1x, 0.5x and 0.1x
    of the map (at least 5 pixels), one BR over all scales, channel shuffle, a grouped 3x3 CBR and a 1x1 conv."""

    def __init__(self, in_planes: int, proj_planes: int, out_planes: int, last_layer_br: bool = True) -> None:
        super().__init__()
        self.scales = PYRAMID_SCALES
        self.stages = nn.ModuleList(
            nn.Conv2d(proj_planes, proj_planes, 3, 1, 1, bias=False, groups=proj_planes) for _ in self.scales
        )
        self.projection_layer = SeqCBR(in_planes, proj_planes, 1, 1)
        self.merge_layer = nn.Sequential(
            SeqBR(proj_planes * len(self.scales)),
            Shuffle(groups=len(self.scales)),
            SeqCBR(proj_planes * len(self.scales), proj_planes, 3, 1, groups=proj_planes),
            nn.Conv2d(proj_planes, out_planes, kernel_size=1, stride=1, bias=not last_layer_br),
        )
        if last_layer_br:
            self.br = SeqBR(out_planes)
        self.last_layer_br = last_layer_br

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.projection_layer(x)
        height, width = int(x.shape[2]), int(x.shape[3])
        branches = []
        for scale, stage in zip(self.scales, self.stages, strict=True):
            scaled = (max(math.ceil(height * scale), 5), max(math.ceil(width * scale), 5))
            if scale < 1.0:
                branch = _resize_bilinear(stage(adaptive_avg_pool2d(x, scaled)), (height, width))
            elif scale > 1.0:
                branch = adaptive_avg_pool2d(stage(_resize_bilinear(x, scaled)), (height, width))
            else:
                branch = stage(x)
            branches.append(branch)
        out = self.merge_layer(torch.cat(branches, 1))
        return self.br(out) if self.last_layer_br else out


class EfficientPWConv(nn.Module):
    """Merges encoder features into the decoder: a grouped 3x3 CBR gated by a sigmoid of a global-pool 1x1 conv."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.wt_layer = nn.Sequential(
            nn.AdaptiveAvgPool2d(output_size=1), nn.Conv2d(n_in, n_out, 1, bias=False), nn.Sigmoid()
        )
        self.expansion_layer = SeqCBR(n_in, n_out, 3, 1, groups=math.gcd(n_in, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expansion_layer(x) * self.wt_layer(x)


# --- model/segmentation/espnetv2.py -------------------------------------------------------------------------------


class ESPNetv2Segmentation(nn.Module):
    """ESPNetv2 segmentation: EESPNet levels 1-4, bottom-up pyramid-pooling decoder, logits at the input size."""

    def __init__(self, classes: int = 20, s: float = 2.0) -> None:
        super().__init__()
        self.base_net = EESPNet(s)
        config = self.base_net.config
        dec_planes = [4 * DECODER_PLANES, 3 * DECODER_PLANES, 2 * DECODER_PLANES, classes]
        proj = min(classes // 2, DECODER_PLANES)
        self.bu_dec_l1 = EfficientPyrPool(config[3], proj, dec_planes[0])
        self.bu_dec_l2 = EfficientPyrPool(dec_planes[0], proj, dec_planes[1])
        self.bu_dec_l3 = EfficientPyrPool(dec_planes[1], proj, dec_planes[2])
        self.bu_dec_l4 = EfficientPyrPool(dec_planes[2], proj, dec_planes[3], last_layer_br=False)
        self.merge_enc_dec_l2 = EfficientPWConv(config[2], dec_planes[0])
        self.merge_enc_dec_l3 = EfficientPWConv(config[1], dec_planes[1])
        self.merge_enc_dec_l4 = EfficientPWConv(config[0], dec_planes[2])
        self.bu_br_l2 = nn.Sequential(nn.BatchNorm2d(dec_planes[0]), nn.PReLU(dec_planes[0]))
        self.bu_br_l3 = nn.Sequential(nn.BatchNorm2d(dec_planes[1]), nn.PReLU(dec_planes[1]))
        self.bu_br_l4 = nn.Sequential(nn.BatchNorm2d(dec_planes[2]), nn.PReLU(dec_planes[2]))
        self._init_params()

    def _init_params(self) -> None:
        """The official initialisation (Kaiming fan-out convs, unit BN), so training from scratch matches it."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    @staticmethod
    def _upsample(x: torch.Tensor) -> torch.Tensor:
        """The official ``scale_factor=2`` upsampling written with an explicit size (identical with align_corners)."""
        return _resize_bilinear(x, (2 * int(x.shape[2]), 2 * int(x.shape[3])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if int(x.shape[2]) % 16 or int(x.shape[3]) % 16:  # the decoder adds 2x-upsampled maps to encoder maps
            raise EdgekitError(f"ESPNetv2 needs width and height divisible by 16, got {x.shape[3]}x{x.shape[2]}")
        enc_l1, enc_l2, enc_l3, enc_l4 = self.base_net(x)
        out = self.bu_dec_l1(enc_l4)
        out = self.bu_dec_l2(self.bu_br_l2(self.merge_enc_dec_l2(enc_l3) + self._upsample(out)))
        out = self.bu_dec_l3(self.bu_br_l3(self.merge_enc_dec_l3(enc_l2) + self._upsample(out)))
        out = self.bu_dec_l4(self.bu_br_l4(self.merge_enc_dec_l4(enc_l1) + self._upsample(out)))
        return _resize_bilinear(out, (int(x.shape[2]), int(x.shape[3])))


def build_espnetv2(num_classes: int = 20, s: float = 2.0) -> ESPNetv2Segmentation:
    return ESPNetv2Segmentation(classes=num_classes, s=s)


RELEASED_SCALES = (0.5, 1.0, 1.5, 2.0)  # the widths with released Cityscapes weights, and the zoo's
for _scale in RELEASED_SCALES:
    register(ModelSpec(f"espnetv2-s{_scale}", build_espnetv2, (1024, 512), PAPER, IMAGENET, {"s": _scale}, 16, 16))


# --- the released Cityscapes weights (sacmehta/EdgeNets model_zoo), loaded by edgekit.weights -----------------

OFFICIAL_SOURCE = "sacmehta/EdgeNets model/segmentation/model_zoo/espnetv2"
OFFICIAL_NAMES = {s: f"espnetv2-s{s}" for s in RELEASED_SCALES}
_SIZE_IN_NAME = re.compile(r"(\d+)x(\d+)")


def identify_official(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]] | None:
    """``espnetv2-sS`` and its width scale, read from the width of a released file's level 2, or None."""
    if "base_net.level2_0.act.weight" not in state_dict:
        return None
    width = state_dict["base_net.level2_0.act.weight"].shape[0]
    scale = next((s for s, channels in CHANNELS.items() if channels[1] == width), None)
    return (OFFICIAL_NAMES[scale], {"s": scale}) if scale in OFFICIAL_NAMES else None


def describe_official(name: str, path: Path, state_dict: dict[str, torch.Tensor]) -> OfficialModel:
    """s from the model name; the input size from the file name (``512x256``), else the default (said so).

    The 512x256 and 1024x512 files have identical shapes, so only the name can tell which size they were trained at.
    """
    spec = get_spec(name)
    kwargs = dict(spec.kwargs)
    notes = [f"s={kwargs['s']}: from the model name"]
    if match := _SIZE_IN_NAME.search(path.name):
        size = (int(match[1]), int(match[2]))
        notes.append(f"input {size[0]}x{size[1]}: from the file name (the size these weights were trained at)")
    else:
        size = spec.default_input_size
        notes.append(
            f"input {size[0]}x{size[1]}: default; the file name has no WxH and the 512x256 and 1024x512 weights "
            "have the same shapes (pass --input-size to choose)"
        )
    return OfficialModel(name, kwargs, IMAGENET.with_size(*size), tuple(notes), OFFICIAL_SOURCE)
