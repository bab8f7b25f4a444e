"""The build's compile hand-off: the TensorRT engine where this machine can build it, else what to run on the
board (the compile itself is :mod:`edgekit.board.compile`'s, the same code `edgekit compile` runs there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.board.bundle import ENGINE_FILE, Manifest
from edgekit.board.compile import Readiness, board_command, compile_engine, compile_readiness
from edgekit.board.targets import Target
from edgekit.build.options import BuildOptions


def engine_or_handoff(
    options: BuildOptions, target: Target, root: Path, output: Path, manifest: Manifest
) -> tuple[dict[str, Any] | None, str]:
    """(engine entry or None, why there is or is not an engine and what to run on the board)."""
    readiness = compile_readiness(target) if options.compile else Readiness(False, "no engine built: --no-compile")
    why = readiness.why
    if not readiness.ready:
        if target.backend != "tensorrt":
            return None, why
        return None, (
            f"{why}. The bundle is complete for building on the {target.name}: copy {output.name}/ there and run "
            f"`{board_command(output)}` (needs only edgekit's base install and TensorRT "
            f"{target.software.get('tensorrt')})"
        )
    engine = compile_engine(root, manifest, dla_core=options.dla_core)
    return engine, f"built {ENGINE_FILE} with TensorRT {engine['tensorrt_version']} on {engine['gpu']}"
