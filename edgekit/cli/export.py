"""``edgekit export``: checkpoint -> verified, simplified ONNX (the target's opset), optionally an FP16 twin."""

import argparse
import json
from pathlib import Path
from typing import Any

from edgekit.cli.common import console, parse_size


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX, simplified and verified against PyTorch",
        description="Export to ONNX (opset 17, or the highest the --target's TensorRT parser takes: 13 for "
        "TensorRT 8.2), simplify with onnxsim, check with onnx.checker and verify against PyTorch through "
        "onnxruntime (max abs diff and argmax agreement; error above --tolerance). The file carries the "
        "preprocessing and classes in its metadata for `edgekit quantize` and the runner.",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="CKPT", help="an edgekit checkpoint")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="ONNX", help="output .onnx path")
    parser.add_argument("--input-size", type=parse_size, help="network input WxH (default: the checkpoint's)")
    parser.add_argument("--dynamic-batch", action="store_true", help="make the batch dimension dynamic")
    parser.add_argument("--target", metavar="NAME", help="a device profile: export what its TensorRT parser takes")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: 17, or the --target's highest)")
    parser.add_argument(
        "--argmax", action="store_true", help="end the graph in a class-map head: an int32 class map output"
    )
    parser.add_argument(
        "--normalize-in-graph", action="store_true", help="take uint8 NCHW frames and normalise inside the graph"
    )
    parser.add_argument("--fp16", action="store_true", help="also write <output>.fp16.onnx (FP32 inputs/outputs)")
    parser.add_argument(
        "--verify", type=Path, nargs="*", metavar="IMG", help="verify on these images (default: synthetic)"
    )
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed logit difference (1e-3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.board.outputs import check_output_file
    from edgekit.board.targets import load_target
    from edgekit.export import is_edgekit_onnx

    # every output before torch loads (export_onnx checks its own again, for library callers)
    outputs = [args.output, *([args.output.with_suffix(".fp16.onnx")] if args.fp16 else [])]
    for onnx_path in outputs:
        check_output_file(onnx_path, "ONNX output", is_edgekit_onnx, "an ONNX model written by edgekit")
    if args.json:
        check_output_file(args.json, "--json file")
    from edgekit.checkpoint import Checkpoint
    from edgekit.export import classmap_head_for, convert_fp16, export_onnx, export_opset

    target = None if args.target is None else load_target(args.target)
    opset = export_opset(target, args.opset, args.normalize_in_graph)
    checkpoint = Checkpoint.load(args.checkpoint)
    with console.status(f"exporting {checkpoint.model_name}"):
        report = export_onnx(
            checkpoint,
            args.output,
            input_size=args.input_size,
            dynamic_batch=args.dynamic_batch,
            argmax=args.argmax,
            normalize_in_graph=args.normalize_in_graph,
            verify_images=args.verify,
            tolerance=args.tolerance,
            opset=opset,
            classmap_head=classmap_head_for(target),
        )
        if args.fp16:
            report.fp16 = convert_fp16(args.output, args.output.with_suffix(".fp16.onnx"))
    diff = "n/a (class map output)" if report.max_abs_diff is None else f"{report.max_abs_diff:.2e}"
    console.print(
        f"wrote {report.output} (opset {report.opset}, {report.input_size[0]}x{report.input_size[1]}, "
        f"{report.nodes_after_simplify} nodes): "
        f"max |ONNX - PyTorch| {diff}, argmax agreement {report.argmax_agreement:.4%} on {len(report.verified_on)} "
        f"images, {report.seconds:.1f} s"
    )
    if report.fp16 is not None:
        console.print(f"wrote {report.fp16.output}: FP16 vs FP32 argmax agreement {report.fp16.argmax_agreement:.4%}")
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0
