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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.board.outputs import check_output_file
from edgekit.calibration import CalibrationSet, synthetic_frames
from edgekit.errors import EdgekitError

DEFAULT_MAX_DROP = 0.03  # at least 97 % of pixels must agree with FP32 unless the user says otherwise
DEFAULT_TRT_VERSION = "8.6.2"  # JetPack 6.0; pass the target's version (the header is a compatibility key)
MEASURED_CANDIDATES = 8  # layers with the largest local error whose effect on the prediction is measured
HOLDOUT_SEEDS = 1000  # synthetic hold-out scenes start here, far from calibration seeds


@dataclass
class LayerSensitivity:
    name: str
    op_type: str
    mac_share: float
    local_error: float  # |y_int8 - y|^2 / |y|^2 of this layer's output, every other layer in float
    agreement_alone: float | None = None  # pixel agreement (first hold-out image) with only this layer in INT8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QuantizeReport:
    output: Path
    method: str
    calibration_images: int
    holdout: list[str]
    pixel_agreement: float  # worst hold-out image
    pixel_agreement_per_image: list[float]
    miou_vs_fp32: float
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


def _miou(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray], num_classes: int) -> float:
    """mIoU of ``predictions`` against ``references`` (labels or FP32 class maps; 255 = ignore), over all images."""
    from edgekit.board.metrics import confusion_matrix, mean_iou

    confusion = sum(
        confusion_matrix(p.reshape(r.shape), np.where(r < num_classes, r, 255), num_classes)
        for p, r in zip(predictions, references, strict=True)
    )
    return mean_iou(np.asarray(confusion))


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit.cli.common import console

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _input_info(model: Any) -> tuple[str, str]:
    import onnx

    initializers = {i.name for i in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    dtype = "uint8" if graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8 else "float32"
    return graph_input.name, dtype


def quantize_int8(
    onnx_fp32: Path,
    calibration: CalibrationSet,
    output: Path,
    *,
    method: str = "percentile",  # measured best for ESPNet and ESPNetv2 (README, "Export and INT8")
    max_drop: float | None = DEFAULT_MAX_DROP,
    holdout: Sequence[np.ndarray] | None = None,
    calibration_cache: Path | None = None,
    holdout_labels: Sequence[np.ndarray] | None = None,
    holdout_names: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    trt_version: str = DEFAULT_TRT_VERSION,
    show_progress: bool = True,
) -> QuantizeReport:
    """Calibrate, fold, measure per-layer sensitivity, choose float layers, write the Q/DQ model and cache.

    ``holdout``: network inputs (1x3xHxW, the model's input dtype) never used for calibration; default: the
    calibration set's own hold-out, else synthetic scenes. ``max_drop``: largest allowed share of hold-out pixels
    whose class differs from FP32 (None: quantize every conv, report only).
    """
    import onnx

    from edgekit.board.backends.tensorrt_backend.cache import write_cache
    from edgekit.export import load_onnx, ort_session
    from edgekit.quant.fold import fold_batchnorm
    from edgekit.quant.qdq import (
        activation_tensors,
        build_qdq,
        conv_layers,
        ensure_node_names,
        expose_tensors,
        int8_weight_layers,
        mask_model,
        probe_model,
    )
    from edgekit.quant.ranges import collect_stats

    started = time.perf_counter()
    onnx_fp32 = Path(onnx_fp32)
    if not onnx_fp32.is_file():
        raise EdgekitError(f"ONNX model not found: {onnx_fp32}")
    output = Path(output)
    check_outputs(output, calibration_cache)
    if len(calibration) == 0:
        raise EdgekitError("the calibration set is empty; give a folder with images or a YAML definition")
    if max_drop is not None and not 0 <= max_drop < 1:
        raise EdgekitError(f"--max-drop is a fraction of pixels in [0, 1), got {max_drop}")
    model = load_onnx(onnx_fp32)
    ensure_node_names(model)
    input_name, input_dtype = _input_info(model)
    if model.graph.output[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise EdgekitError(
            f"{onnx_fp32} does not output float logits (ArgMax?); quantize the model exported without --argmax"
        )
    layers = conv_layers(model)
    unknown = set(exclude) - {layer.name for layer in layers}
    if unknown:
        raise EdgekitError(f"--exclude names no conv layer: {', '.join(sorted(unknown))}")
    total_macs = sum(layer.macs for layer in layers) or 1
    folded, fold_report = fold_batchnorm(model)
    notes: list[str] = []
    timings: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[stage] = round(now - mark, 2)
        mark = now

    # 1. Activation ranges of every tensor of the FP32 graph (the TensorRT cache needs them all; Q/DQ uses
    # the conv inputs, whose names and values BatchNorm folding leaves unchanged).
    tensors = activation_tensors(model)
    stats_session = ort_session(expose_tensors(model, tensors).SerializeToString())
    inputs = list(calibration.inputs(input_dtype))
    for x in inputs:
        if x.shape[-2:] != tuple(_static_hw(model)):
            raise EdgekitError(
                f"calibration inputs are {x.shape[-1]}x{x.shape[-2]} but {onnx_fp32} takes "
                f"{_static_hw(model)[1]}x{_static_hw(model)[0]}; use the model's preprocessing size"
            )
    with _progress() if show_progress else _NoProgress() as progress:
        task = progress.add_task(f"calibrating ({method})", total=len(inputs))
        stats = collect_stats(stats_session, input_name, tensors, _advance(inputs, progress, task))
    del stats_session
    lap("calibration pass")
    amax = stats.amax(method)
    lap(f"{method} ranges")
    missing = [layer.name for layer in layers if layer.input not in amax]
    if missing:
        raise EdgekitError(f"no calibration statistics for the inputs of {', '.join(missing[:3])}")

    # 2. Hold-out inputs and FP32 references.
    holdout_inputs, holdout_sources = _holdout(calibration, holdout, holdout_names, input_dtype)
    reference_session = ort_session(folded.SerializeToString())
    references = [reference_session.run(None, {input_name: x})[0] for x in holdout_inputs]
    reference_maps = [r.argmax(1) for r in references]

    # 3. Per-layer sensitivity and mixed precision, on one simulation graph (see qdq.mask_model).
    simulator = ort_session(mask_model(folded, layers, amax).SerializeToString())

    def agreement(enabled: set[int], first_only: bool = False) -> float:
        feed_masks = {f"qmask_{i}": np.array(1.0 if i in enabled else 0.0, np.float32) for i in range(len(layers))}
        pairs = list(zip(holdout_inputs, reference_maps, strict=True))[: 1 if first_only else None]
        values = [
            float((simulator.run(None, {input_name: x, **feed_masks})[0].argmax(1) == ref).mean()) for x, ref in pairs
        ]
        return min(values)

    forced = {i for i, layer in enumerate(layers) if layer.name in exclude}
    probe, probe_outputs = probe_model(folded, layers, amax)
    probe_session = ort_session(probe.SerializeToString())
    noise = np.zeros(len(layers))
    signal = np.zeros(len(layers))
    for x in holdout_inputs:
        values = probe_session.run(probe_outputs, {input_name: x})
        noise += np.array(values[0::2], np.float64)
        signal += np.array(values[1::2], np.float64)
    del probe_session
    local_error = noise / np.maximum(signal, 1e-20)
    sensitivity = [
        LayerSensitivity(layer.name, layer.op_type, layer.macs / total_macs, float(local_error[i]))
        for i, layer in enumerate(layers)
    ]
    by_error = sorted(range(len(layers)), key=lambda i: -local_error[i])
    candidates = [i for i in by_error if i not in forced][:MEASURED_CANDIDATES]
    with _progress() if show_progress else _NoProgress() as progress:
        task = progress.add_task("per-layer sensitivity", total=len(candidates))
        for index in candidates:
            sensitivity[index].agreement_alone = agreement({index}, first_only=True)
            progress.advance(task)
    lap("sensitivity")
    order = sorted(candidates, key=lambda i: sensitivity[i].agreement_alone or 0.0)
    order += [i for i in by_error if i not in candidates]
    candidates_in_order = [i for i in order if i not in forced]
    excluded = set(forced)
    if max_drop is not None:
        excluded |= set(candidates_in_order[: _smallest_prefix(candidates_in_order, agreement, max_drop)])

    lap("mixed precision")
    # 4. The real Q/DQ model, measured as onnxruntime runs it. The simulation matches it to a few pixels in
    # 10^4; should the real model still miss the budget, the next layers in the order go back to float too.
    remaining = [i for i in candidates_in_order if i not in excluded]
    while True:
        excluded_names = {layers[i].name for i in excluded}
        qdq = build_qdq(folded, {layer.input: amax[layer.input] for layer in layers}, excluded_names)
        session = ort_session(qdq.SerializeToString())
        predictions = [session.run(None, {input_name: x})[0].argmax(1) for x in holdout_inputs]
        per_image = [float((p == r).mean()) for p, r in zip(predictions, reference_maps, strict=True)]
        if max_drop is None or min(per_image) >= 1.0 - max_drop or not remaining:
            break
        excluded.add(remaining.pop(0))
    if max_drop is not None and min(per_image) < 1.0 - max_drop:
        notes.append(f"agreement {min(per_image):.2%} stays below the budget even with every conv in float")
    del qdq.metadata_props[:]
    qdq.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(qdq)
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(qdq, str(output))
    int8_names = int8_weight_layers(qdq)
    int8_macs = sum(layer.macs for layer in layers if layer.name in int8_names)
    num_classes = int(references[0].shape[1])
    miou = _miou(predictions, reference_maps, num_classes)
    miou_fp32_labels = miou_int8_labels = None
    if holdout_labels is not None:
        if len(holdout_labels) != len(holdout_inputs):
            raise EdgekitError(f"{len(holdout_labels)} label maps for {len(holdout_inputs)} hold-out images")
        miou_fp32_labels = _miou(reference_maps, holdout_labels, num_classes)
        miou_int8_labels = _miou(predictions, holdout_labels, num_classes)

    lap("Q/DQ model and evaluation")
    cache_path = None
    if calibration_cache is not None:
        algorithm = "MinMaxCalibration" if method == "minmax" else "EntropyCalibration2"
        cache_path = write_cache(Path(calibration_cache), amax, trt_version, algorithm)
        if method == "percentile":
            notes.append("percentile ranges written under the EntropyCalibration2 header (TensorRT has no percentile)")

    by_sensitivity = [sensitivity[i] for i in order]
    return QuantizeReport(
        output=output,
        method=method,
        calibration_images=stats.images,
        holdout=list(holdout_sources),
        pixel_agreement=min(per_image),
        pixel_agreement_per_image=per_image,
        miou_vs_fp32=miou,
        int8_mac_share=int8_macs / total_macs,
        int8_layers=len(int8_names),
        conv_layers=len(layers),
        excluded=[s for s in by_sensitivity if s.name in excluded_names],
        sensitivity=by_sensitivity,
        max_drop=max_drop,
        met_budget=max_drop is None or min(per_image) >= 1.0 - max_drop,
        folding=fold_report.to_dict(),
        calibration_cache=cache_path,
        trt_version=trt_version,
        seconds=time.perf_counter() - started,
        miou_labels_fp32=miou_fp32_labels,
        miou_labels_int8=miou_int8_labels,
        notes=notes,
        timings=timings,
    )


def _smallest_prefix(order: list[int], agreement: Callable[[set[int]], float], max_drop: float) -> int:
    """How many layers of ``order`` must go back to float: galloping then bisection over the prefix length.

    Agreement is close to monotonic in the number of float layers taken in sensitivity order, so about
    2 log2(n) simulated evaluations replace one per excluded layer.
    """
    quantizable = set(order)  # every layer that is not forced to float

    def passes(count: int) -> bool:
        return agreement(quantizable - set(order[:count])) >= 1.0 - max_drop

    if passes(0):
        return 0
    low, high = 0, 1  # passes(low) is False
    while high < len(order) and not passes(high):
        low, high = high, min(2 * high, len(order))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if passes(middle) else (middle, high)
    return high


def _static_hw(model: Any) -> tuple[int, int]:
    initializers = {i.name for i in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    dims = graph_input.type.tensor_type.shape.dim
    return int(dims[2].dim_value), int(dims[3].dim_value)


def _holdout(
    calibration: CalibrationSet,
    holdout: Sequence[np.ndarray] | None,
    names: Sequence[str] | None,
    input_dtype: str,
) -> tuple[list[np.ndarray], list[str]]:
    if holdout is not None:
        if len(holdout) == 0:
            raise EdgekitError("the hold-out set is empty")
        return list(holdout), list(names) if names else [f"hold-out image {i}" for i in range(len(holdout))]
    if calibration.holdout is not None and len(calibration.holdout):
        return list(calibration.holdout.inputs(input_dtype)), calibration.holdout.sources
    pp = calibration.preprocessing
    frames = synthetic_frames(2, pp.input_size, HOLDOUT_SEEDS)
    inputs = [pp.to_uint8_chw(f) if input_dtype == "uint8" else pp(f) for f in frames]
    return inputs, [f"synthetic scene seed {HOLDOUT_SEEDS + i}" for i in range(2)]


def _advance(items: list[np.ndarray], progress: Any, task: Any) -> Any:
    for item in items:
        yield item
        progress.advance(task)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        return None


def check_outputs(output: Path, calibration_cache: Path | None) -> None:
    """The Q/DQ model and cache paths: writable, and replacing only edgekit's own files (before calibrating)."""
    from edgekit.export import is_edgekit_onnx

    check_output_file(output, "Q/DQ ONNX output", is_edgekit_onnx, "an ONNX model written by edgekit")
    if calibration_cache is not None:
        check_output_file(calibration_cache, "calibration cache", _is_calibration_cache, "a TensorRT calibration cache")


def _is_calibration_cache(path: Path) -> bool:
    """TensorRT calibration caches start with their header line ``TRT-<version>-<algorithm>``."""
    with path.open("rb") as handle:
        return handle.read(4) == b"TRT-"
