"""The zoo networks as bench workloads: exported (and quantized) here, so this half of bench is host code."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.board.classes import ClassSet
from edgekit.board.measure.bench import BenchConfig, Skip, Workload

if TYPE_CHECKING:
    from edgekit.checkpoint import Checkpoint

log = logging.getLogger(__name__)


def zoo_workloads(config: BenchConfig, workdir: Path) -> Iterator[Workload]:
    from edgekit.models import build_model, get_spec

    for name in config.models:
        spec = get_spec(name)
        for size in config.sizes:
            spec.check_input_size(size, "--sizes")

            def module(name: str = name) -> Any:
                return build_model(name, num_classes=config.num_classes).eval()

            def onnx_for(precision: str, batch: int, name: str = name, size: tuple[int, int] = size) -> Path:
                return zoo_onnx(name, size, batch, precision, config.num_classes, workdir)

            classes = ClassSet.generic(config.num_classes)
            yield Workload(name, size, spec.default_preprocessing.with_size(*size), onnx_for, module, classes)


def zoo_onnx(name: str, size: tuple[int, int], batch: int, precision: str, num_classes: int, workdir: Path) -> Path:
    """The zoo network through ``edgekit export`` (static for batch 1, dynamic batch axis otherwise), or its FP16
    variant, or its ``edgekit quantize`` INT8 Q/DQ model.

    Weights are random: speed does not depend on them, and INT8/FP16 accuracy is measured as agreement with
    the FP32 prediction of the same network.
    """
    from edgekit.export import convert_fp16, export_onnx

    stem = workdir / f"{name}-{size[0]}x{size[1]}-{'b1' if batch == 1 else 'dynamic'}"
    fp32 = stem.with_name(stem.name + "-fp32.onnx")
    if not fp32.is_file():
        try:
            export_onnx(random_checkpoint(name, num_classes), fp32, input_size=size, dynamic_batch=batch != 1)
        except Exception as exc:  # the exporter raises many types (SymbolicValueError, RuntimeError, ...)
            if batch == 1:
                raise
            raise Skip(
                f"{name} does not export with a dynamic batch axis ({type(exc).__name__}); use --batch 1"
            ) from exc
    if precision == "fp32":
        return fp32
    variant = stem.with_name(f"{stem.name}-{precision}.onnx")
    if variant.is_file():
        return variant
    if precision == "fp16":
        convert_fp16(fp32, variant)
    else:
        from edgekit.quant import load_calibration, quantize_int8

        spec_preprocessing = random_checkpoint(name, num_classes).preprocessing.with_size(*size)
        calibration = load_calibration("default", spec_preprocessing)
        report = quantize_int8(fp32, calibration, variant)
        log.info("INT8 %s: %.1f%% of MACs in INT8, agreement %.4f", name, 100 * report.int8_mac_share,
                 report.pixel_agreement)  # fmt: skip
    return variant


def random_checkpoint(name: str, num_classes: int, model_kwargs: dict[str, Any] | None = None) -> Checkpoint:
    """A zoo network with its default initialisation, packaged as a checkpoint for the export stage."""
    from edgekit.checkpoint import Checkpoint
    from edgekit.models import build_model, get_spec

    kwargs = dict(model_kwargs or {})
    model = build_model(name, num_classes=num_classes, **kwargs).eval()
    return Checkpoint(
        model_name=name,
        model_kwargs=kwargs,
        classes=ClassSet.generic(num_classes),
        preprocessing=get_spec(name).default_preprocessing,
        state_dict=model.state_dict(),
        meta={"weights": "random initialisation (benchmark: speed only)"},
    )
