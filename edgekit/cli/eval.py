"""``edgekit eval``: per-class IoU and mIoU of a checkpoint on a dataset's validation split."""

import argparse
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("eval", help="per-class IoU and mIoU of a checkpoint on a dataset split")
    parser.add_argument("--checkpoint", type=Path, required=True, help="edgekit checkpoint (best.pt, last.pt)")
    parser.add_argument("--data", type=Path, help="dataset folder; omitted: the synthetic validation scenes")
    parser.add_argument("--split", default="val", help="split to score (default val)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--synthetic-val", type=int, default=40, help="synthetic scenes to score (no --data)")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (no --data): same validation scenes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.train import evaluate

    report = evaluate(
        args.checkpoint, args.data, args.split, args.batch_size, args.workers, args.synthetic_val, args.seed
    )
    table = Table(
        title=f"{args.checkpoint}: {report.images} images of {args.data or 'synthetic scenes'} ({args.split})"
    )
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
