"""The files ``quantize_int8`` writes: checked before calibrating, written once the model is chosen."""

from __future__ import annotations

from pathlib import Path

import onnx

from edgekit.board.backends.tensorrt_backend.cache import write_cache
from edgekit.board.outputs import check_output_file
from edgekit.export import is_edgekit_onnx
from edgekit.quant.calibrate import Ranges


def check_outputs(output: Path, calibration_cache: Path | None) -> None:
    """The Q/DQ model and cache paths: writable, and replacing only edgekit's own files (before calibrating)."""
    check_output_file(output, "Q/DQ ONNX output", is_edgekit_onnx, "an ONNX model written by edgekit")
    if calibration_cache is not None:
        check_output_file(calibration_cache, "calibration cache", _is_calibration_cache, "a TensorRT calibration cache")


def write_qdq(qdq: onnx.ModelProto, fp32: onnx.ModelProto, output: Path) -> None:
    """``qdq`` at ``output``, carrying the FP32 model's edgekit metadata (preprocessing, classes)."""
    del qdq.metadata_props[:]
    qdq.metadata_props.extend(fp32.metadata_props)
    onnx.checker.check_model(qdq)
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(qdq, str(output))


def write_calibration_cache(path: Path, ranges: Ranges, trt_version: str) -> Path:
    """Every tensor's range under the header of ``trt_version``; percentile ranges under EntropyCalibration2's."""
    algorithm = "MinMaxCalibration" if ranges.method == "minmax" else "EntropyCalibration2"
    return write_cache(Path(path), ranges.amax, trt_version, algorithm)


def _is_calibration_cache(path: Path) -> bool:
    """TensorRT calibration caches start with their header line ``TRT-<version>-<algorithm>``."""
    with path.open("rb") as handle:
        return handle.read(4) == b"TRT-"
