"""Structural facts of LPS-Net and Lite-HRNet that the official code fixes and a wrong port would break."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models import build_model, get_spec
from edgekit.models.complexity import count_params
from edgekit.models.litehrnet import CONFIGS as LITEHRNET_CONFIGS
from edgekit.models.litehrnet import (
    ChannelShuffle,
    ConditionalChannelWeighting,
    LiteHRModule,
    LiteHRNet,
    LiteHRNetSeg,
)
from edgekit.models.lpsnet import LPSNet, bilateral_interaction

# {B, C, R} of the official get_lspnet_s/m/l.
LPSNET_OFFICIAL = {
    "lpsnet-s": ((1, 3, 3, 10, 10), (8, 24, 48, 96, 96), (0.75, 0.25)),
    "lpsnet-m": ((1, 3, 3, 10, 10), (8, 24, 48, 96, 96), (1.0, 0.25)),
    "lpsnet-l": ((1, 3, 3, 10, 10), (8, 24, 64, 160, 160), (1.0, 0.25)),
}


def _lpsnet(name: str, **kwargs: bool) -> LPSNet:
    model = build_model(name, num_classes=5, **kwargs)
    assert isinstance(model, LPSNet)
    return model.eval()


@pytest.mark.parametrize("name", sorted(LPSNET_OFFICIAL))
def test_lpsnet_paths_depth_width_and_strides(name: str) -> None:
    depth, width, _ = LPSNET_OFFICIAL[name]
    model = _lpsnet(name)
    assert model.path_names == ("netH", "netL")
    for path in model.paths:
        for stage, blocks, channels, stride in zip(path.stages, depth, width, (2, 2, 2, 2, 1), strict=True):
            convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
            assert len(convs) == blocks
            assert all(c.kernel_size == (3, 3) and c.out_channels == channels for c in convs)
            assert [c.stride[0] for c in convs] == [stride] + [1] * (blocks - 1)
    assert model.head.in_channels == 2 * width[-1] and model.head.kernel_size == (1, 1)


@pytest.mark.parametrize("name", sorted(LPSNET_OFFICIAL))
def test_lpsnet_path_resolutions_and_output_stride(name: str) -> None:
    _, width, ratios = LPSNET_OFFICIAL[name]
    model = _lpsnet(name)
    x = torch.randn(1, 3, 128, 256)
    inputs = model.path_inputs(x)
    assert [tuple(t.shape[-2:]) for t in inputs] == [(int(128 * r), int(256 * r)) for r in ratios]
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_logits(x)
        out = model(x)
    assert [tuple(f.shape[1:]) for f in features] == [
        (width[-1], int(128 * r) // 16, int(256 * r) // 16) for r in ratios
    ]
    assert logits.shape == (1, 5, int(128 * ratios[0]) // 16, int(256 * ratios[0]) // 16)
    expected = F.interpolate(logits, size=(128, 256), mode="bilinear", align_corners=True)
    assert torch.equal(out, expected)


def test_bilateral_b_adds_the_other_path_resized_from_pre_interaction_features() -> None:
    high, low = torch.randn(2, 4, 8, 16), torch.randn(2, 4, 2, 4)
    fused_high, fused_low = bilateral_interaction([high, low])
    assert fused_high.shape == high.shape and fused_low.shape == low.shape
    up = F.interpolate(low, size=(8, 16), mode="bilinear", align_corners=True)
    down = F.interpolate(high, size=(2, 4), mode="bilinear", align_corners=True)
    assert torch.allclose(fused_high, high + up)
    assert torch.allclose(fused_low, low + down)  # from `high`, not from the already fused high path


def test_lpsnet_interaction_after_stages_3_and_4_only() -> None:
    """The input of stages 4 and 5 is the Bilateral-B fusion of the previous stage's outputs; of stage 3 it is not."""
    model = _lpsnet("lpsnet-s")
    seen: dict[tuple[str, int, str], torch.Tensor] = {}
    for name, path in zip(model.path_names, model.paths, strict=True):
        for index, stage in enumerate(path.stages):
            stage.register_forward_hook(
                lambda _m, args, out, key=(name, index): seen.update({(*key, "in"): args[0], (*key, "out"): out})
            )
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 128))
    for stage in (3, 4):
        expected = bilateral_interaction([seen[("netH", stage - 1, "out")], seen[("netL", stage - 1, "out")]])
        assert torch.allclose(seen[("netH", stage, "in")], expected[0])
        assert torch.allclose(seen[("netL", stage, "in")], expected[1])
    assert torch.equal(seen[("netH", 2, "in")], seen[("netH", 1, "out")])


