"""The ``edgekit`` command: argparse subcommands, each a thin layer over the library API.

Each subcommand lives in its own module with ``register(subparsers)``; heavy imports (torch, onnx) happen inside
the handlers so that ``edgekit --help`` and the board-side commands start fast and never need torch. The board
commands import only :mod:`edgekit.board` and run on JetPack 4.6's Python 3.6; the host commands need the host's
Python and its extra (``pip install 'edgekit[host]'``), and say so in one line on an older interpreter.
"""

import argparse
import importlib
import sys
from typing import Optional, Sequence

from edgekit import __version__
from edgekit.board.interrupts import Interrupted, sigterm_as_interrupt
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
    "scale",
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
    "scale_measure",
    "report",
)


# What runs on a board (Python 3.6+, base install): everything else is host work. `bench` is a board command with
# --bundle and a host one with --models (it exports the zoo networks).
BOARD_COMMANDS = ("targets", "compile", "run", "demo", "scale-measure", "bench")
HOST_PYTHON = (3, 10)


def _host_only(args: argparse.Namespace) -> bool:
    return args.command not in BOARD_COMMANDS or (args.command == "bench" and bool(args.models))


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
    if _host_only(args) and sys.version_info < HOST_PYTHON:
        floor = ".".join(map(str, HOST_PYTHON))
        print(
            f"edgekit {args.command}: error: host command: needs Python {floor}+ with edgekit[host] (this is "
            f"{sys.version.split()[0]}); on this board run {', '.join(BOARD_COMMANDS[:-1])} and bench --bundle",
            file=sys.stderr,
        )
        return 2
    from edgekit.cli import render

    render.install()  # the library's log records and tasks, drawn on the console
    try:
        with sigterm_as_interrupt():  # SIGTERM cleans up like Ctrl-C (staging removed, last.pt saved)
            return int(args.func(args) or 0)
    except EdgekitError as exc:
        print(f"edgekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"edgekit {args.command}: interrupted ({exc})", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"edgekit {args.command}: interrupted", file=sys.stderr)
        return 130
