"""What ``quantize_int8`` returns: the agreement with FP32, the layers kept in float and why, as JSON-ready data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LayerSensitivity:
    name: str
    op_type: str
    mac_share: float
    local_error: float  # |y_int8 - y|^2 / |y|^2 of this layer's output, every other layer in float
    agreement_alone: float | None = None  # mean pixel agreement (every hold-out pixel) with only this layer in INT8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QuantizeReport:
    output: Path
    method: str
    calibration_images: int  # images whose ranges the written model carries
    holdout: list[str]
    holdout_scheme: str  # given | definition | split | cross-validated | synthetic (edgekit.quant.holdout)
    holdout_reason: str
    pixel_agreement: float  # worst hold-out image, on the pixels the scheme scores
    pixel_agreement_per_image: list[float]
    pixel_agreement_all_pixels: list[float]  # per image, every pixel
    miou_vs_fp32: float
    class_iou_vs_fp32: dict[str, float]
    classes_below_iou_floor: list[str]
    class_iou_floor: float
    int8_mac_share: float
    int8_layers: int
    conv_layers: int
    excluded: list[LayerSensitivity]
    sensitivity: list[LayerSensitivity]  # the order the mixed-precision search tried them: most sensitive first
    max_drop: float | None
    met_budget: bool
    folding: dict[str, int]
    calibration_cache: Path | None
    trt_version: str
    seconds: float
    miou_labels_fp32: float | None = None
    miou_labels_int8: float | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output"] = str(self.output)
        data["calibration_cache"] = str(self.calibration_cache) if self.calibration_cache else None
        return data
