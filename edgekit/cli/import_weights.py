"""``edgekit import-weights``: official ESPNet/ESPNetv2 weights -> an edgekit checkpoint with their preprocessing."""

import argparse
from pathlib import Path
from typing import Any

from edgekit.cli.common import console, parse_size


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import-weights",
        help="import the authors' Cityscapes weights into an edgekit checkpoint",
        description="Load official ESPNet / ESPNet-C / ESPNetv2 Cityscapes weights into the zoo network and save "
        "them with the authors' preprocessing, the Cityscapes classes and the file's sha256.",
    )
    parser.add_argument("--model", required=True, help="espnet, espnet-c, espnetv2-s0.5, -s1.0, -s1.5 or -s2.0")
    parser.add_argument("--official", required=True, type=Path, metavar="FILE", help="the official .pth file")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="CKPT", help="checkpoint to write")
    parser.add_argument(
        "--input-size", type=parse_size, help="network input WxH (default: what the weights were trained at)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.board.outputs import check_output_file

    check_output_file(args.output, "checkpoint", _is_checkpoint, "an edgekit checkpoint")
    from edgekit.models.complexity import count_params
    from edgekit.weights import import_official

    checkpoint = import_official(args.model, args.official, args.input_size)
    path = checkpoint.save(args.output)
    params = count_params(checkpoint.build())
    prep = checkpoint.preprocessing
    console.print(f"[bold]{checkpoint.model_name}[/] {checkpoint.model_kwargs}: {params:,} params, all keys matched")
    for note in checkpoint.meta["import_notes"]:
        console.print(f"  {note}")
    console.print(
        f"  preprocessing: {prep.width}x{prep.height} {prep.channel_order} {prep.resize}, "
        f"mean {tuple(round(m, 3) for m in prep.mean)}, std {tuple(round(s, 3) for s in prep.std)}, "
        f"scale {prep.scale:g} ({prep.source})"
    )
    console.print(f"  {checkpoint.num_classes} classes: Cityscapes train ids + background")
    console.print(f"  sha256 {checkpoint.meta['official_sha256']}")
    console.print(f"wrote {path}")
    return 0


def _is_checkpoint(path: Path) -> bool:
    """Imports torch only when there is a file to recognise, so a bad -o fails at once."""
    from edgekit.checkpoint import is_checkpoint

    return is_checkpoint(path)
