"""The calibration pass: activation ranges of every tensor of the FP32 graph, per calibration part of the hold-out
plan, so that each hold-out image is scored on ranges it did not calibrate.

Every tensor, since the TensorRT cache needs them all; Q/DQ uses the conv inputs, whose names and values BatchNorm
folding leaves unchanged, so the ranges are taken on the graph as exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgekit.board import events
from edgekit.errors import EdgekitError
from edgekit.export import ort_session
from edgekit.quant.calibration import CalibrationSet
from edgekit.quant.fp32 import Fp32Model
from edgekit.quant.holdout import HoldoutPlan
from edgekit.quant.qdq import ConvInfo, activation_tensors, expose_tensors
from edgekit.quant.ranges import ActivationStats, collect_stats


@dataclass
class Ranges:
    method: str
    images: int  # calibration images behind ``amax``
    amax: dict[str, float]  # every part together: the written Q/DQ model and the TensorRT cache
    per_fold: list[dict[str, float]]  # the ranges each fold of the plan is scored on (none from its own images)


def network_inputs(calibration: CalibrationSet, fp32: Fp32Model) -> list[np.ndarray]:
    """The calibration frames as the model's inputs; refused at another size than the model's."""
    inputs = list(calibration.inputs(fp32.input_dtype))
    height, width = fp32.input_hw
    for x in inputs:
        if x.shape[-2:] != (height, width):
            raise EdgekitError(
                f"calibration inputs are {x.shape[-1]}x{x.shape[-2]} but {fp32.path} takes {width}x{height}; use "
                "the model's preprocessing size"
            )
    return inputs


def collect_part_stats(
    fp32: Fp32Model, inputs: list[np.ndarray], plan: HoldoutPlan, method: str
) -> list[ActivationStats]:
    """The statistics of every tensor over each calibration part of ``plan``, one image at a time."""
    tensors = activation_tensors(fp32.model)
    session = ort_session(expose_tensors(fp32.model, tensors).SerializeToString())
    with events.task(f"calibrating ({method})", total=sum(len(part) for part in plan.parts)) as work:
        return [
            collect_stats(session, fp32.input_name, tensors, _advancing([inputs[i] for i in part], work))
            for part in plan.parts
        ]


def ranges_of(part_stats: list[ActivationStats], plan: HoldoutPlan, method: str, layers: list[ConvInfo]) -> Ranges:
    """The written model's ranges (every part) and each fold's (the parts it did not calibrate)."""
    stats = part_stats[0] if len(part_stats) == 1 else ActivationStats.merged(part_stats)
    amax = stats.amax(method)
    per_fold = [
        amax
        if fold.uncalibrated_part is None
        else ActivationStats.merged([s for j, s in enumerate(part_stats) if j != fold.uncalibrated_part]).amax(method)
        for fold in plan.folds
    ]
    missing = [layer.name for layer in layers if layer.input not in amax]
    if missing:
        raise EdgekitError(f"no calibration statistics for the inputs of {', '.join(missing[:3])}")
    return Ranges(method, stats.images, amax, per_fold)


def _advancing(items: list[np.ndarray], work: events.Task) -> Iterator[np.ndarray]:
    for item in items:
        yield item
        work.advance()
