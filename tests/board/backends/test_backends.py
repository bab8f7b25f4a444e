"""Backends on real ONNX exports through real onnxruntime; TensorRT where it imports (never faked)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgekit.board.backends import choose_backend, open_backend, resolve_model
from edgekit.board.backends.base import to_classmap
from edgekit.board.backends.onnxruntime import OnnxRuntimeBackend
from edgekit.board.backends.tensorrt_backend.runner import check_engine_compatibility, tensorrt_unavailable_reason
from edgekit.board.bundle import Bundle
from edgekit.errors import EdgekitError

TRT_MISSING = tensorrt_unavailable_reason()


def street_frame(width: int = 200, height: int = 120) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_classmap_is_exactly_numpy_argmax_including_ties(dtype: type) -> None:
    rng = np.random.default_rng(5)
    logits = rng.integers(-3, 4, (2, 19, 64, 96)).astype(dtype)  # few distinct values: ties on most pixels
    logits[:, :, :4] = 0  # all-equal rows: the first channel must win
    classmap = to_classmap(logits, "logits")
    assert classmap.dtype == np.uint8 and classmap.shape == (2, 64, 96)
    np.testing.assert_array_equal(classmap, logits.argmax(axis=1))
    assert (classmap[:, :4] == 0).all() and len(np.unique(classmap)) == 19


def test_auto_picks_onnxruntime_for_a_bundle_without_engine_and_says_why(
    tiny_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="edgekit"):
        backend = open_backend(tiny_bundle)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert "has no TensorRT engine" in backend.chosen_because
    assert "backend: onnxruntime (bundle" in caplog.text
    info = backend.details()
    assert info["provider"] == "CPUExecutionProvider"  # what really runs, not what was asked for
    assert backend.describe().startswith("onnxruntime ") and "CPUExecutionProvider" in backend.describe()


def test_uint8_fast_path_and_ingraph_argmax_match_the_float_logits_model(
    tiny_bundle: Path, tiny_uint8_onnx: Path, tiny_logits_onnx: Path
) -> None:
    """Same weights three ways: the built bundle (float input, int32 class-map head), `edgekit export
    --normalize-in-graph --argmax` (uint8 + in-graph normalisation + ArgMax) and plain float input + logits."""
    built = Bundle.load(tiny_bundle)
    preprocessing = built.preprocessing
    frame = street_frame()
    with (
        open_backend(built) as bundle_model,
        open_backend(tiny_uint8_onnx) as uint8_model,
        open_backend(tiny_logits_onnx) as float_model,
    ):
        assert bundle_model.input_dtype == np.float32 and bundle_model.output_kind == "classmap"
        assert uint8_model.input_dtype == np.uint8 and uint8_model.output_kind == "classmap"
        assert float_model.input_dtype == np.float32 and float_model.output_kind == "logits"
        assert bundle_model.input_shape == uint8_model.input_shape == (1, 3, 64, 128)
        built_map = bundle_model.infer(preprocessing(frame))
        classmap = uint8_model.infer(preprocessing.to_uint8_chw(frame))
        logits = float_model.infer(preprocessing(frame))
    assert built_map.shape == classmap.shape == (1, 64, 128) and logits.shape == (1, 20, 64, 128)
    assert built_map.dtype == np.int32  # the class-map head ends in Cast to int32
    assert (built_map == logits.argmax(axis=1)).mean() > 0.999
    assert (classmap == logits.argmax(axis=1)).mean() > 0.999


def test_plain_onnx_file_and_thread_settings(tiny_logits_onnx: Path) -> None:
    onnx_file = tiny_logits_onnx
    assert choose_backend(resolve_model(onnx_file)) == ("onnxruntime", "a plain ONNX file was given")
    backend = open_backend(onnx_file, intra_op_threads=1, spin_wait=False)
    assert backend.details()["intra_op_threads"] == 1 and backend.details()["spin_wait"] is False
    assert backend.infer(np.zeros((1, 3, 64, 128), np.float32)).shape == (1, 20, 64, 128)


def test_clear_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="unknown backend"):
        open_backend(tiny_bundle, "openvino")
    with pytest.raises(EdgekitError, match="model not found"):
        open_backend(tmp_path / "missing.onnx")
    with pytest.raises(EdgekitError, match=r"has no TensorRT engine.*edgekit compile"):
        open_backend(tiny_bundle, "tensorrt")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(EdgekitError, match="not CUDAExecutionProvider"):
            open_backend(tiny_bundle, "onnxruntime", device="cuda")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    with pytest.raises(EdgekitError, match="onnxruntime cannot load"):
        open_backend(broken)


def test_torch_backend_runs_an_edgekit_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("edgekit.board.backends.torch_backend", reason="the PyTorch backend is not in this checkout")
    import torch

    from edgekit.board.classes import ClassSet
    from edgekit.board.preprocess import ESPNET_CITYSCAPES
    from edgekit.checkpoint import Checkpoint
    from edgekit.models import build_model

    torch.manual_seed(0)
    net = build_model("espnet", num_classes=5)
    path = Checkpoint("espnet", {}, ClassSet.generic(5), ESPNET_CITYSCAPES.with_size(64, 32), net.state_dict()).save(
        tmp_path / "tiny.pt"
    )
    backend = open_backend(path, device="cpu")
    assert backend.name == "torch" and backend.chosen_because == "a checkpoint runs on PyTorch"
    assert backend.infer(np.zeros((1, 3, 32, 64), np.float32)).shape == (1, 5, 32, 64)


def test_engine_for_another_gpu_or_tensorrt_is_refused_naming_both(tmp_path: Path) -> None:
    engine = tmp_path / "bundle" / "model.engine"
    built = {"tensorrt_version": "8.2.1.8", "gpu": "NVIDIA Tegra X1", "compute_capability": "5.3"}
    with pytest.raises(EdgekitError) as error:
        check_engine_compatibility(engine, built, "10.3.0", "Orin", "8.7")
    message = str(error.value)
    assert "NVIDIA Tegra X1" in message and "8.2.1.8" in message and "Orin" in message and "10.3.0" in message
    assert f"edgekit compile --bundle {engine.parent}" in message
    check_engine_compatibility(engine, built, "8.2.1.9", "NVIDIA Tegra X1", "5.3")  # build number may differ
    check_engine_compatibility(engine, {**built, "compute_capability": "sm_53"}, "8.2.1", "NVIDIA Tegra X1", "5.3")


@pytest.mark.skipif(TRT_MISSING is not None, reason=f"TensorRT backend cannot run here: {TRT_MISSING}")
def test_tensorrt_engine_matches_onnxruntime(tiny_logits_onnx: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    """Build a real engine from the tiny ONNX with TensorRT's own parser and compare with onnxruntime."""
    import tensorrt as trt

    from edgekit.board.backends.tensorrt_backend.runner import TensorRTBackend

    onnx_file = tiny_logits_onnx
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit_batch = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1  # the flag 10.x made the only mode
    network = builder.create_network(explicit_batch)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_file.read_bytes())
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(bytes(plan))
    frame = Bundle.load(tiny_bundle).preprocessing(street_frame())  # the same checkpoint's preprocessing
    with TensorRTBackend(engine) as trt_backend, open_backend(onnx_file) as reference:
        assert trt_backend.output_kind == "logits"
        assert np.abs(trt_backend.infer(frame) - reference.infer(frame)).max() < 1e-2
