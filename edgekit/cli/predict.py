"""``edgekit predict``: class-id, colour and overlay PNGs for an image or a directory of images."""

import argparse
from pathlib import Path
from typing import Any

from edgekit.cli.common import console, parse_size


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment images with a checkpoint (PyTorch)",
        description="Write <stem>_labels.png (class ids), <stem>_color.png and <stem>_overlay.png per image, at "
        "the image's own size. In a directory, unreadable images are skipped with a warning and the command exits "
        "1 at the end; a single unreadable image exits 2.",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="CKPT", help="an edgekit checkpoint")
    parser.add_argument("--input", required=True, type=Path, metavar="IMG_OR_DIR", help="an image or a directory")
    parser.add_argument("--output", required=True, type=Path, metavar="DIR", help="directory for the PNGs")
    parser.add_argument("--input-size", type=parse_size, help="network input WxH (default: the checkpoint's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from edgekit.board.outputs import check_output_dir

    check_output_dir(args.output, "--output folder")
    from edgekit.checkpoint import Checkpoint
    from edgekit.predict import list_images, predict_files

    checkpoint = Checkpoint.load(args.checkpoint)
    total = len(list_images(args.input))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{checkpoint.model_name}", total=total)
        report = predict_files(
            checkpoint, args.input, args.output, args.input_size, on_image=lambda _: progress.advance(task)
        )
    for path, fractions in report.fractions.items():
        top = ", ".join(f"{name} {share:.0%}" for name, share in list(fractions.items())[:4])
        console.print(f"{path.name}: {top}")
    for path, reason in report.failed.items():
        console.print(f"[yellow]warning:[/] skipped {path.name}: {reason}")
    console.print(f"wrote {3 * len(report.fractions)} PNGs for {len(report.fractions)} images to {args.output}")
    if report.failed:
        console.print(f"[red]{len(report.failed)} of {total} images could not be read[/]")
        return 1
    return 0