def test_lpsnet_deploy_form_matches_the_released_checkpoint_layout() -> None:
    """LPS-Net-S.pth is a deploy-mode state dict: conv with bias, no BN; 3,371,075 parameters with 19 classes."""
    model = build_model("lpsnet-s", num_classes=19, deploy=True)
    assert count_params(model) == 3_371_075
    keys = set(model.state_dict())
    assert {"netH.stages.0.0.0.weight", "netH.stages.0.0.0.bias", "netL.stages.4.9.0.bias", "head.weight"} <= keys
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _litehrnet(name: str) -> LiteHRNetSeg:
    model = build_model(name, num_classes=5)
    assert isinstance(model, LiteHRNetSeg)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "modules", "backbone_params"),
    [("litehrnet-18", (2, 4, 2), 1_054_032), ("litehrnet-30", (3, 8, 3), 1_686_980)],
)
def test_litehrnet_stages_branches_and_official_backbone_count(
    name: str, modules: tuple[int, int, int], backbone_params: int
) -> None:
    backbone = LiteHRNet(LITEHRNET_CONFIGS[name], with_head=False)
    assert count_params(backbone) == backbone_params  # the official LiteHRNet(extra, with_head=False)
    for index, (count, channels) in enumerate(zip(modules, ((40, 80), (40, 80, 160), (40, 80, 160, 320)), strict=True)):
        stage = getattr(backbone, f"stage{index}")
        assert len(stage) == count
        for module in stage:
            assert module.in_channels == list(channels)
            assert len(module.layers) == 2 and all(isinstance(b, ConditionalChannelWeighting) for b in module.layers)
    with torch.no_grad():
        branches = backbone(torch.randn(1, 3, 64, 128))
    assert [tuple(b.shape[1:]) for b in branches] == [(40, 16, 32), (80, 8, 16), (160, 4, 8), (320, 2, 4)]


def test_litehrnet_iterative_head_and_fcn_head_shapes() -> None:
    model = _litehrnet("litehrnet-18")
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 64, 128))
        out = model(torch.randn(1, 3, 64, 128))
    assert [tuple(f.shape[1:]) for f in features] == [(40, 16, 32), (40, 8, 16), (80, 4, 8), (160, 2, 4)]
    assert count_params(model.backbone.head_layer) == 76_040
    head = model.decode_head
    assert [c.conv.kernel_size for c in head.convs] == [(3, 3), (3, 3)]
    assert head.conv_cat.conv.in_channels == 80 and head.conv_seg.out_channels == 5
    assert out.shape == (1, 5, 64, 128)


def test_ccw_keeps_one_half_and_weights_the_other_across_resolutions() -> None:
    torch.manual_seed(0)
    block = ConditionalChannelWeighting([40, 80, 160], reduce_ratio=8).eval()
    x = [torch.randn(1, 40, 16, 16), torch.randn(1, 80, 8, 8), torch.randn(1, 160, 4, 4)]
    with torch.no_grad():
        out = block(x)
        changed = block([x[0], x[1], x[2] * 3])
    assert [o.shape for o in out] == [s.shape for s in x]
    for s, o in zip(x, out, strict=True):
        assert torch.equal(o[:, 0::2], s[:, : s.shape[1] // 2])  # untouched half, interleaved by the shuffle
    # Changing only the 1/4-size branch re-weights the full-size branch (cross-resolution weighting)...
    assert not torch.allclose(changed[0][:, 1::2], out[0][:, 1::2])
    assert torch.equal(changed[0][:, 0::2], out[0][:, 0::2])


def test_channel_shuffle_is_the_view_transpose_shuffle() -> None:
    x = torch.randn(2, 12, 3, 5)
    reference = x.view(2, 2, 6, 3, 5).transpose(1, 2).reshape(2, 12, 3, 5)
    assert torch.equal(ChannelShuffle(12)(x), reference)


def test_fusion_reproduces_the_official_double_branch0_sum() -> None:
    """Official loop: y0 = 2*x0 + up(x1) (written into x0 in place), y1 = 2*down(y0) + x1, outputs ReLU'd."""
    torch.manual_seed(0)
    module = LiteHRModule([4, 8], num_blocks=1, reduce_ratio=2).eval()
    module.layers = nn.Sequential()  # isolate the fusion: identity blocks
    x0, x1 = torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        out0, out1 = module([x0, x1])
        y0 = 2 * x0 + module.fuse_layers[0][1](x1)
        y1 = 2 * module.fuse_layers[1][0](y0) + x1
    assert torch.allclose(out0, torch.relu(y0), atol=1e-6)
    assert torch.allclose(out1, torch.relu(y1), atol=1e-6)


def test_litehrnet_rejects_sizes_not_divisible_by_32() -> None:
    with pytest.raises(EdgekitError, match="divisible by 32"):
        _litehrnet("litehrnet-18")(torch.randn(1, 3, 64, 100))


@pytest.mark.parametrize(
    ("name", "size", "paper"),
    [
        ("lpsnet-s", (2048, 1024), "LPS-Net (Zhang et al., CVPR 2022)"),
        ("lpsnet-m", (2048, 1024), "LPS-Net (Zhang et al., CVPR 2022)"),
        ("lpsnet-l", (2048, 1024), "LPS-Net (Zhang et al., CVPR 2022)"),
        ("litehrnet-18", (1024, 512), "Lite-HRNet (Yu et al., CVPR 2021)"),
        ("litehrnet-30", (1024, 512), "Lite-HRNet (Yu et al., CVPR 2021)"),
    ],
)
def test_registered_with_paper_size_and_imagenet_rgb_preprocessing(
    name: str, size: tuple[int, int], paper: str
) -> None:
    spec = get_spec(name)
    assert spec.paper == paper and spec.default_input_size == size
    pre = spec.default_preprocessing
    assert pre.input_size == size and pre.channel_order == "RGB" and pre.scale == 1.0
    assert pre.mean == pytest.approx((123.675, 116.28, 103.53)) and pre.std == pytest.approx((58.395, 57.12, 57.375))
