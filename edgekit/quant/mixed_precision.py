"""Mixed precision: the fewest layers, in sensitivity order, that must go back to float to meet ``max_drop``.

The search runs on the simulation graph; the real Q/DQ models (the written one and, for cross-validated folds, one
per fold's ranges) are then measured as onnxruntime runs them. The simulation matches them to a few pixels in 10^4;
should the real models still miss the budget, the next layers in the order go back to float too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from edgekit.export import ort_session
from edgekit.quant.calibrate import Ranges
from edgekit.quant.fp32 import Fp32Model
from edgekit.quant.holdout import HoldoutPlan
from edgekit.quant.qdq import ConvInfo, build_qdq
from edgekit.quant.scoring import Reference
from edgekit.quant.sensitivity import Simulator


def float_layers(order: list[int], forced: set[int], simulator: Simulator, max_drop: float | None) -> set[int]:
    """``forced`` plus the shortest prefix of ``order`` whose return to float meets the budget in simulation."""
    excluded = set(forced)
    if max_drop is not None:
        excluded |= set(order[: smallest_prefix(order, simulator.agreement, max_drop)])
    return excluded


def smallest_prefix(order: list[int], agreement: Callable[[set[int]], float], max_drop: float) -> int:
    """How many layers of ``order`` must go back to float: galloping then bisection over the prefix length.

    Agreement is close to monotonic in the number of float layers taken in sensitivity order, so about
    2 log2(n) simulated evaluations replace one per excluded layer.
    """
    if _passes(order, 0, agreement, max_drop):
        return 0
    low, high = 0, 1  # passes(low) is False
    while high < len(order) and not _passes(order, high, agreement, max_drop):
        low, high = high, min(2 * high, len(order))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _passes(order, middle, agreement, max_drop) else (middle, high)
    return high


def _passes(order: list[int], count: int, agreement: Callable[[set[int]], float], max_drop: float) -> bool:
    """Whether the budget holds with the first ``count`` layers of ``order`` in float and the rest of it in INT8."""
    return agreement(set(order) - set(order[:count])) >= 1.0 - max_drop


@dataclass
class QdqResult:
    model: onnx.ModelProto  # on the ranges of every calibration part: the model written
    excluded: set[int]  # layer indices kept in float
    predictions: list[np.ndarray]  # class maps of the scored hold-out inputs, each from its fold's Q/DQ model
    per_image: list[float]  # their agreement with FP32 on the scored pixels


def measure_qdq(
    fp32: Fp32Model,
    plan: HoldoutPlan,
    ranges: Ranges,
    reference: Reference,
    order: list[int],
    excluded: set[int],
    max_drop: float | None,
) -> QdqResult:
    """The real Q/DQ models with ``excluded`` in float, and the layers after them in ``order`` sent to float one
    at a time while the budget is missed."""
    excluded = set(excluded)
    remaining = [i for i in order if i not in excluded]
    while True:
        names = {fp32.layers[i].name for i in excluded}
        written = build_qdq(fp32.folded, _conv_ranges(fp32.layers, ranges.amax), names)
        sessions = [
            ort_session(
                (
                    written
                    if fold.uncalibrated_part is None
                    else build_qdq(fp32.folded, _conv_ranges(fp32.layers, fold_ranges), names)
                ).SerializeToString()
            )
            for fold, fold_ranges in zip(plan.folds, ranges.per_fold, strict=True)
        ]
        predictions = [sessions[f].run(None, {fp32.input_name: x})[0].argmax(1) for f, x in reference.inputs]
        per_image = reference.per_image(predictions)
        if max_drop is None or min(per_image) >= 1.0 - max_drop or not remaining:
            return QdqResult(written, excluded, predictions, per_image)
        excluded.add(remaining.pop(0))


def _conv_ranges(layers: list[ConvInfo], amax: dict[str, float]) -> dict[str, float]:
    return {layer.input: amax[layer.input] for layer in layers}
