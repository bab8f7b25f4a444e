"""``edgekit models``: the zoo with parameter counts and multiply-adds measured on the networks."""

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from edgekit.cli.common import parse_size


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list the model zoo with measured params and GMACs")
    parser.add_argument("--classes", type=int, default=20, help="number of output classes (default 20)")
    parser.add_argument("--input-size", type=parse_size, help="measure GMACs at WxH instead of each default")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.models import available_models, get_spec
    from edgekit.models.complexity import measure

    table = Table(title=f"edgekit model zoo ({args.classes} classes)")
    for column in ("model", "params", "GMACs", "input (WxH)", "paper"):
        table.add_column(column, justify="right" if column in ("params", "GMACs") else "left")
    for name in available_models():
        spec = get_spec(name)
        size = args.input_size or spec.default_input_size
        stats = measure(spec.build(num_classes=args.classes), size)
        table.add_row(name, f"{stats.params:,}", f"{stats.gmacs:.2f}", f"{size[0]}x{size[1]}", spec.paper)
    Console().print(table)
    return 0
