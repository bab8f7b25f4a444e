"""``edgekit quantize``: FP32 ONNX + calibration images -> Q/DQ INT8 ONNX, TensorRT cache and accuracy report."""

import argparse
import json
from pathlib import Path
from typing import Any, Tuple

from edgekit.cli.common import console, fraction, positive_int
from edgekit.quant.options import METHODS, QuantizeOptions

DEFAULTS = QuantizeOptions()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="INT8 Q/DQ quantization with calibration images, a TensorRT cache and an agreement report",
        description="Calibrate on images preprocessed exactly like the runner does (the preprocessing comes from "
        "the ONNX metadata written by `edgekit export`, or from --checkpoint), write an explicit Q/DQ model for "
        "TensorRT, a TensorRT calibration cache (<output>.calib) and report the agreement with FP32 on hold-out "
        "images; layers are kept in float, most sensitive first, until --max-drop is met (exit 1 if it cannot be).",
    )
    parser.add_argument("--onnx", required=True, type=Path, metavar="ONNX", help="FP32 model from `edgekit export`")
    parser.add_argument(
        "--calib",
        required=True,
        metavar="DIR_OR_YAML",
        help="folder of images, YAML definition or a name in calibration/",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="ONNX", help="output Q/DQ .onnx")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULTS.method,
        help=f"activation ranges (default {DEFAULTS.method}: measured best for ESPNet/ESPNetv2, see README)",
    )
    parser.add_argument(
        "--max-drop",
        type=fraction,
        default=DEFAULTS.max_drop,
        help=f"largest share of hold-out pixels allowed to change ({DEFAULTS.max_drop})",
    )
    parser.add_argument("--no-mixed", action="store_true", help="quantize every conv; only report the agreement")
    parser.add_argument("--count", type=positive_int, help="use at most this many calibration images")
    parser.add_argument(
        "--holdout",
        metavar="DIR_OR_YAML",
        help="calibration-free images scoring INT8 against FP32 (default: drawn from --calib's real images, a "
        "quarter held out or cross-validated; synthetic scenes for a synthetic set)",
    )
    parser.add_argument("--checkpoint", type=Path, metavar="CKPT", help="take the preprocessing from this checkpoint")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="NODE", help="conv nodes to keep in float")
    parser.add_argument(
        "--trt-version",
        default=DEFAULTS.trt_version,
        help=f"TensorRT version for the cache header ({DEFAULTS.trt_version})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.export import read_metadata
    from edgekit.quant import check_outputs, load_calibration, quantize_int8

    check_outputs(args.output, args.output.with_suffix(".calib"))
    if args.json:
        from edgekit.board.outputs import check_output_file

        check_output_file(args.json, "--json file")
    if args.checkpoint is not None:
        from edgekit.checkpoint import Checkpoint

        metadata = read_metadata(args.onnx) if _has_metadata(args.onnx) else None
        preprocessing = Checkpoint.load(args.checkpoint).preprocessing
        if metadata is not None:
            preprocessing = preprocessing.with_size(*metadata.preprocessing.input_size)
        else:
            preprocessing = preprocessing.with_size(*_onnx_size(args.onnx))
        input_dtype = metadata.input_dtype if metadata else "float32"
    else:
        metadata = read_metadata(args.onnx)
        preprocessing, input_dtype = metadata.preprocessing, metadata.input_dtype
    calibration = load_calibration(args.calib, preprocessing, args.count)
    for note in calibration.notes:
        console.print(f"[yellow]warning:[/] {note}")
    holdout = names = None
    if args.holdout:
        held = load_calibration(args.holdout, preprocessing, option="--holdout")
        for note in held.notes:
            console.print(f"[yellow]warning:[/] {note}")
        holdout, names = list(held.inputs(input_dtype)), held.sources
    console.print(f"calibrating on {len(calibration)} images of {calibration.name} ({args.method})")
    report = quantize_int8(
        args.onnx,
        calibration,
        args.output,
        QuantizeOptions(
            method=args.method,
            max_drop=None if args.no_mixed else args.max_drop,
            exclude=tuple(args.exclude),
            trt_version=args.trt_version,
        ),
        holdout=holdout,
        holdout_names=names,
        calibration_cache=args.output.with_suffix(".calib"),
    )
    excluded = ", ".join(layer.name for layer in report.excluded) or "none"
    console.print(f"hold-out ({report.holdout_scheme}): {report.holdout_reason}")
    console.print(
        f"wrote {report.output} and {report.calibration_cache}: INT8 agrees with FP32 on {report.pixel_agreement:.2%} "
        f"of hold-out pixels (worst image; mIoU vs FP32 {report.miou_vs_fp32:.3f}), {report.int8_mac_share:.1%} of "
        f"conv MACs in INT8 ({report.int8_layers}/{report.conv_layers} layers); kept in float: {excluded}"
    )
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0 if report.met_budget else 1


def _has_metadata(path: Path) -> bool:
    from edgekit.errors import EdgekitError
    from edgekit.export import load_onnx, read_metadata

    model = load_onnx(path, load_external_data=False)  # not an ONNX at all: its own error, not "no metadata"
    try:
        read_metadata(path, model)
    except EdgekitError:
        return False
    return True


def _onnx_size(path: Path) -> Tuple[int, int]:
    from edgekit.export import load_onnx

    dims = load_onnx(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return int(dims[3].dim_value), int(dims[2].dim_value)
