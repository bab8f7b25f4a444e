"""INT8 post-training quantization that keeps the predictions: explicit Q/DQ ONNX plus a TensorRT cache.

Why a default onnxruntime Q/DQ ESPNet agrees with FP32 on under 10 % of pixels, measured layer by layer on the
official weights (see README, "INT8 quantization"):

1. onnxruntime quantizes *every* op by default, including the outputs of the final ConvTranspose (the logits,
   so ArgMax sees 8-bit logits with ties) and BatchNormalization, whose scale/bias it treats as per-tensor INT8
   weights — a BatchNorm after ESPNet's concatenations has per-channel gains spanning two orders of magnitude,
   so the small gains round to zero. Fix: Q/DQ only at Conv/ConvTranspose inputs and weights (the placement
   TensorRT wants; it fuses BN/PReLU/Add itself), never on outputs; BN folded into convs where exact
   (:mod:`edgekit.quant.fold`).
2. MinMax ranges from a handful of photos are set by rare outliers: ESPNet's activations after the official
   ``x / 255`` of normalised values are tiny and heavy-tailed (rms ~1/20 of the max), so most values land in a
   few INT8 steps. Percentile calibration (99.99 %) clips the tail; entropy (TensorRT's KL method) is in between.
3. A few layers — the 1x1 reduce convolutions at the entry of the ESP modules, whose inputs mix dead and
   saturated channels — cause most of the remaining loss. Per-layer sensitivity on calibration-free hold-out
   images ranks them and the mixed-precision search keeps the worst in float until ``max_drop`` is met.

The phases, one module each: calibration pass (:mod:`~edgekit.quant.calibrate`), FP32 on the hold-out
(:mod:`~edgekit.quant.scoring`), per-layer sensitivity (:mod:`~edgekit.quant.sensitivity`), mixed-precision
search and the real Q/DQ models (:mod:`~edgekit.quant.mixed_precision`), the files written
(:mod:`~edgekit.quant.outputs`) and the report (:mod:`~edgekit.quant.report`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.quant.calibrate import Ranges, collect_part_stats, network_inputs, ranges_of
from edgekit.quant.calibration import CalibrationSet
from edgekit.quant.fp32 import Fp32Model, load_fp32
from edgekit.quant.holdout import HoldoutPlan, plan_holdout
from edgekit.quant.mixed_precision import QdqResult, float_layers, measure_qdq
from edgekit.quant.options import QuantizeOptions
from edgekit.quant.outputs import check_outputs, write_calibration_cache, write_qdq
from edgekit.quant.qdq import int8_weight_layers
from edgekit.quant.report import QuantizeReport
from edgekit.quant.scoring import CLASS_IOU_FLOOR, Evaluation, Reference, evaluate, fp32_reference
from edgekit.quant.sensitivity import Ranking, Simulator, rank_layers


def quantize_int8(
    onnx_fp32: Path,
    calibration: CalibrationSet,
    output: Path,
    options: QuantizeOptions | None = None,
    *,
    holdout: Sequence[np.ndarray] | None = None,
    holdout_names: Sequence[str] | None = None,
    holdout_labels: Sequence[np.ndarray] | None = None,
    calibration_cache: Path | None = None,
) -> QuantizeReport:
    """Calibrate, fold, measure per-layer sensitivity, choose float layers, write the Q/DQ model and cache.

    ``holdout``: network inputs (1x3xHxW, the model's input dtype) never used for calibration; default: the
    calibration set's own hold-out, else one drawn from the calibration images (:mod:`edgekit.quant.holdout`).
    ``holdout_labels``: label maps of those inputs, for the mIoU of FP32 and INT8 against them.
    """
    options = options or QuantizeOptions()
    clock = _Stopwatch()
    output = Path(output)
    fp32 = _checked_request(Path(onnx_fp32), calibration, output, calibration_cache, options)
    plan = plan_holdout(calibration, holdout, holdout_names, fp32.input_dtype)
    part_stats = collect_part_stats(fp32, network_inputs(calibration, fp32), plan, options.method)
    clock.lap("calibration pass")
    ranges = ranges_of(part_stats, plan, options.method, fp32.layers)
    clock.lap(f"{options.method} ranges")

    reference = fp32_reference(fp32, plan)
    simulator = Simulator(fp32, ranges, reference)
    forced = {i for i, layer in enumerate(fp32.layers) if layer.name in options.exclude}
    ranking = rank_layers(fp32, plan, ranges, simulator, forced)
    clock.lap("sensitivity")
    searched = [i for i in ranking.order if i not in forced]
    excluded = float_layers(searched, forced, simulator, options.max_drop)
    clock.lap("mixed precision")

    result = measure_qdq(fp32, plan, ranges, reference, searched, excluded, options.max_drop)
    write_qdq(result.model, fp32.model, output)
    names = fp32.class_names(reference.num_classes)
    evaluation = evaluate(result.predictions, reference, names, holdout_labels)
    clock.lap("Q/DQ model and evaluation")
    cache = None
    if calibration_cache is not None:
        cache = write_calibration_cache(calibration_cache, ranges, options.trt_version)
    return _report(output, options, fp32, plan, ranges, reference, ranking, result, evaluation, cache, clock)


def _checked_request(
    onnx_fp32: Path, calibration: CalibrationSet, output: Path, calibration_cache: Path | None, options: QuantizeOptions
) -> Fp32Model:
    """Every check that needs no calibration, before any is done; then the model, loaded and folded."""
    if not onnx_fp32.is_file():
        raise EdgekitError(f"ONNX model not found: {onnx_fp32}")
    check_outputs(output, calibration_cache)
    if len(calibration) == 0:
        raise EdgekitError("the calibration set is empty; give a folder with images or a YAML definition")
    if options.max_drop is not None and not 0 <= options.max_drop < 1:
        raise EdgekitError(f"--max-drop is a fraction of pixels in [0, 1), got {options.max_drop}")
    return load_fp32(onnx_fp32, options.exclude)


def _report(
    output: Path,
    options: QuantizeOptions,
    fp32: Fp32Model,
    plan: HoldoutPlan,
    ranges: Ranges,
    reference: Reference,
    ranking: Ranking,
    result: QdqResult,
    evaluation: Evaluation,
    cache: Path | None,
    clock: _Stopwatch,
) -> QuantizeReport:
    met_budget = options.max_drop is None or min(result.per_image) >= 1.0 - options.max_drop
    int8_names = int8_weight_layers(result.model)
    by_sensitivity = [ranking.sensitivity[i] for i in ranking.order]
    excluded_names = {fp32.layers[i].name for i in result.excluded}
    return QuantizeReport(
        output=output,
        method=options.method,
        calibration_images=ranges.images,
        holdout=plan.sources,
        holdout_scheme=plan.scheme,
        holdout_reason=plan.reason,
        pixel_agreement=min(result.per_image),
        pixel_agreement_per_image=result.per_image,
        pixel_agreement_all_pixels=reference.every_pixel(result.predictions),
        miou_vs_fp32=evaluation.miou_vs_fp32,
        class_iou_vs_fp32=evaluation.classes.iou,
        classes_below_iou_floor=evaluation.classes.below_floor,
        class_iou_floor=CLASS_IOU_FLOOR,
        int8_mac_share=sum(layer.macs for layer in fp32.layers if layer.name in int8_names) / fp32.total_macs,
        int8_layers=len(int8_names),
        conv_layers=len(fp32.layers),
        excluded=[s for s in by_sensitivity if s.name in excluded_names],
        sensitivity=by_sensitivity,
        max_drop=options.max_drop,
        met_budget=met_budget,
        folding=fp32.folding.to_dict(),
        calibration_cache=cache,
        trt_version=options.trt_version,
        seconds=clock.total,
        miou_labels_fp32=evaluation.miou_labels_fp32,
        miou_labels_int8=evaluation.miou_labels_int8,
        notes=_notes(options, reference, result, evaluation, cache),
        timings=clock.timings,
    )


def _notes(
    options: QuantizeOptions, reference: Reference, result: QdqResult, evaluation: Evaluation, cache: Path | None
) -> list[str]:
    """What the user should know about the result, in the order the phases found it."""
    notes = [reference.undecided_note] if reference.undecided_note else []
    if options.max_drop is not None and min(result.per_image) < 1.0 - options.max_drop:
        notes.append(f"agreement {min(result.per_image):.2%} stays below the budget even with every conv in float")
    classes = evaluation.classes
    if classes.below_floor:
        notes.append(
            f"classes whose IoU against FP32 is below {CLASS_IOU_FLOOR}: "
            + ", ".join(f"{name} {classes.iou[name]:.2f}" for name in classes.below_floor)
        )
    if cache is not None and options.method == "percentile":
        notes.append("percentile ranges written under the EntropyCalibration2 header (TensorRT has no percentile)")
    return notes


class _Stopwatch:
    """Seconds per phase, for the report's ``timings``."""

    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round(now - self.mark, 2)
        self.mark = now

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started
