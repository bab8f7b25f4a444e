"""``edgekit targets``: the device profiles; ``edgekit targets show NAME`` explains one."""

import argparse
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from edgekit.board.targets import Target


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("targets", help="list the device profiles (targets/*.yaml) or explain one")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="explain one profile: hardware, software, precisions and sources")
    show.add_argument("name", help="profile name (see `edgekit targets`) or path of a profile YAML")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.board.targets import load_all_targets, load_target

    console = Console()
    if args.action == "show":
        show(console, load_target(args.name))
        return 0
    table = Table(title="edgekit targets (targets/*.yaml)", box=None, pad_edge=False)
    for column in ("target", "GPU", "TensorRT", "JetPack", "precision", "DLA", "input"):
        table.add_column(column, no_wrap=True)
    for target in load_all_targets():
        table.add_row(
            target.name,
            target.sm or "cpu",
            target.software.get("tensorrt", "onnxruntime"),
            target.software.get("jetpack", ""),
            "/".join(p + "*" if p == target.default_precision else p for p in target.precisions),
            str(target.dla_cores),
            f"{target.input_size[0]}x{target.input_size[1]}",
        )
    console.print(table)
    console.print("* default precision.  Details: edgekit targets show NAME")
    return 0


def show(console: Console, target: "Target") -> None:
    console.print(f"[bold]{target.name}[/bold]: {target.description}  ({target.path})")
    rows = [
        ("kind / backend", f"{target.kind} / {target.backend}"),
        ("GPU", f"{target.gpu_name} ({target.sm})" if target.sm else "none: onnxruntime on the CPU"),
        ("memory", f"{target.memory_gib:g} GiB" if target.memory_gib else "-"),
        ("software", ", ".join(f"{k} {v}" for k, v in target.software.items()) or "-"),
        ("precisions", ", ".join(target.precisions) + f" (default {target.default_precision})"),
        ("DLA cores", str(target.dla_cores)),
        ("input size", f"{target.input_size[0]}x{target.input_size[1]}"),
        ("workspace", f"{target.workspace_mib} MiB" if target.workspace_mib else "-"),
        ("optimisation level", str(target.builder_optimization_level) if target.builder_optimization_level else "-"),
        ("peak GMAC/s", ", ".join(f"{p} {v:g}" if v else f"{p} -" for p, v in target.peak_gmacs.items())),
    ]
    table = Table(show_header=False, box=None)
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", value)
    console.print(table)
    for precision, why in target.unsupported.items():
        console.print(f"[yellow]no {precision.upper()}[/yellow]: {why}")
    console.print(f"peak figures: {target.peak_source}")
    console.print("sources:")
    for source in target.sources:
        console.print(f"  - {source}")
