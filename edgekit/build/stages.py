"""The build's stages in order, each timed, shown as an :func:`edgekit.board.events.task` and logged as one
"✓ [i/n] stage (seconds) summary" line; the records go into report.json."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from edgekit.board import events
from edgekit.board.backends.tensorrt_backend.releases import STRONGLY_TYPED_ONLY, parse_release
from edgekit.board.bundle import (
    CALIBRATION_CACHE_FILE,
    CHECKPOINT_FILE,
    ENGINE_FILE,
    ONNX_FILES,
    REPORT_JSON,
    REPORT_MD,
    BundleWriter,
)
from edgekit.board.outputs import medium_failures_as_errors
from edgekit.board.preprocess import Preprocessing
from edgekit.board.report import render_report
from edgekit.board.targets import PrecisionChoice, Target, choose_precision, load_target
from edgekit.build.engine import engine_or_handoff
from edgekit.build.heldout import end_in_classmap, evaluate_variants
from edgekit.build.inputs import Inputs, check_inputs
from edgekit.build.int8 import fp16_between_qdq, quantize_for_target, synthetic_calibration_warning
from edgekit.build.model import obtain_checkpoint
from edgekit.build.options import DEFAULT_MODEL, BuildOptions, BuildResult, StageRecord, default_output
from edgekit.build.record import build_report, bundle_manifest, relative_paths
from edgekit.checkpoint import Checkpoint
from edgekit.export import classmap_head_for, convert_fp16, export_onnx, export_opset

log = logging.getLogger(__name__)


@dataclass
class _Stages:
    """Times each stage; the one-line summaries it is given become the report's stage records."""

    total: int
    records: list[StageRecord] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, doing: str) -> Iterator[list[str]]:
        """Yields a list the stage appends its one-line summary to."""
        index = len(self.records) + 1
        summary: list[str] = []
        started = time.perf_counter()
        with events.task(f"[{index}/{self.total}] {name}: {doing}"):
            yield summary
        seconds = time.perf_counter() - started
        text = "; ".join(summary)
        self.records.append(StageRecord(name, round(seconds, 2), text))
        log.info("✓ [%d/%d] %s (%.1f s) %s", index, self.total, name, seconds, text)


def build(options: BuildOptions) -> BuildResult:
    """Run every stage and commit the bundle; raises EdgekitError (leaving no bundle) when a stage fails."""
    target = load_target(options.target)
    choice = choose_precision(target, options.precision, options.strict)
    if choice.substituted:
        log.warning("precision: %s", choice.reason)
    output = options.output or default_output(target, options.model or DEFAULT_MODEL)
    lost = "the build stopped and removed its staging folder: no bundle was written"
    with medium_failures_as_errors(output, lost), BundleWriter(output) as writer:
        return _build_into(writer, options, target, choice)


