"""``edgekit train``: train a zoo model on a dataset folder or on synthetic street scenes."""

import argparse
import os
from functools import partial
from pathlib import Path
from typing import Any, Dict

from edgekit.cli.common import (
    console,
    dataclass_defaults,
    library_defaults_help,
    non_negative_int,
    parse_size,
    positive_float,
    positive_int,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a zoo model (runs under torchrun for several processes)",
        description="Train with per-epoch validation; best.pt, last.pt, metrics.jsonl and training_curve.png go to "
        "--out. Ctrl-C or SIGTERM saves a resumable last.pt. Options left out take the defaults of the library's "
        "edgekit.train.TrainConfig.",
        formatter_class=library_defaults_help(_defaults),
    )
    parser.add_argument("--model", required=True, help="zoo model name (see `edgekit models`)")
    parser.add_argument(
        "--data",
        type=Path,
        help="dataset folder (Cityscapes, CamVid, VOC or images/+masks/); "
        "omitted: synthetic street scenes generated in memory",
    )
    parser.add_argument("--out", dest="out_dir", metavar="OUT", type=Path, required=True,
                        help="output folder for checkpoints and logs")  # fmt: skip
    # Options left out stay out of the namespace, so TrainConfig's defaults apply: one owner for each default.
    option = partial(parser.add_argument, default=argparse.SUPPRESS)
    option("--input-size", type=parse_size, help="training WxH")
    option("--epochs", type=positive_int, help="passes over the training set")
    option("--time-budget", dest="time_budget_s", metavar="SECONDS", type=positive_float,
           help="stop after this many seconds (validation included)")  # fmt: skip
    option("--batch-size", type=positive_int, help="images per step (per process under torchrun)")
    option("--lr", type=positive_float, help="base learning rate")
    option("--optimizer", choices=("adam", "sgd"))
    option("--schedule", choices=("poly", "cyclic"), help="poly decay, or ESPNetv2's hybrid cyclic schedule")
    option("--class-weighting", choices=("espnet", "none"),
           help="ESPNet's 1/ln(1.10+p) class weights or plain cross-entropy")  # fmt: skip
    option("--init", dest="init_checkpoint", metavar="CHECKPOINT", type=Path,
           help="start from this edgekit checkpoint (e.g. imported official weights)")  # fmt: skip
    option("--resume", type=Path, help="continue a run from its last.pt exactly")
    option("--overwrite", action="store_true", help="replace an earlier run in --out (without it only --resume may)")
    option("--workers", dest="num_workers", metavar="N", type=non_negative_int, help="data-loading processes")
    option("--seed", type=int, help="seed of the weights, the data order and the synthetic scenes")
    option("--synthetic-train", type=positive_int, help="synthetic training scenes (no --data)")
    option("--synthetic-val", type=positive_int, help="synthetic validation scenes (no --data)")
    option("--crop", dest="crop_size", metavar="WxH", type=parse_size,
           help="train on random WxH crops (validation stays at --input-size)")  # fmt: skip
    option("--threads", type=positive_int, help="torch threads (1 is fastest on a CPU shared with other jobs)")
    option("--no-augment", dest="augment", action="store_false",
           help="no random scale, crop, flip or colour jitter")  # fmt: skip
    parser.set_defaults(func=run)


def _defaults() -> Dict[str, Any]:
    from edgekit.train import TrainConfig

    return dataclass_defaults(TrainConfig)


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from edgekit.train import TrainConfig, train

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    result = train(TrainConfig(**given))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary
        console.print(f"best validation mIoU {result.best_miou:.4f}: {result.best}  (last: {result.last})")
    return 0
