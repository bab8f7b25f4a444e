"""Every zoo network: shape contract, ONNX export and onnxruntime parity, and official parameter counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgekit.models import available_models, build_model
from edgekit.models.complexity import count_params, measure

# Counts of the official implementations with 20 classes (see ../shared/reference).
OFFICIAL_PARAMS = {
    "espnet": 364_569,
    "espnet-c": 349_449,
    "espnetv2-s0.5": 80_342,
    "espnetv2-s1.0": 234_010,
    "espnetv2-s1.5": 468_362,
    "espnetv2-s2.0": 789_242,
    # Official lpsnet.py get_lspnet_s/m/l (BN form) built with num_classes=20; with 19 classes 3,375,363 / 9,159,235,
    # the reference notes' 3.375 M / 9.159 M.
    "lpsnet-s": 3_375_556,
    "lpsnet-m": 3_375_556,
    "lpsnet-l": 9_159_556,
    # Official Lite-HRNet backbone with IterativeHead (1,130,072 / 1,763,020: the notes' 1.130 M / 1.763 M) plus the
    # FCNHead of MMSegmentation PR #720 fcn_litehr{18,30}-with-head.py, 20 classes.
    "litehrnet-18": 1_188_732,
    "litehrnet-30": 1_821_680,
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_count_matches_official(name: str) -> None:
    assert count_params(build_model(name, num_classes=20)) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", available_models())
def test_logits_at_input_resolution_and_onnx_parity(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=7).eval()
    x = torch.randn(1, 3, 128, 256)
    with torch.no_grad():
        expected = model(x).numpy()
    assert expected.shape == (1, 7, 128, 256)

    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        model, (x,), str(path), opset_version=17, input_names=["input"], output_names=["logits"], dynamo=False
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"input": x.numpy()})
    assert np.abs(actual - expected).max() < 1e-4


def test_macs_scale_with_pixels() -> None:
    model = build_model("espnet")
    small = measure(model, (512, 256)).macs
    large = measure(model, (1024, 512)).macs
    assert large == 4 * small
