"""The build's INT8 stage: Q/DQ ONNX and the TensorRT calibration cache, the strongly typed FP16 rewrite for
TensorRT 11, and the warning when real-data weights meet the synthetic default calibration set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.board.bundle import CALIBRATION_CACHE_FILE, ONNX_FILES, BundleWriter
from edgekit.board.preprocess import Preprocessing
from edgekit.board.targets import Target
from edgekit.build.inputs import Inputs
from edgekit.build.options import DEFAULT_CALIBRATION, BuildOptions
from edgekit.checkpoint import Checkpoint
from edgekit.errors import EdgekitError
from edgekit.quant import (
    DEFAULT_TRT_VERSION,
    FP16_QDQ_OPSET,
    QuantizeOptions,
    load_calibration,
    qdq_to_fp16,
    quantize_int8,
)

# README, "Export and INT8": `edgekit quantize` with defaults only (cross-validated hold-out of the photos)
REAL_CALIBRATION_MEASURED = (
    "official ESPNet at 1024x512 calibrated on 13 street photos: 93.2 % of conv MACs in INT8, 97.36 % / 99.07 % "
    "agreement with FP32 on two Cityscapes frames"
)


def quantize_for_target(
    options: BuildOptions, writer: BundleWriter, preprocessing: Preprocessing, target: Target, inputs: Inputs
) -> dict[str, Any]:
    """Q/DQ ONNX, plus the TensorRT calibration cache (header = the target's release) for TensorRT targets."""
    calibration = inputs.calibration
    if calibration is None or calibration.preprocessing != preprocessing:  # official weights' own preprocessing
        calibration = load_calibration(options.calib or DEFAULT_CALIBRATION, preprocessing, count=options.calib_count)

    release = target.software.get("tensorrt")
    report = quantize_int8(
        writer.path(ONNX_FILES["fp32"]),
        calibration,
        writer.path(ONNX_FILES["int8"]),
        calibration_cache=writer.path(CALIBRATION_CACHE_FILE) if release else None,
        options=QuantizeOptions(trt_version=release or DEFAULT_TRT_VERSION),  # the release: unused without a cache
    )
    data: dict[str, Any] = report.to_dict()
    data["calibration_set"] = calibration.name
    return data


def fp16_between_qdq(qdq: Path) -> dict[str, Any]:
    """Strongly typed TensorRT (11.x) runs the layers kept in float at the ONNX's type: make those FP16 in place,
    or keep the FP32 Q/DQ model where FP16 changes the class map, saying so (report.json metrics.int8). Done on
    the finished model (class-map head included, compared class map for class map); the accuracy stage measured
    the FP32 Q/DQ model before it."""
    fp16 = qdq.with_name(f".{qdq.name}.fp16")
    try:
        converted = qdq_to_fp16(qdq, fp16)
    except EdgekitError as exc:
        fp16.unlink(missing_ok=True)
        return {"applied": False, "why": f"{exc}; the float layers of this INT8 model run in FP32 on TensorRT 11"}
    fp16.replace(qdq)
    return {"applied": True, "argmax_agreement_with_fp32_qdq": converted.argmax_agreement, "opset": FP16_QDQ_OPSET}


def real_data_source(checkpoint: Checkpoint) -> str | None:
    """What real images the weights were trained on, from the checkpoint's provenance; None if not known to be."""
    if checkpoint.meta.get("official_file"):
        return f"official weights {checkpoint.meta['official_file']}, trained on real images"
    data = (checkpoint.meta.get("trained_with") or {}).get("data")
    return f"weights trained on {data}" if data else None


def synthetic_calibration_warning(
    checkpoint: Checkpoint, calib: str | Path | None, quantized: dict[str, Any]
) -> str | None:
    """Said when real-data weights meet the synthetic default calibration set: what it cost and how to avoid it."""
    source = real_data_source(checkpoint)
    if calib is not None or source is None:
        return None
    return (
        f"no --calib, so INT8 was calibrated and scored on `{DEFAULT_CALIBRATION}` (synthetic street scenes), which "
        f"is outside the domain of the {source}: on it {quantized['int8_mac_share']:.1%} of conv MACs stay in INT8 "
        f"at {quantized['pixel_agreement']:.2%} hold-out agreement with FP32. Real frames let more layers stay INT8 "
        f"({REAL_CALIBRATION_MEASURED}); pass --calib DIR with frames like the camera's (some of them are "
        "held out to score INT8)"
    )
