"""``edgekit compile --bundle DIR``: build the TensorRT engine of a bundle on the board it will run on.

Needs only edgekit's base install plus TensorRT (and pycuda or cuda-python): no torch, no onnx tooling.
"""

import argparse
from pathlib import Path
from typing import Any

from edgekit.cli.common import console


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("compile", help="build a bundle's TensorRT engine on this device")
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder made by `edgekit build`")
    parser.add_argument("--dla-core", type=int, help="put the network on this DLA core (GPU fallback on)")
    parser.add_argument(
        "--any-gpu", action="store_true", help="build even if this GPU is not the bundle target's architecture"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.board.compile import compile_bundle

    bundle = compile_bundle(args.bundle, dla_core=args.dla_core, any_gpu=args.any_gpu)
    engine = bundle.manifest.engine
    assert engine is not None
    console.print(
        f"engine: {bundle.engine} (TensorRT {engine['tensorrt_version']}, {engine['gpu']}, "
        f"compute {engine['compute_capability']}, {engine['precision']})"
    )
    return 0
