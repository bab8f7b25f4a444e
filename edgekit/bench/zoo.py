"""The zoo networks as bench workloads: exported (and quantized) and counted here, so this half of bench is host
code; ``Bench(config, zoo_workloads)`` of the board side measures them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.board.classes import ClassSet
from edgekit.board.measure.bench import BenchConfig, Skip, Workload
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    from edgekit.checkpoint import Checkpoint

log = logging.getLogger(__name__)


def zoo_workloads(config: BenchConfig, workdir: Path) -> Iterator[Workload]:
    """``config.models`` at ``config.sizes``; their ONNX files are exported into ``workdir`` when first asked for."""
    from edgekit.models import get_spec

    for name in config.models:
        spec = get_spec(name)
        for size in config.sizes:
            spec.check_input_size(size, "--sizes")
            yield _workload(name, size, config.num_classes, workdir)


def _workload(name: str, size: tuple[int, int], num_classes: int, workdir: Path) -> Workload:
    from edgekit.models import build_model, get_spec

    def module() -> Any:
        return build_model(name, num_classes=num_classes).eval()

    def onnx_for(precision: str, batch: int) -> Path:
        return zoo_onnx(name, size, batch, precision, num_classes, workdir)

    def count(backend: str, batch: int) -> tuple[int, int, str]:
        """Params and MACs of what runs: on the PyTorch module for the torch backend, else on the FP32 ONNX."""
        if backend == "torch":
            from edgekit.models.complexity import measure

            stats = measure(module(), size)
            return stats.params, stats.macs, "PyTorch module (forward hooks)"
        try:
            from edgekit.bench.macs import graph_stats
        except ImportError as exc:
            raise EdgekitError(f"edgekit bench counts MACs on the ONNX graph and needs {exc.name}: "
                               "pip install 'edgekit[bench]'") from exc  # fmt: skip
        counted = graph_stats(onnx_for("fp32", batch))
        return counted.params, counted.macs, "FP32 ONNX graph (BN folded)"

    preprocessing = get_spec(name).default_preprocessing.with_size(*size)
    return Workload(name, size, preprocessing, onnx_for, module, ClassSet.generic(num_classes), count)


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
        convert_fp16(fp32, variant, tolerance=None)  # random weights: only the speed counts
    else:
        from edgekit.models import get_spec
        from edgekit.quant import load_calibration, quantize_int8

        calibration = load_calibration("default", get_spec(name).default_preprocessing.with_size(*size))
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
