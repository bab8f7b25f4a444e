"""``edgekit build --target NAME``: checkpoint (or official weights, or nothing) -> deployable bundle."""

import argparse
import shlex
from functools import partial
from pathlib import Path
from typing import Any, Dict, List

from edgekit.cli.common import (
    console,
    dataclass_defaults,
    library_defaults_help,
    non_negative_int,
    parse_size,
    positive_float,
    positive_int,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build",
        help="train/import, export, quantize and compile a bundle for a device profile",
        description="With no --checkpoint or --weights, trains the model briefly on synthetic street scenes first. "
        "Options left out take the defaults of the library's edgekit.build.BuildOptions.",
        formatter_class=library_defaults_help(_defaults),
    )
    parser.add_argument("--target", required=True, help="device profile name (`edgekit targets`) or profile YAML")
    parser.add_argument("--model", help="zoo model (`edgekit models`; default espnet, or the checkpoint's)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="edgekit checkpoint to deploy")
    source.add_argument("--weights", type=Path, help="official .pth weights to import (e.g. espnet_p_2_q_8.pth)")
    parser.add_argument("--data", type=Path, help="Cityscapes-layout folder to train on (default: synthetic scenes)")
    parser.add_argument("--calib", help="INT8 calibration: folder of frames, YAML, or name (default: default)")
    parser.add_argument("--calib-count", type=positive_int, help="use at most N calibration images")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="default: the target's")
    parser.add_argument("--strict", action="store_true", help="fail instead of substituting an available precision")
    parser.add_argument("--input-size", type=parse_size, help="network input WxH (default: the target's)")
    # Options left out stay out of the namespace, so BuildOptions' defaults apply: one owner for each default.
    option = partial(parser.add_argument, default=argparse.SUPPRESS)
    option("--train-seconds", type=positive_float, help="training time budget in seconds")
    parser.add_argument("--train-size", type=parse_size, help="training crop WxH (default: half the input size)")
    option("--eval-scenes", type=positive_int, help="held-out scenes for the accuracy figures")
    parser.add_argument(
        "--dla-core", type=non_negative_int, help="build for this DLA core (GPU fallback on) where compiling"
    )
    parser.add_argument("--no-compile", action="store_true", help="never build the engine here, only the bundle")
    parser.add_argument("-o", "--output", type=Path, help="bundle folder (default runs/bundles/MODEL-TARGET)")
    parser.set_defaults(func=run)


def _defaults() -> Dict[str, Any]:
    from edgekit.build import BuildOptions

    return dataclass_defaults(BuildOptions)


def run_command(root: Path) -> List[str]:
    """The `edgekit run` line printed after a build (tests parse it with run's own parser)."""
    return ["edgekit", "run", "--bundle", str(root), "--source", "0", "--show"]


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from edgekit.board.compile import board_command
    from edgekit.build import BuildOptions, build

    given = {f.name: getattr(args, f.name) for f in fields(BuildOptions) if hasattr(args, f.name)}
    result = build(BuildOptions(**given, compile=not args.no_compile))
    root = result.bundle.root
    console.print(f"\n[bold]bundle:[/bold] {root}  ({result.seconds:.0f} s; report: {root / 'report.md'})")
    console.print(f"engine: {result.compile_note}")
    if not result.engine_built and result.bundle.manifest.target_profile["backend"] == "tensorrt":
        console.print(
            f"[bold]on the board:[/bold] copy {root.name}/ there, then `{board_command(root)}`; "
            f"meanwhile it runs anywhere with onnxruntime ({result.bundle.manifest.artifacts.runtime_onnx})"
        )
    command = " ".join(shlex.quote(word) for word in run_command(root))  # shlex.join is 3.8+
    console.print(
        f"run it: `{command}` (--source 0 is the first USB camera; a video file, an image "
        "folder or rtsp://... also work)",
        markup=False,
        highlight=False,
    )
    return 0
