"""The ``edgekit`` command: argparse subcommands, each a thin layer over the library API.

Each subcommand lives in its own module with ``register(subparsers)``; heavy imports (torch, onnx) happen inside
the handlers so that ``edgekit --help`` and the board-side commands start fast and never need torch.
"""

import argparse
import importlib
import sys
from typing import Optional, Sequence

from edgekit import __version__
from edgekit.errors import EdgekitError

# Module names under edgekit.cli, in pipeline order (the order `edgekit --help` lists them).
COMMAND_MODULES = (
    # the zoo and its official weights
    "models",
    "import_weights",
    "predict",
    # data and training
    "data",
    "train",
    "eval",
    # deployment artefacts
    "export",
    "quantize",
    "targets",
    "build",
    "compile",
    # on the device
    "run",
    "demo",
    "bench",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Lightweight semantic segmentation from training to real-time inference on Jetson and GPUs.",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True  # a keyword argument only from 3.7
    for name in COMMAND_MODULES:
        importlib.import_module(f"edgekit.cli.{name}").register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgekitError as exc:
        print(f"edgekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgekit {args.command}: interrupted", file=sys.stderr)
        return 130
