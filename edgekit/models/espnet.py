"""ESPNet (Mehta et al., ECCV 2018) and its encoder ESPNet-C.

Module and attribute names follow the official ``sacmehta/ESPNet`` ``test/Model.py`` exactly, so the released
Cityscapes checkpoints load with no renamed or missing keys. The ESP module: a 1x1 reduce to N/K channels, K=5
parallel dilated 3x3 convolutions (dilations 1, 2, 4, 8, 16), hierarchical feature fusion (cumulative sums of
the dilated outputs before concatenation, which removes gridding artefacts), a residual connection, BN + PReLU.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.models.registry import ModelSpec, OfficialModel, get_spec, register

PAPER = "ESPNet (Mehta et al., ECCV 2018)"
BN_EPS = 1e-3  # the official code's BatchNorm epsilon; the weights were trained with it


class CBR(nn.Module):
    """Convolution, BatchNorm, PReLU."""

    def __init__(self, n_in: int, n_out: int, k_size: int, stride: int = 1) -> None:
        super().__init__()
        padding = (k_size - 1) // 2
        self.conv = nn.Conv2d(n_in, n_out, k_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class BR(nn.Module):
    """BatchNorm and PReLU, applied after concatenations."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class C(nn.Module):
    """A bias-free convolution with 'same' padding."""

    def __init__(self, n_in: int, n_out: int, k_size: int, stride: int = 1) -> None:
        super().__init__()
        padding = (k_size - 1) // 2
        self.conv = nn.Conv2d(n_in, n_out, k_size, stride=stride, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CDilated(nn.Module):
    """A bias-free dilated convolution whose padding keeps the spatial size."""

    def __init__(self, n_in: int, n_out: int, k_size: int, stride: int = 1, d: int = 1) -> None:
        super().__init__()
        padding = (k_size - 1) // 2 * d
        self.conv = nn.Conv2d(n_in, n_out, k_size, stride=stride, padding=padding, bias=False, dilation=d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _SpatialPyramid(nn.Module):
    """The K=5 dilated branches with hierarchical feature fusion shared by both ESP module kinds.

    The first branch (dilation 1) takes the remainder channels ``n_out - 4 * (n_out // 5)`` so that the
    concatenation has exactly ``n_out`` channels; it is not part of the cumulative sums (as in the official code).
    """

    def _build_branches(self, n: int, n1: int) -> None:
        self.d1 = CDilated(n, n1, 3, 1, 1)
        self.d2 = CDilated(n, n, 3, 1, 2)
        self.d4 = CDilated(n, n, 3, 1, 4)
        self.d8 = CDilated(n, n, 3, 1, 8)
        self.d16 = CDilated(n, n, 3, 1, 16)

    def _pyramid(self, reduced: torch.Tensor) -> torch.Tensor:
        add1 = self.d2(reduced)
        add2 = add1 + self.d4(reduced)
        add3 = add2 + self.d8(reduced)
        add4 = add3 + self.d16(reduced)
        return torch.cat([self.d1(reduced), add1, add2, add3, add4], 1)


class DownSamplerB(_SpatialPyramid):
    """Strided ESP module: a 3x3 stride-2 reduce instead of 1x1, no residual; halves the resolution."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        n = n_out // 5
        n1 = n_out - 4 * n
        self.c1 = C(n_in, n, 3, 2)
        self._build_branches(n, n1)
        self.bn = nn.BatchNorm2d(n_out, eps=BN_EPS)
        self.act = nn.PReLU(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self._pyramid(self.c1(x))))


class DilatedParllelResidualBlockB(_SpatialPyramid):
    """The ESP module (the official class name, misspelling included, keeps checkpoint keys recognisable)."""

    def __init__(self, n_in: int, n_out: int, add: bool = True) -> None:
        super().__init__()
        n = n_out // 5
        n1 = n_out - 4 * n
        self.c1 = C(n_in, n, 1, 1)
        self._build_branches(n, n1)
        self.bn = BR(n_out)
        self.add = add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        combine = self._pyramid(self.c1(x))
        if self.add:
            combine = x + combine
        return self.bn(combine)


class InputProjectionA(nn.Module):
    """Input reinforcement: the RGB image average-pooled down to a feature level's resolution."""

    def __init__(self, sampling_times: int) -> None:
        super().__init__()
        self.pool = nn.ModuleList(nn.AvgPool2d(3, stride=2, padding=1) for _ in range(sampling_times))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for pool in self.pool:
            x = pool(x)
        return x


class ESPNetEncoder(nn.Module):
    """ESPNet-C: strided ESP down-sampling, p ESP modules at 1/4, q at 1/8, input reinforcement; logits at 1/8."""

    def __init__(self, classes: int = 20, p: int = 2, q: int = 8) -> None:
        super().__init__()
        self.level1 = CBR(3, 16, 3, 2)
        self.sample1 = InputProjectionA(1)
        self.sample2 = InputProjectionA(2)
        self.b1 = BR(16 + 3)
        self.level2_0 = DownSamplerB(16 + 3, 64)
        self.level2 = nn.ModuleList(DilatedParllelResidualBlockB(64, 64) for _ in range(p))
        self.b2 = BR(128 + 3)
        self.level3_0 = DownSamplerB(128 + 3, 128)
        self.level3 = nn.ModuleList(DilatedParllelResidualBlockB(128, 128) for _ in range(q))
        self.b3 = BR(256)
        self.classifier = C(256, classes, 1, 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(level-1 output at 1/2, reinforced level-2 output at 1/4, reinforced level-3 output at 1/8)."""
        output0 = self.level1(x)
        output0_cat = self.b1(torch.cat([output0, self.sample1(x)], 1))
        output1_0 = self.level2_0(output0_cat)
        output1 = output1_0
        for layer in self.level2:
            output1 = layer(output1)
        output1_cat = self.b2(torch.cat([output1, output1_0, self.sample2(x)], 1))
        output2_0 = self.level3_0(output1_cat)
        output2 = output2_0
        for layer in self.level3:
            output2 = layer(output2)
        output2_cat = self.b3(torch.cat([output2_0, output2], 1))
        return output0, output1_cat, output2_cat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)[2])


class ESPNetC(ESPNetEncoder):
    """ESPNet-C as a zoo model: the encoder's 1/8 logits bilinearly upsampled to the input size.

    The official demo (``VisualizeResults.py``, model type 2) upsamples the same way, with ``nn.Upsample`` on
    PyTorch 0.3, whose bilinear mode aligned corners (the default changed in 0.4); keeping the weights'
    keys at the top level lets the released ``pretrained/encoder`` checkpoints load unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)


class ESPNet(nn.Module):
    """ESPNet: ESPNet-C plus the light-weight decoder of the official ``test/Model.py``.

    Decoder: 1/8 logits -> BN -> deconv x2; fused with a 1x1 projection of the 1/4 features through an ESP
    module; deconv x2 + BR; a 3x3 CBR on the concatenation with the 16-channel level-1 output; deconv x2.
    """

    def __init__(self, classes: int = 20, p: int = 2, q: int = 8) -> None:
        super().__init__()
        self.encoder = ESPNetEncoder(classes, p, q)
        self.level3_C = C(128 + 3, classes, 1, 1)
        self.br = nn.BatchNorm2d(classes, eps=BN_EPS)
        self.conv = CBR(16 + classes, classes, 3, 1)
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False))
        self.combine_l2_l3 = nn.Sequential(
            BR(2 * classes), DilatedParllelResidualBlockB(2 * classes, classes, add=False)
        )
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False), BR(classes))
        self.classifier = nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output0, output1_cat, output2_cat = self.encoder.features(x)
        output2_c = self.up_l3(self.br(self.encoder.classifier(output2_cat)))
        output1_c = self.level3_C(output1_cat)
        comb_l2_l3 = self.up_l2(self.combine_l2_l3(torch.cat([output1_c, output2_c], 1)))
        concat_features = self.conv(torch.cat([comb_l2_l3, output0], 1))
        return self.classifier(concat_features)


