"""What a build writes about itself: the manifest (schema owned by :mod:`edgekit.board.bundle`) and report.json
(rendered to Markdown by :mod:`edgekit.board.report`)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from edgekit.board.backends.tensorrt_backend.releases import parse_release
from edgekit.board.bundle import (
    CHECKPOINT_FILE,
    CLASSMAP_NAME,
    INPUT_NAME,
    Artifacts,
    InputSpec,
    Manifest,
    ModelInfo,
    OutputSpec,
)
from edgekit.board.compile import target_compute_capability, trtexec_for
from edgekit.board.preprocess import Preprocessing
from edgekit.board.targets import PrecisionChoice, Target
from edgekit.build.options import StageRecord
from edgekit.checkpoint import Checkpoint
from edgekit.export import CLASSMAP_HEADS
from edgekit.models.complexity import measure


def bundle_manifest(
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
    """The manifest of a built bundle: float32 input normalised on the CPU, an int32 class map out."""
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
        onnx={"opset": opset, "why": opset_reason(target, opset)},
        classmap_head={"formulation": classmap_head, "why": CLASSMAP_HEADS[classmap_head]},
        built_with={"host": platform.node(), "platform": platform.platform(), "python": platform.python_version()},
    )


def opset_reason(target: Target, opset: int) -> str:
    support = target.onnx_support
    if support is None:
        return f"{target.name} runs onnxruntime, which takes opset {opset}"
    return (
        f"{target.name} has TensorRT {target.software['tensorrt']}, whose ONNX parser takes opset <= "
        f"{support.max_opset} (onnx-tensorrt {support.operators}); opset {opset} is the highest edgekit exports there"
    )


def relative_paths(report: dict[str, Any], root: Path) -> dict[str, Any]:
    """Report paths relative to the bundle (staging paths mean nothing after the rename)."""
    return {
        key: (str(Path(value).relative_to(root)) if isinstance(value, str) and value.startswith(str(root)) else value)
        for key, value in report.items()
    }


def build_report(
    root: Path, manifest: Manifest, stages: list[StageRecord], compile_note: str, dla_core: int | None
) -> dict[str, Any]:
    """report.json; ``trtexec`` is the line that builds the same engine without Python on the target's release."""
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
