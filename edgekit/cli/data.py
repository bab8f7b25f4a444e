"""``edgekit data synth``: write the synthetic street set to disk in the Cityscapes layout."""

import argparse
from pathlib import Path
from typing import Any

from edgekit.cli.common import console, parse_size


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("data", help="dataset tools (synthetic street scenes)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = actions.add_parser("synth", help="write synthetic street scenes as a Cityscapes tree")
    synth.add_argument("--out", type=Path, required=True, help="output folder (leftImg8bit/ and gtFine/ go here)")
    synth.add_argument("--count", type=int, required=True, help="number of scenes (train + val)")
    synth.add_argument("--size", type=parse_size, default=(1024, 512), help="WxH (default 1024x512)")
    synth.add_argument("--seed", type=int, default=0, help="scene seed (default 0): same seed, same scenes")
    synth.add_argument("--val-fraction", type=float, default=0.2, help="share of scenes in val/ (default 0.2)")
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from edgekit.board.synthetic import write_cityscapes_layout

    out = write_cityscapes_layout(args.out, args.count, args.size, args.seed, args.val_fraction)
    console.print(f"wrote {args.count} synthetic scenes at {args.size[0]}x{args.size[1]} to {out}")
    return 0