def _build_into(writer: BundleWriter, options: BuildOptions, target: Target, choice: PrecisionChoice) -> BuildResult:
    inputs = check_inputs(options, target, choice)
    opset, classmap_head = export_opset(target), classmap_head_for(target)
    stages = _Stages(total=8 if choice.chosen == "int8" else 7)
    metrics: dict[str, Any] = {}
    with stages.stage("model", "loading, importing or training the network") as note:
        checkpoint = obtain_checkpoint(options, inputs, metrics, note)
        checkpoint.save(writer.path(CHECKPOINT_FILE))
    preprocessing = checkpoint.preprocessing.with_size(*inputs.size)
    variants = _float_variants(stages, writer, checkpoint, target, inputs.size, opset, metrics)

    calibration_cache = None
    if choice.chosen == "int8":
        with stages.stage("int8", "calibration, Q/DQ ONNX, TensorRT calibration cache") as note:
            calibration_cache = _int8_variant(options, writer, preprocessing, target, inputs, checkpoint, metrics, note)
            variants["int8"] = ONNX_FILES["int8"]

    with stages.stage("accuracy", f"mIoU of every variant on {options.eval_scenes} held-out scenes") as note:
        metrics["accuracy"] = evaluate_variants(writer.staging, variants, preprocessing, options.eval_scenes)
        note.append(
            ", ".join(f"{p} {v['miou']:.3f}" for p, v in metrics["accuracy"]["variants"].items())
            + " mIoU (synthetic scenes)"
        )

    with stages.stage("classmap", "end every variant in the class-map head: an int32 class map out") as note:
        _end_in_classmap(writer, target, variants, preprocessing, classmap_head, metrics, note)

    runtime_onnx = variants["int8"] if target.backend == "onnxruntime" and "int8" in variants else variants["fp32"]
    manifest = bundle_manifest(
        checkpoint, target, choice, preprocessing, variants, runtime_onnx, calibration_cache, opset, classmap_head
    )
    manifest.metrics = metrics

    with stages.stage("compile", "TensorRT engine") as note:
        engine, compile_note = engine_or_handoff(options, target, writer.staging, writer.destination, manifest)
        manifest.engine = engine
        manifest.artifacts.engine = ENGINE_FILE if engine else None
        note.append(compile_note)

    with stages.stage("bundle", "report, manifest, sha256 of every file, atomic rename") as note:
        report = build_report(writer.staging, manifest, stages.records, compile_note, options.dla_core)
        writer.path(REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
        writer.path(REPORT_MD).write_text(render_report(report))
        bundle = writer.commit(manifest)
        note.append(str(bundle.root))
    return BuildResult(bundle, stages.records, engine is not None, compile_note)


def _float_variants(
    stages: _Stages,
    writer: BundleWriter,
    checkpoint: Checkpoint,
    target: Target,
    size: tuple[int, int],
    opset: int,
    metrics: dict[str, Any],
) -> dict[str, str]:
    """The export and fp16 stages: the verified FP32 ONNX, and the FP16 one where the target runs FP16."""
    with stages.stage("export", "PyTorch -> ONNX -> onnxsim -> onnxruntime verification") as note:
        exported = export_onnx(checkpoint, writer.path(ONNX_FILES["fp32"]), input_size=size, opset=opset)
        metrics["export"] = relative_paths(exported.to_dict(), writer.staging)
        note.append(
            f"opset {opset}, {exported.nodes_before_simplify}->{exported.nodes_after_simplify} nodes, "
            f"max |ORT-PyTorch| {exported.max_abs_diff:.2e}"
        )
    variants = {"fp32": ONNX_FILES["fp32"]}

    with stages.stage("fp16", "FP16 ONNX for FP16 targets and strongly typed TensorRT") as note:
        if "fp16" in target.precisions:
            fp16 = convert_fp16(writer.path(ONNX_FILES["fp32"]), writer.path(ONNX_FILES["fp16"]))
            metrics["fp16"] = relative_paths(fp16.to_dict(), writer.staging)
            variants["fp16"] = ONNX_FILES["fp16"]
            note.append(f"argmax agreement with FP32 {fp16.argmax_agreement:.2%}")
        else:
            note.append(f"skipped: {target.unsupported.get('fp16', 'not a precision of this target')}")
    return variants


def _int8_variant(
    options: BuildOptions,
    writer: BundleWriter,
    preprocessing: Preprocessing,
    target: Target,
    inputs: Inputs,
    checkpoint: Checkpoint,
    metrics: dict[str, Any],
    note: list[str],
) -> str | None:
    """The int8 stage's Q/DQ model and its metrics; returns the calibration cache's file name, if one was written."""
    quantized = quantize_for_target(options, writer, preprocessing, target, inputs)
    warning = synthetic_calibration_warning(checkpoint, options.calib, quantized)
    if warning:
        quantized["calibration_warning"] = warning
        log.warning("calibration: %s", warning)
    metrics["int8"] = relative_paths(quantized, writer.staging)
    note.append(
        f"{quantized['calibration_images']} calibration images ({quantized['method']}), "
        f"{quantized['int8_layers']}/{quantized['conv_layers']} convs in INT8, hold-out pixel agreement "
        f"with FP32 {quantized['pixel_agreement']:.2%}"
    )
    return CALIBRATION_CACHE_FILE if quantized["calibration_cache"] else None


def _end_in_classmap(
    writer: BundleWriter,
    target: Target,
    variants: dict[str, str],
    preprocessing: Preprocessing,
    classmap_head: str,
    metrics: dict[str, Any],
    note: list[str],
) -> None:
    """The classmap stage: the head on every variant, then FP16 between the Q/DQ pairs for strongly typed TensorRT."""
    metrics["classmap"] = end_in_classmap(writer.staging, variants, preprocessing, classmap_head)
    note.append(metrics["classmap"]["checked"])
    release = target.software.get("tensorrt")
    if "int8" in variants and release and parse_release(release) >= STRONGLY_TYPED_ONLY:
        typed = fp16_between_qdq(writer.path(variants["int8"]))
        metrics["int8"]["strongly_typed_fp16"] = typed
        note.append(f"INT8 model {'FP16' if typed['applied'] else 'kept FP32'} between its Q/DQ pairs")
