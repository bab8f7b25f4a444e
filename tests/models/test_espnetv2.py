"""ESPNetv2's export rewrite of adaptive pooling: the same numbers as the official operator, and a dynamic batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models import build_model
from edgekit.models.espnetv2 import adaptive_avg_pool2d


class _Pool(nn.Module):
    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(x, self.size)


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((24, 48), (36, 72)),
        ((36, 72), (24, 48)),
        ((16, 32), (5, 5)),
        ((4, 8), (5, 5)),
        ((33, 17), (17, 9)),
        ((8, 8), (4, 2)),
    ],
)
def test_traced_pooling_equals_the_official_operator(shape: tuple[int, int], size: tuple[int, int]) -> None:
    """Up- and down-pooling, non-dividing sizes and the 5-pixel floor of the pyramid's small scales."""
    torch.manual_seed(0)
    traced = torch.jit.trace(_Pool(size), torch.randn(1, 3, *shape))  # the export path (gathers / fixed pooling)
    x = torch.randn(2, 3, *shape)
    assert torch.allclose(traced(x), F.adaptive_avg_pool2d(x, size), atol=1e-6, rtol=0)


def test_onnx_export_with_dynamic_batch_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("espnetv2-s0.5", num_classes=20).eval()
    path = tmp_path / "espnetv2.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 96, 160),),
        str(path),
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    x = torch.randn(3, 3, 96, 160)
    with torch.no_grad():
        expected = model(x).numpy()
    (actual,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    assert actual.shape == (3, 20, 96, 160)
    assert np.abs(actual - expected).max() < 1e-4


def test_input_size_not_divisible_by_16_is_a_clear_error() -> None:
    with pytest.raises(EdgekitError, match="divisible by 16, got 100x64"):
        build_model("espnetv2-s0.5").eval()(torch.zeros(1, 3, 64, 100))
