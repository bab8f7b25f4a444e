"""``edgekit scale-measure``: on the board, time the candidate ONNX files of an ``edgekit scale`` kit."""

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scale-measure",
        help="on the board: measure the latency of every candidate in an `edgekit scale` kit",
        description="Times each candidate ONNX of KIT with the board's backend (onnxruntime or a TensorRT engine "
        "of the kit's precision) the way `edgekit bench` does, and writes -o after every candidate; running the "
        "same command again continues an interrupted run. Hand the file back with "
        "`edgekit scale --resume --latencies FILE`.",
    )
    parser.add_argument("kit", type=Path, help="kit folder written by `edgekit scale` (holds kit.json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="latencies JSON file to write or continue")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: the kit's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.board.scale_measure import measure_kit
    from edgekit.cli.common import console

    results = measure_kit(args.kit, args.output, threads=args.threads)
    for key, measured in results["measured"].items():
        console.print("{}: p50 {:.3f} ms".format(key, measured["latency_ms"]["p50_ms"]))
    console.print(
        f"latencies written to {args.output} (continue with `edgekit scale --resume --latencies {args.output}`)"
    )
    return 0
