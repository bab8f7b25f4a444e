"""``edgekit build``: from a checkpoint (or official weights, or nothing) to a deployable bundle for one target.

Stages: choose the precision the target runs -> get a model (load a checkpoint, import official weights, or
train briefly on synthetic street scenes) -> export + simplify + verify the FP32 ONNX -> FP16 ONNX -> INT8
(calibration, Q/DQ ONNX and TensorRT calibration cache) -> accuracy of every variant on labelled held-out scenes
-> a class-map head appended to every variant (the device outputs a class map) -> TensorRT engine where TensorRT
and a GPU of the target's architecture are present -> manifest and report.
Everything is staged by :class:`~edgekit.board.bundle.BundleWriter`, so a failed or interrupted build leaves no
bundle that looks valid. Each stage is delegated to the module that owns it (train, export, calibration,
quantize, board.backends.tensorrt.builder); this module only orchestrates and records.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from rich.console import Console

from edgekit.board.backends.tensorrt_backend.releases import STRONGLY_TYPED_ONLY, parse_release
from edgekit.board.bundle import (
    CALIBRATION_CACHE_FILE,
    CHECKPOINT_FILE,
    ENGINE_FILE,
    ONNX_FILES,
    REPORT_JSON,
    REPORT_MD,
    Artifacts,
    Bundle,
    BundleWriter,
    InputSpec,
    Manifest,
    ModelInfo,
    OutputSpec,
)
from edgekit.board.compile import Readiness, board_command, compile_engine, compile_readiness
from edgekit.board.outputs import medium_failures_as_errors
from edgekit.board.report import render_report
from edgekit.board.targets import PrecisionChoice, Target, choose_precision, load_target
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    from edgekit.board.preprocess import Preprocessing
    from edgekit.checkpoint import Checkpoint
    from edgekit.quant import CalibrationSet

DEFAULT_MODEL = "espnet"
DEFAULT_CALIBRATION = "default"
EVAL_FIRST_SEED = 50_000  # synthetic scenes from here on are never used for training or calibration
# README, "Export and INT8": `edgekit quantize` with defaults only (cross-validated hold-out of the photos)
REAL_CALIBRATION_MEASURED = (
    "official ESPNet at 1024x512 calibrated on 13 street photos: 93.2 % of conv MACs in INT8, 97.36 % / 99.07 % "
    "agreement with FP32 on two Cityscapes frames"
)


@dataclass
class BuildOptions:
    """Everything ``edgekit build`` accepts; the defaults make a meaningful bundle from nothing in minutes."""

    target: str | Path
    model: str | None = None
    checkpoint: Path | None = None
    weights: Path | None = None  # official .pth, imported with edgekit.weights
    data: Path | None = None  # Cityscapes-layout folder to train on (None: synthetic scenes)
    calib: str | Path | None = None  # calibration folder / YAML / name under calibration/
    precision: str | None = None
    strict: bool = False
    output: Path | None = None
    input_size: tuple[int, int] | None = None  # overrides the target's
    train_seconds: float = 300.0
    train_epochs: int = 1000  # the time budget ends training first unless a tiny set is used
    # The recipe measured for `edgekit train` on this class of machine (README, "Quality bar"): many small steps
    # beat few large ones on a CPU, so half-size crops, batch 2, a higher learning rate, one torch thread.
    train_batch_size: int = 2
    train_lr: float = 3e-3
    train_class_weighting: Literal["espnet", "none"] = "espnet"
    train_size: tuple[int, int] | None = None  # training crop (default: half the input size in each dimension)
    train_val_scenes: int = 30  # synthetic validation scenes per epoch (picks the best checkpoint)
    calib_count: int | None = None
    eval_scenes: int = 8
    dla_core: int | None = None
    compile: bool = True  # build the engine when TensorRT and a matching GPU are present
    seed: int = 0


@dataclass
class StageRecord:
    name: str
    seconds: float
    summary: str


@dataclass
class BuildResult:
    bundle: Bundle
    stages: list[StageRecord]
    engine_built: bool
    compile_note: str  # why there is or is not an engine, and what to run on the board

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


@dataclass
class _Progress:
    """Per-stage spinner and timing line; the records go into the report."""

    console: Console
    total: int
    records: list[StageRecord] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, doing: str, live: bool = True) -> Iterator[list[str]]:
        """Yields a list the stage appends its one-line summary to; ``live=False`` for stages with own progress."""
        index = len(self.records) + 1
        summary: list[str] = []
        started = time.perf_counter()
        if live:
            with self.console.status(f"[{index}/{self.total}] {name}: {doing}"):
                yield summary
        else:
            self.console.print(f"[{index}/{self.total}] {name}: {doing}")
            yield summary
        seconds = time.perf_counter() - started
        text = "; ".join(summary)
        self.records.append(StageRecord(name, round(seconds, 2), text))
        self.console.print(f"[green]✓[/green] [{index}/{self.total}] {name} ({seconds:.1f} s) {text}")


def default_output(target: Target, model: str) -> Path:
    return Path("runs") / "bundles" / f"{model}-{target.name}"


@dataclass
class _Inputs:
    """Every input of a build, checked before the first stage: a bad --calib fails at once, not after training."""

    model_name: str
    size: tuple[int, int]
    train_crop: tuple[int, int]
    checkpoint: Checkpoint | None  # loaded from --checkpoint
    calibration: CalibrationSet | None  # loaded when the build quantizes


def _check_inputs(options: BuildOptions, target: Target, choice: PrecisionChoice, console: Console) -> _Inputs:
    from edgekit.checkpoint import Checkpoint
    from edgekit.models import get_spec
    from edgekit.quant import load_calibration

    if options.checkpoint and options.weights:
        raise EdgekitError("give either --checkpoint or --weights, not both")
    checkpoint = Checkpoint.load(options.checkpoint) if options.checkpoint else None
    if checkpoint is not None and options.model and options.model != checkpoint.model_name:
        raise EdgekitError(f"--model {options.model} but {options.checkpoint} holds {checkpoint.model_name}")
    model_name = checkpoint.model_name if checkpoint is not None else options.model or DEFAULT_MODEL
    spec = get_spec(model_name)
    size = options.input_size or target.input_size
    spec.check_input_size(size, "--input-size" if options.input_size else f"{target.name}'s input size")
    width, height = size
    crop = options.train_size or (max(32, width // 64 * 32), max(32, height // 64 * 32))
    if options.weights is not None and not options.weights.is_file():
        raise EdgekitError(f"--weights {options.weights} not found")
    if checkpoint is None and options.weights is None:  # the build trains
        spec.check_input_size(crop, "--train-size")
        if options.data is not None and not options.data.is_dir():
            raise EdgekitError(f"--data {options.data} is not a folder")
        if options.train_seconds <= 0:
            raise EdgekitError(f"--train-seconds must be positive, got {options.train_seconds:g}")
    if options.eval_scenes < 1:
        raise EdgekitError(f"--eval-scenes must be at least 1, got {options.eval_scenes}")
    if options.dla_core is not None and not 0 <= options.dla_core < target.dla_cores:
        raise EdgekitError(f"--dla-core {options.dla_core}: {target.name} has {target.dla_cores} DLA cores")
    calibration = None
    if choice.chosen == "int8":
        base = checkpoint.preprocessing if checkpoint is not None else spec.default_preprocessing
        spec_name = options.calib or DEFAULT_CALIBRATION
        calibration = load_calibration(spec_name, base.with_size(*size), count=options.calib_count)
        for message in calibration.notes:
            console.print(f"[yellow]calibration:[/yellow] {message}")
    elif options.calib or options.calib_count:
        console.print(f"[yellow]note:[/yellow] --calib is not used: the bundle is {choice.chosen}, not int8")
    return _Inputs(model_name, size, crop, checkpoint, calibration)


def build(options: BuildOptions, console: Console | None = None) -> BuildResult:
    """Run every stage and commit the bundle; raises EdgekitError (leaving no bundle) when a stage fails."""
    console = console or Console(stderr=True)
    target = load_target(options.target)
    choice = choose_precision(target, options.precision, options.strict)
    if choice.substituted:
        console.print(f"[yellow]precision:[/yellow] {choice.reason}")
    output = options.output or default_output(target, options.model or DEFAULT_MODEL)
    lost = "the build stopped and removed its staging folder: no bundle was written"
    with medium_failures_as_errors(output, lost), BundleWriter(output) as writer:
        return _build_into(writer, options, target, choice, console)


def _build_into(
    writer: BundleWriter, options: BuildOptions, target: Target, choice: PrecisionChoice, console: Console
) -> BuildResult:
    from edgekit.export import classmap_head_for, export_opset

    inputs = _check_inputs(options, target, choice, console)
    opset, classmap_head = export_opset(target), classmap_head_for(target)
    size = inputs.size
    progress = _Progress(console, total=8 if choice.chosen == "int8" else 7)
    output = writer.destination
    metrics: dict[str, Any] = {}
    with progress.stage("model", "loading, importing or training the network", live=False) as note:
        checkpoint = _obtain_checkpoint(options, inputs, metrics, note)
        checkpoint.save(writer.path(CHECKPOINT_FILE))
    preprocessing = checkpoint.preprocessing.with_size(*size)

    with progress.stage("export", "PyTorch -> ONNX -> onnxsim -> onnxruntime verification") as note:
        from edgekit.export import export_onnx

        exported = export_onnx(checkpoint, writer.path(ONNX_FILES["fp32"]), input_size=size, opset=opset)
        metrics["export"] = _relative(exported.to_dict(), writer.staging)
        note.append(
            f"opset {opset}, {exported.nodes_before_simplify}->{exported.nodes_after_simplify} nodes, "
            f"max |ORT-PyTorch| {exported.max_abs_diff:.2e}"
        )
    variants = {"fp32": ONNX_FILES["fp32"]}

    with progress.stage("fp16", "FP16 ONNX for FP16 targets and strongly typed TensorRT") as note:
        if "fp16" in target.precisions:
            from edgekit.export import convert_fp16

            fp16 = convert_fp16(writer.path(ONNX_FILES["fp32"]), writer.path(ONNX_FILES["fp16"]))
            metrics["fp16"] = _relative(fp16.to_dict(), writer.staging)
            variants["fp16"] = ONNX_FILES["fp16"]
            note.append(f"argmax agreement with FP32 {fp16.argmax_agreement:.2%}")
        else:
            note.append(f"skipped: {target.unsupported.get('fp16', 'not a precision of this target')}")

    calibration_cache = None
    if choice.chosen == "int8":
        with progress.stage("int8", "calibration, Q/DQ ONNX, TensorRT calibration cache", live=False) as note:
            quantized = _quantize(options, writer, preprocessing, target, inputs)
            warning = synthetic_calibration_warning(checkpoint, options.calib, quantized)
            if warning:
                quantized["calibration_warning"] = warning
                console.print(f"[yellow]calibration:[/yellow] {warning}")
            metrics["int8"] = _relative(quantized, writer.staging)
            variants["int8"] = ONNX_FILES["int8"]
            calibration_cache = CALIBRATION_CACHE_FILE if quantized["calibration_cache"] else None
            note.append(
                f"{quantized['calibration_images']} calibration images ({quantized['method']}), "
                f"{quantized['int8_layers']}/{quantized['conv_layers']} convs in INT8, hold-out pixel agreement "
                f"with FP32 {quantized['pixel_agreement']:.2%}"
            )

    with progress.stage("accuracy", f"mIoU of every variant on {options.eval_scenes} held-out scenes") as note:
        metrics["accuracy"] = evaluate_variants(writer.staging, variants, preprocessing, options.eval_scenes)
        note.append(
            ", ".join(f"{p} {v['miou']:.3f}" for p, v in metrics["accuracy"]["variants"].items())
            + " mIoU (synthetic scenes)"
        )

    with progress.stage("classmap", "end every variant in the class-map head: an int32 class map out") as note:
        metrics["classmap"] = end_in_classmap(writer.staging, variants, preprocessing, classmap_head)
        note.append(metrics["classmap"]["checked"])
        release = target.software.get("tensorrt")
        if "int8" in variants and release and parse_release(release) >= STRONGLY_TYPED_ONLY:
            typed = _fp16_between_qdq(writer.path(variants["int8"]))
            metrics["int8"]["strongly_typed_fp16"] = typed
            note.append(f"INT8 model {'FP16' if typed['applied'] else 'kept FP32'} between its Q/DQ pairs")

    runtime_onnx = variants["int8"] if target.backend == "onnxruntime" and "int8" in variants else variants["fp32"]
    manifest = _manifest(
        checkpoint, target, choice, preprocessing, variants, runtime_onnx, calibration_cache, opset, classmap_head
    )
    manifest.metrics = metrics

    with progress.stage("compile", "TensorRT engine") as note:
        engine, compile_note = _maybe_compile(options, target, writer.staging, output, manifest, console)
        manifest.engine = engine
        manifest.artifacts.engine = ENGINE_FILE if engine else None
        note.append(compile_note)

    with progress.stage("bundle", "report, manifest, sha256 of every file, atomic rename") as note:
        report = _report(writer.staging, manifest, progress.records, compile_note, options.dla_core)
        writer.path(REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
        writer.path(REPORT_MD).write_text(render_report(report))
        bundle = writer.commit(manifest)
        note.append(str(bundle.root))
    return BuildResult(bundle, progress.records, engine is not None, compile_note)


def _obtain_checkpoint(options: BuildOptions, inputs: _Inputs, metrics: dict[str, Any], note: list[str]) -> Checkpoint:
    if inputs.checkpoint is not None:
        note.append(f"loaded {options.checkpoint} ({inputs.model_name})")
        metrics["model_source"] = {"checkpoint": str(options.checkpoint)}
        return inputs.checkpoint
    if options.weights:
        from edgekit.weights import import_official

        checkpoint = import_official(inputs.model_name, options.weights, input_size=inputs.size)
        note.append(f"imported official {options.weights.name} as {inputs.model_name}")
        metrics["model_source"] = {"official": dict(checkpoint.meta)}
        return checkpoint
    return _train(options, inputs.model_name, inputs.size, inputs.train_crop, metrics, note)


def _train(
    options: BuildOptions,
    model_name: str,
    size: tuple[int, int],
    crop: tuple[int, int],
    metrics: dict[str, Any],
    note: list[str],
) -> Checkpoint:
    """A short training run (synthetic scenes unless --data) so that a fresh machine gets a meaningful model."""
    from edgekit.checkpoint import Checkpoint
    from edgekit.train import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="edgekit-build-train-") as work:
        config = TrainConfig(
            model=model_name,
            data=options.data,
            out_dir=Path(work),
            input_size=size,
            crop_size=crop,
            epochs=options.train_epochs,
            time_budget_s=options.train_seconds,
            batch_size=options.train_batch_size,
            lr=options.train_lr,
            class_weighting=options.train_class_weighting,
            seed=options.seed,
            synthetic_train=800,
            synthetic_val=options.train_val_scenes,
            num_workers=1,
            threads=1,
        )
        result = train(config)
        checkpoint = Checkpoint.load(result.best)
    data = str(options.data) if options.data else "synthetic street scenes"
    metrics["model_source"] = {
        "trained_on": data,
        "seconds_budget": options.train_seconds,
        "input_size": list(size),
        "train_crop": list(crop),
        "recipe": {
            "batch_size": options.train_batch_size,
            "lr": options.train_lr,
            "class_weighting": options.train_class_weighting,
        },
        "best_val_miou": result.best_miou,
        "epochs_run": len(result.history),
    }
    note.append(f"trained {model_name} on {data} for <= {options.train_seconds:g} s, val mIoU {result.best_miou:.3f}")
    return checkpoint


def _quantize(
    options: BuildOptions, writer: BundleWriter, preprocessing: Preprocessing, target: Target, inputs: _Inputs
) -> dict[str, Any]:
    """Q/DQ ONNX, plus the TensorRT calibration cache (header = the target's release) for TensorRT targets."""
    from edgekit.quant import DEFAULT_TRT_VERSION, QuantizeOptions, load_calibration, quantize_int8

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


def _fp16_between_qdq(qdq: Path) -> dict[str, Any]:
    """Strongly typed TensorRT (11.x) runs the layers kept in float at the ONNX's type: make those FP16 in place,
    or keep the FP32 Q/DQ model where FP16 changes the class map, saying so (report.json metrics.int8). Done on
    the finished model (class-map head included, compared class map for class map); the accuracy stage measured
    the FP32 Q/DQ model before it."""
    from edgekit.quant import FP16_QDQ_OPSET, qdq_to_fp16

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


def evaluate_variants(
    root: Path, variants: dict[str, str], preprocessing: Preprocessing, scenes: int
) -> dict[str, Any]:
    """mIoU against the labels of held-out synthetic scenes and pixel agreement with FP32, per ONNX variant."""
    from edgekit.board.metrics import confusion_matrix, mean_iou
    from edgekit.board.synthetic import generate_scene
    from edgekit.export import ort_session, read_metadata

    frames = [generate_scene(EVAL_FIRST_SEED + i, preprocessing.input_size) for i in range(scenes)]
    num_classes = len(read_metadata(root / variants["fp32"]).classes)
    predictions: dict[str, list[np.ndarray]] = {}
    results: dict[str, dict[str, float]] = {}
    for precision, file in variants.items():
        session = ort_session(root / file)
        input_name = session.get_inputs()[0].name
        confusion = np.zeros((num_classes, num_classes), np.int64)
        predictions[precision] = []
        for image, label in frames:
            (logits,) = session.run(None, {input_name: preprocessing(image)})
            predicted = logits.argmax(1)[0].astype(np.uint8)
            predictions[precision].append(predicted)
            confusion += confusion_matrix(predicted, np.where(label < num_classes, label, 255), num_classes)
        agreement = np.mean([(a == b).mean() for a, b in zip(predictions[precision], predictions["fp32"], strict=True)])
        results[precision] = {"miou": round(mean_iou(confusion), 4), "agreement_with_fp32": round(float(agreement), 4)}
    return {
        "data": f"{scenes} synthetic street scenes (seeds {EVAL_FIRST_SEED}+, never trained or calibrated on)",
        "runtime": "onnxruntime CPU",
        "variants": results,
    }


def end_in_classmap(
    root: Path, variants: dict[str, str], preprocessing: Preprocessing, formulation: str
) -> dict[str, Any]:
    """Append the class-map head to every variant in place (after the accuracy stage, which reads logits),
    checking on a held-out scene that each class map is exactly the argmax of the logits it replaces."""
    from edgekit.board.synthetic import generate_scene
    from edgekit.export import append_classmap_head, ort_session

    image, _ = generate_scene(EVAL_FIRST_SEED, preprocessing.input_size)
    feed = preprocessing(image)
    for precision, file in variants.items():
        session = ort_session(root / file)
        (logits,) = session.run(None, {session.get_inputs()[0].name: feed})
        append_classmap_head(root / file, formulation)
        session = ort_session(root / file)
        (classmap,) = session.run(None, {session.get_inputs()[0].name: feed})
        if not np.array_equal(classmap, logits.argmax(1)):
            raise EdgekitError(f"the class-map head of {file} differs from the argmax of its logits ({precision})")
    return {
        "output": f"NxHxW int32 class map ({formulation} over the classes, then Cast)",
        "checked": f"{len(variants)} variants give exactly the argmax of their logits on a held-out scene",
    }


def _manifest(
    checkpoint: Checkpoint,
    target: Target,
    choice: PrecisionChoice,
    preprocessing: Preprocessing,
    variants: dict[str, str],
    runtime_onnx: str,
    calibration_cache: str | None,
    opset: int,
    classmap_head: str,
) -> Manifest:
    from edgekit.board.bundle import CLASSMAP_NAME, INPUT_NAME
    from edgekit.export import CLASSMAP_HEADS
    from edgekit.models.complexity import measure

    stats = measure(checkpoint.build(), preprocessing.input_size)
    width, height = preprocessing.input_size
    return Manifest(
        model=ModelInfo(checkpoint.model_name, checkpoint.model_kwargs, stats.params, stats.macs),
        classes=checkpoint.classes,
        preprocessing=preprocessing,
        input=InputSpec(INPUT_NAME, [1, 3, height, width], "float32", normalized_in_graph=False),
        output=OutputSpec(CLASSMAP_NAME, "classmap", "int32"),
        target=target.name,
        target_profile=target.to_dict(),
        precision=choice.chosen,
        precision_choice={"requested": choice.requested, "chosen": choice.chosen, "reason": choice.reason},
        artifacts=Artifacts(
            onnx=dict(variants),
            runtime_onnx=runtime_onnx,
            calibration_cache=calibration_cache,
            checkpoint=CHECKPOINT_FILE,
        ),
        onnx={"opset": opset, "why": _opset_reason(target, opset)},
        classmap_head={"formulation": classmap_head, "why": CLASSMAP_HEADS[classmap_head]},
        built_with={"host": platform.node(), "platform": platform.platform(), "python": platform.python_version()},
    )


def _opset_reason(target: Target, opset: int) -> str:
    support = target.onnx_support
    if support is None:
        return f"{target.name} runs onnxruntime, which takes opset {opset}"
    return (
        f"{target.name} has TensorRT {target.software['tensorrt']}, whose ONNX parser takes opset <= "
        f"{support.max_opset} (onnx-tensorrt {support.operators}); opset {opset} is the highest edgekit exports there"
    )


def _maybe_compile(
    options: BuildOptions, target: Target, root: Path, output: Path, manifest: Manifest, console: Console
) -> tuple[dict[str, Any] | None, str]:
    readiness = compile_readiness(target) if options.compile else Readiness(False, "no engine built: --no-compile")
    why = readiness.why
    if not readiness.ready:
        if target.backend != "tensorrt":
            return None, why
        return None, (
            f"{why}. The bundle is complete for building on the {target.name}: copy {output.name}/ there and run "
            f"`{board_command(output)}` (needs only edgekit's base install and TensorRT "
            f"{target.software.get('tensorrt')})"
        )
    engine = compile_engine(root, manifest, dla_core=options.dla_core)
    return engine, f"built {ENGINE_FILE} with TensorRT {engine['tensorrt_version']} on {engine['gpu']}"


def _relative(report: dict[str, Any], root: Path) -> dict[str, Any]:
    """Report paths relative to the bundle (staging paths mean nothing after the rename)."""
    return {
        key: (str(Path(value).relative_to(root)) if isinstance(value, str) and value.startswith(str(root)) else value)
        for key, value in report.items()
    }


def _report(
    root: Path, manifest: Manifest, stages: list[StageRecord], compile_note: str, dla_core: int | None
) -> dict[str, Any]:
    """report.json; ``trtexec`` is the line that builds the same engine without Python on the target's release."""
    from edgekit.board.compile import target_compute_capability, trtexec_for

    release = manifest.target_profile.get("software", {}).get("tensorrt")
    if manifest.engine:  # built here: the installed release's command
        trtexec = manifest.engine["trtexec"]
    elif release and manifest.target_profile.get("backend") == "tensorrt":
        trtexec = trtexec_for(root, manifest, parse_release(release), dla_core, target_compute_capability(manifest))
    else:
        trtexec = None
    return {
        "model": manifest.model.to_json(),
        "target": manifest.target,
        "precision": manifest.precision_choice,
        "input_size": list(manifest.preprocessing.input_size),
        "artifacts": manifest.artifacts.to_json(),
        "metrics": manifest.metrics,
        "engine": manifest.engine,
        "compile": compile_note,
        "trtexec": trtexec,
        "stages": [{"name": s.name, "seconds": s.seconds, "summary": s.summary} for s in stages],
    }
