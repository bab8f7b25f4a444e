"""The engine builder: release policy (runs everywhere) and real engine builds (only where TensorRT and a GPU are).

Nothing here fakes TensorRT: the build tests skip with the reason where ``tensorrt`` or a CUDA binding is missing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from edgekit.board.backends.tensorrt_backend.builder import (
    EngineRequest,
    build_engine,
    install_timing_cache,
    int8_route,
    layer_placement,
    onnx_for,
    serialized_timing_cache,
    timing_cache_seed,
    trtexec_command,
)
from edgekit.board.backends.tensorrt_backend.releases import has, parse_release, supported_release
from edgekit.board.backends.tensorrt_backend.runner import (
    _sidecar_of,
    check_engine_compatibility,
    tensorrt_unavailable_reason,
)
from edgekit.board.backends.tensorrt_backend.sidecar import sidecar_path
from edgekit.board.bundle import timing_cache_file
from edgekit.errors import EdgekitError

VARIANTS = {"fp32": "model.fp32.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.qdq.onnx"}


def test_release_parsing_and_gates() -> None:
    assert parse_release("8.2.1.8") == (8, 2) and parse_release("10.3.0") == (10, 3) and parse_release("11") == (11, 0)
    assert has((8, 2), "IBuilderConfig.max_workspace_size") and not has((8, 2), "IBuilderConfig.set_memory_pool_limit")
    assert has((10, 3), "IBuilderConfig.set_memory_pool_limit", "MemoryPoolType.WORKSPACE")
    # implicit INT8 (DLA, sm_6x) keeps the calibrators in use up to 10.x
    assert has((10, 3), "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator") and not has((11, 0), "IInt8Calibrator")
    assert has((8, 4), "ICudaEngine.num_bindings") and not has((8, 5), "ICudaEngine.num_bindings")
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


def test_tensorrt_before_8_2_is_refused_naming_jetpack_4_6_1() -> None:
    assert supported_release("8.2.1.8") == (8, 2)
    with pytest.raises(EdgekitError, match=r"TensorRT 8\.0\.1\.6 .*JetPack 4\.6\.1"):
        supported_release("8.0.1.6")


def test_dla_and_pascal_int8_take_the_calibration_cache_route() -> None:
    """The DLA runs only calibrated INT8 and sm_6x INT8 from Q/DQ fails on 8.6: both parse the FP32 ONNX."""
    assert int8_route((8, 5), "int8", dla=False, compute_capability="7.2") == "explicit"
    assert int8_route((8, 5), "int8", dla=True, compute_capability="7.2") == "implicit"
    assert int8_route((8, 6), "int8", dla=False, compute_capability="6.1") == "implicit"
    assert int8_route((8, 2), "int8", dla=False, compute_capability="5.3") == "implicit"
    assert int8_route((11, 1), "int8", dla=False, compute_capability="9.0") == "typed"
    assert int8_route((10, 3), "fp16", dla=True, compute_capability="8.7") is None
    assert onnx_for((10, 3), "int8", VARIANTS, dla=True, compute_capability="8.7") == ("model.fp32.onnx", False)
    assert onnx_for((8, 6), "int8", VARIANTS, compute_capability="6.1") == ("model.fp32.onnx", False)
    assert onnx_for((8, 6), "int8", VARIANTS, compute_capability="7.5") == ("model.int8.qdq.onnx", False)


def test_trtexec_line_per_release() -> None:
    """Flags as samples/common/sampleOptions.cpp has them at each tag (see trtexec_command)."""
    nano = trtexec_command((8, 2), "fp16", "model.fp32.onnx", 1024)
    assert nano.startswith("/usr/src/tensorrt/bin/trtexec --onnx=model.fp32.onnx --saveEngine=model.engine")
    assert "--workspace=1024 --fp16" in nano and "--int8" not in nano and "memPoolSize" not in nano
    xavier_dla = trtexec_command((8, 5), "int8", "model.fp32.onnx", 2048, "calibration.cache", dla_core=0)
    assert "--memPoolSize=workspace:2048 --fp16 --int8 --calib=calibration.cache" in xavier_dla
    assert "--useDLACore=0 --allowGPUFallback" in xavier_dla and "--workspace=" not in xavier_dla
    assert "--builderOptimizationLevel" not in trtexec_command((8, 5), "fp16", "m.onnx", 1, optimization_level=3)
    assert "--builderOptimizationLevel=3" in trtexec_command((8, 6), "fp16", "m.onnx", 1, optimization_level=3)
    h100 = trtexec_command((11, 1), "int8", "model.int8.qdq.onnx", 4096, trtexec="trtexec")
    assert "--fp16" not in h100 and "--int8" not in h100 and "--onnx=model.int8.qdq.onnx" in h100
    assert "--profilingVerbosity=detailed --exportLayerInfo=layers.json" in h100


def test_timing_cache_is_keyed_by_tensorrt_and_gpu() -> None:
    names = {timing_cache_file(v, cc) for v, cc in [("8.5.2.2", "7.2"), ("8.5.2", "7.2"), ("8.4.1", "7.2")]}
    assert names == {"timing.trt8.5.2.sm72.cache", "timing.trt8.4.1.sm72.cache"}
    assert (
        timing_cache_file("10.3.0", "sm_87") == timing_cache_file("10.3.0.26", "8.7") == "timing.trt10.3.0.sm87.cache"
    )


def test_a_refused_timing_cache_falls_back_to_an_empty_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The decision logic of build_engine's timing cache, with TensorRT's verdicts as plain return values."""
    caplog.set_level(logging.INFO, logger="edgekit")

    def last_logged() -> str:
        return caplog.records[-1].getMessage()

    path = tmp_path / timing_cache_file("8.5.2", "7.2")
    assert timing_cache_seed(path) == b"" and "starts from an empty one" in last_logged()
    path.write_bytes(b"written by TensorRT 8.4.1 on another GPU")
    seed = timing_cache_seed(path)
    assert seed == path.read_bytes() and "reusing" in last_logged()
    offered: list[bytes] = []

    def refuse_stale(blob: bytes) -> str | None:
        offered.append(blob)
        return "set_timing_cache returned False" if blob else None

    assert install_timing_cache(refuse_stale, seed, path.name) is False
    assert offered == [seed, b""] and "refused" in last_logged() and "empty timing cache" in last_logged()
    assert install_timing_cache(lambda blob: None, seed, path.name) is True
    with pytest.raises(EdgekitError, match="refused even an empty timing cache"):
        install_timing_cache(lambda blob: "create_timing_cache returned None", seed, path.name)
    assert serialized_timing_cache(None) is None and "no timing cache is written" in last_logged()


