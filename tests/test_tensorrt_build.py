"""The engine builder: release policy (runs everywhere) and real engine builds (only where TensorRT and a GPU are).

Nothing here fakes TensorRT: the build tests skip with the reason where ``tensorrt`` or a CUDA binding is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.board.backends.tensorrt_backend.builder import EngineRequest, build_engine, onnx_for, sidecar_path
from edgekit.board.backends.tensorrt_backend.releases import has, parse_release
from edgekit.board.backends.tensorrt_backend.runner import tensorrt_unavailable_reason
from edgekit.errors import EdgekitError

VARIANTS = {"fp32": "model.fp32.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.qdq.onnx"}


def test_release_parsing_and_gates() -> None:
    assert parse_release("8.2.1.8") == (8, 2) and parse_release("10.3.0") == (10, 3) and parse_release("11") == (11, 0)
    assert has((8, 2), "IBuilderConfig.max_workspace_size") and not has((8, 2), "IBuilderConfig.set_memory_pool_limit")
    assert has((10, 3), "IBuilderConfig.set_memory_pool_limit", "MemoryPoolType.WORKSPACE")
    assert has((8, 2), "IInt8EntropyCalibrator2") and not has((8, 5), "IInt8EntropyCalibrator2")
    assert has((10, 13), "BuilderFlag.FP16") and not has((11, 1), "BuilderFlag.FP16")
    assert has((11, 1), "NetworkDefinitionCreationFlag.STRONGLY_TYPED")


def test_onnx_variant_per_release() -> None:
    # 8.0-8.4: FP32 ONNX + builder flags (+ calibration cache for INT8)
    assert onnx_for((8, 2), "fp16", VARIANTS) == ("model.fp32.onnx", False)
    assert onnx_for((8, 4), "int8", VARIANTS) == ("model.fp32.onnx", False)
    # 8.5-10.x: INT8 through the Q/DQ ONNX (explicit quantization), precision flags still set
    assert onnx_for((8, 5), "int8", VARIANTS) == ("model.int8.qdq.onnx", False)
    assert onnx_for((10, 3), "int8", VARIANTS) == ("model.int8.qdq.onnx", False)
    assert onnx_for((10, 3), "fp16", VARIANTS) == ("model.fp32.onnx", False)
    # 11.x: strongly typed, the ONNX carries the precision
    assert onnx_for((11, 1), "fp16", VARIANTS) == ("model.fp16.onnx", True)
    assert onnx_for((11, 1), "int8", VARIANTS) == ("model.int8.qdq.onnx", True)
    with pytest.raises(EdgekitError, match="strongly typed"):
        onnx_for((11, 1), "fp16", {"fp32": "model.fp32.onnx"})


@pytest.fixture
def gpu_tensorrt() -> None:
    reason = tensorrt_unavailable_reason()
    if reason:
        pytest.skip(f"no real TensorRT engine can be built here: {reason}")


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    from edgekit.board.classes import cityscapes_classes
    from edgekit.checkpoint import Checkpoint
    from edgekit.export import export_onnx
    from edgekit.models import build_model, get_spec

    classes = cityscapes_classes()
    model = build_model("espnet-c", num_classes=len(classes))
    checkpoint = Checkpoint("espnet-c", {}, classes, get_spec("espnet-c").default_preprocessing, model.state_dict())
    output = tmp_path / "model.fp32.onnx"
    export_onnx(checkpoint, output, input_size=(128, 64))
    return output


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_engine_build_and_inference(gpu_tensorrt: None, tiny_onnx: Path, precision: str) -> None:
    import tensorrt as trt

    from edgekit.board.backends.tensorrt_backend.runner import TensorRTBackend
    from edgekit.export import ort_session

    if parse_release(trt.__version__) >= (11, 0) and precision == "fp16":
        pytest.skip("TensorRT 11 takes FP16 from an FP16 ONNX; the bundle test covers that path")
    engine_path = tiny_onnx.with_name("model.engine")
    info = build_engine(EngineRequest(onnx=tiny_onnx, precision=precision, workspace_mib=256), engine_path)
    sidecar = json.loads(sidecar_path(engine_path).read_text())
    assert sidecar["tensorrt_version"] == trt.__version__ == info.tensorrt_version
    assert sidecar["compute_capability"] and sidecar["gpu"]
    assert engine_path.with_name(info.timing_cache or "no timing cache").stat().st_size > 0
    assert info.layers["gpu"] > 0 and info.layers["dla"] == 0
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 128)).astype(np.float32)
    (reference,) = ort_session(tiny_onnx).run(None, {"input": x})
    with TensorRTBackend(engine_path, built_for=sidecar) as backend:
        actual = backend.infer(x)
    assert (actual.argmax(1) == reference.argmax(1)).mean() > 0.98


def test_engine_for_another_gpu_is_refused_with_both_names(gpu_tensorrt: None, tiny_onnx: Path) -> None:
    from edgekit.board.backends.tensorrt_backend.runner import TensorRTBackend

    engine_path = tiny_onnx.with_name("model.engine")
    build_engine(EngineRequest(onnx=tiny_onnx, precision="fp32", workspace_mib=256), engine_path)
    claimed = {"tensorrt_version": "8.2.1.8", "gpu": "NVIDIA Tegra X1", "compute_capability": "5.3"}
    with pytest.raises(EdgekitError, match=r"built for NVIDIA Tegra X1 .*TensorRT 8\.2\.1\.8.*edgekit compile"):
        TensorRTBackend(engine_path, built_for=claimed)
