"""``edgekit eval``: per-class IoU and mIoU of a checkpoint on a dataset's validation split."""

import argparse
import inspect
import math
from functools import partial
from pathlib import Path
from typing import Any, Dict

from rich.console import Console
from rich.table import Table

from edgekit.cli.common import library_defaults_help, non_negative_int, positive_int, signature_defaults


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="per-class IoU and mIoU of a checkpoint on a dataset split",
        formatter_class=library_defaults_help(_defaults),
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="edgekit checkpoint (best.pt, last.pt)")
    parser.add_argument("--data", type=Path, help="dataset folder; omitted: the synthetic validation scenes")
    # Options left out stay out of the namespace, so evaluate()'s defaults apply.
    option = partial(parser.add_argument, default=argparse.SUPPRESS)
    option("--split", help="split to score")
    option("--batch-size", type=positive_int, help="images per forward pass")
    option("--workers", dest="num_workers", metavar="N", type=non_negative_int, help="data-loading processes")
    option("--synthetic-val", dest="synthetic_count", metavar="N", type=positive_int,
           help="synthetic scenes to score (no --data)")  # fmt: skip
    option("--seed", type=int, help="the training seed (no --data): same validation scenes")
    parser.set_defaults(func=run)


def _defaults() -> Dict[str, Any]:
    from edgekit.train import evaluate

    return signature_defaults(evaluate)


def run(args: argparse.Namespace) -> int:
    from edgekit.train import evaluate

    parameters = inspect.signature(evaluate).parameters
    options = {name: getattr(args, name) for name in parameters if hasattr(args, name)}
    split = options.get("split", parameters["split"].default)
    report = evaluate(**options)
    table = Table(title=f"{args.checkpoint}: {report.images} images of {args.data or 'synthetic scenes'} ({split})")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, iou, present in zip(report.classes.names, report.iou, report.present):
        if present:
            table.add_row(name, f"{iou:.4f}")
        elif not math.isnan(iou):
            table.add_row(f"[dim]{name} (not in ground truth)[/]", "[dim]false positives only[/]")
    table.add_row("[bold]mIoU (classes present)[/]", f"[bold]{report.miou:.4f}[/]")
    table.add_row("pixel accuracy", f"{report.pixel_accuracy:.4f}")
    Console().print(table)
    return 0