def build_espnet(num_classes: int = 20, p: int = 2, q: int = 8) -> ESPNet:
    return ESPNet(classes=num_classes, p=p, q=q)


def build_espnet_c(num_classes: int = 20, p: int = 2, q: int = 8) -> ESPNetC:
    return ESPNetC(classes=num_classes, p=p, q=q)


register(ModelSpec("espnet", build_espnet, (1024, 512), PAPER, ESPNET_CITYSCAPES, {"p": 2, "q": 8}, 8, 8))
register(ModelSpec("espnet-c", build_espnet_c, (1024, 512), PAPER, ESPNET_CITYSCAPES, {"p": 2, "q": 8}))


# --- the released Cityscapes weights (sacmehta/ESPNet pretrained/), loaded by edgekit.weights ------------------

OFFICIAL_SOURCES = {
    "espnet": "sacmehta/ESPNet pretrained/decoder (test/Model.py layout)",
    "espnet-c": "sacmehta/ESPNet pretrained/encoder (ESPNet_Encoder)",
}
_Q_IN_NAME = re.compile(r"_p_(\d+)_q_(\d+)")


def identify_official(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]] | None:
    """``espnet`` or ``espnet-c`` and its p and q, counted from a released file's keys, or None."""
    for prefix, name in (("encoder.", "espnet"), ("", "espnet-c")):
        if f"{prefix}level2_0.c1.conv.weight" in state_dict:
            p, q = _count_blocks(state_dict, f"{prefix}level2."), _count_blocks(state_dict, f"{prefix}level3.")
            return name, {"p": p, "q": q}
    return None


def _count_blocks(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of ModuleList entries under ``prefix`` (``level3.0.``, ``level3.1.``, ...)."""
    return len({key[len(prefix) :].split(".")[0] for key in state_dict if key.startswith(prefix)})


def describe_official(name: str, path: Path, state_dict: dict[str, torch.Tensor]) -> OfficialModel:
    """p and q from the file's ESP modules, else from its name (``_p_2_q_8``), else the defaults (said so)."""
    kwargs = dict(get_spec(name).kwargs)
    found = identify_official(state_dict)
    if found is not None and found[0] == name:
        kwargs.update(found[1])
        note = f"p={kwargs['p']}, q={kwargs['q']}: counted from the file's ESP modules"
    elif match := _Q_IN_NAME.search(path.name):
        kwargs.update(p=int(match[1]), q=int(match[2]))
        note = f"p={kwargs['p']}, q={kwargs['q']}: from the file name"
    else:
        note = f"p={kwargs['p']}, q={kwargs['q']}: defaults (neither the keys nor the file name tell)"
    return OfficialModel(name, kwargs, ESPNET_CITYSCAPES, (note,), OFFICIAL_SOURCES[name])