def test_layer_placement_counts_dla_subgraphs() -> None:
    information = json.dumps(
        {
            "Layers": [
                {"Name": "input to nvm", "LayerType": "Reformat"},
                {"Name": "{ForeignNode[/conv1/Conv.../conv9/Conv]}", "LayerType": "ForeignNode"},
                {"Name": "/out/Resize", "LayerType": "Resize"},
            ]
        }
    )
    dla = layer_placement(information, dla=True)
    assert (dla["dla"], dla["gpu"]) == (1, 2) and dla["per_layer"][1]["device"] == "DLA"
    gpu = layer_placement(information, dla=False)
    assert (gpu["dla"], gpu["gpu"]) == (0, 3)
    assert layer_placement(json.dumps({"Layers": ["a", "b"]}), dla=False)["per_layer"][0] == {
        "name": "a",
        "type": "",
        "device": "GPU",
    }


def test_a_bare_engine_is_checked_through_its_sidecar(tmp_path: Path) -> None:
    """Item 7: an engine file given alone carries what it was built for beside it."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"plan")
    assert _sidecar_of(engine) is None
    sidecar_path(engine).write_text(
        json.dumps({"tensorrt_version": "8.2.1.8", "gpu": "NVIDIA Tegra X1", "compute_capability": "5.3"})
    )
    built_for = _sidecar_of(engine)
    with pytest.raises(EdgekitError, match=r"built for NVIDIA Tegra X1 .*TensorRT 8\.2\.1\.8.*edgekit compile"):
        check_engine_compatibility(engine, built_for, "10.3.0", "Orin", "8.7")
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EdgekitError, match="corrupt"):
        _sidecar_of(engine)


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


def test_real_rebuild_over_a_foreign_timing_cache_and_a_bare_engine(
    gpu_tensorrt: None, tiny_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A garbage timing cache under this GPU's key is refused by TensorRT and the build still writes a fresh one;
    the engine file opened alone is checked through its sidecar."""
    from edgekit.board.backends.tensorrt_backend.runner import TensorRTBackend

    engine_path = tiny_onnx.with_name("model.engine")
    first = build_engine(EngineRequest(onnx=tiny_onnx, precision="fp32", workspace_mib=256), engine_path)
    assert first.timing_cache is not None
    timing = engine_path.with_name(first.timing_cache)
    timing.write_bytes(b"not a timing cache from this TensorRT")
    caplog.set_level(logging.INFO, logger="edgekit")
    second = build_engine(EngineRequest(onnx=tiny_onnx, precision="fp32", workspace_mib=256), engine_path)
    assert second.timing_cache == first.timing_cache and timing.read_bytes() != b"not a timing cache from this TensorRT"
    assert any("timing cache" in record.getMessage() for record in caplog.records)
    with TensorRTBackend(engine_path) as backend:  # no built_for: read from model.engine.json
        assert backend.details()["tensorrt_version"] == second.tensorrt_version
    sidecar = json.loads(sidecar_path(engine_path).read_text())
    sidecar_path(engine_path).write_text(json.dumps({**sidecar, "compute_capability": "5.3", "gpu": "Tegra X1"}))
    with pytest.raises(EdgekitError, match="built for Tegra X1"):
        TensorRTBackend(engine_path)


def test_real_stale_cache_header_is_reported_rejected(gpu_tensorrt: None, tiny_onnx: Path, tmp_path: Path) -> None:
    """Handed a cache whose header names another release, TensorRT asks the read-only calibrator for images."""
    import tensorrt as trt

    from edgekit.board.backends.tensorrt_backend.builder import _cache_calibrator
    from edgekit.board.backends.tensorrt_backend.cache import write_cache

    release = parse_release(trt.__version__)
    if not has(release, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {trt.__version__} has no implicit calibration")
    cache = write_cache(tmp_path / "stale.cache", {"input": 2.0}, "7.1.3").read_bytes()
    logged: list[str] = []
    logger = trt.Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    assert trt.OnnxParser(network, logger).parse_from_file(str(tiny_onnx))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    calibrator = _cache_calibrator(cache, "IInt8EntropyCalibrator2", release, logged.append)
    config.int8_calibrator = calibrator
    builder.build_serialized_network(network, config)
    assert calibrator.rejected and "calibration cache rejected" in logged[-1]
