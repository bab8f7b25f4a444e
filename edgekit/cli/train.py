"""``edgekit train``: train a zoo model on a dataset folder or on synthetic street scenes."""

import argparse
import os
from pathlib import Path
from typing import Any

from edgekit.cli.common import console, non_negative_int, parse_size, positive_float, positive_int


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a zoo model (runs under torchrun for several processes)",
        description="Train with per-epoch validation; best.pt, last.pt, metrics.jsonl and training_curve.png go to "
        "--out. Ctrl-C or SIGTERM saves a resumable last.pt.",
    )
    parser.add_argument("--model", required=True, help="zoo model name (see `edgekit models`)")
    parser.add_argument(
        "--data",
        type=Path,
        help="dataset folder (Cityscapes, CamVid, VOC or images/+masks/); "
        "omitted: synthetic street scenes generated in memory",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for checkpoints and logs")
    parser.add_argument("--input-size", type=parse_size, default=(512, 256), help="training WxH (default 512x256)")
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--time-budget", type=positive_float, help="stop after this many seconds (validation included)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--lr", type=positive_float, default=5e-4, help="base learning rate (default 5e-4)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument(
        "--schedule",
        choices=("poly", "cyclic"),
        default="poly",
        help="poly decay, or ESPNetv2's hybrid cyclic schedule",
    )
    parser.add_argument(
        "--class-weighting",
        choices=("espnet", "none"),
        default="espnet",
        help="ESPNet's 1/ln(1.10+p) class weights or plain cross-entropy",
    )
    parser.add_argument("--init", type=Path, help="start from this edgekit checkpoint (e.g. imported official weights)")
    parser.add_argument("--resume", type=Path, help="continue a run from its last.pt exactly")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in --out (without it only --resume may)"
    )
    parser.add_argument("--workers", type=non_negative_int, default=2, help="data-loading processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--synthetic-train", type=positive_int, default=400, help="synthetic training scenes (no --data)"
    )
    parser.add_argument(
        "--synthetic-val", type=positive_int, default=40, help="synthetic validation scenes (no --data)"
    )
    parser.add_argument("--crop", type=parse_size, help="train on random WxH crops (validation stays at --input-size)")
    parser.add_argument(
        "--threads", type=positive_int, help="torch threads (1 is fastest on a CPU shared with other jobs)"
    )
    parser.add_argument("--no-augment", action="store_true", help="no random scale, crop, flip or colour jitter")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.train import TrainConfig, train

    config = TrainConfig(
        model=args.model,
        data=args.data,
        out_dir=args.out,
        input_size=args.input_size,
        epochs=args.epochs,
        time_budget_s=args.time_budget,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        schedule=args.schedule,
        class_weighting=args.class_weighting,
        init_checkpoint=args.init,
        num_workers=args.workers,
        seed=args.seed,
        resume=args.resume,
        synthetic_train=args.synthetic_train,
        synthetic_val=args.synthetic_val,
        augment=not args.no_augment,
        crop_size=args.crop,
        threads=args.threads,
        overwrite=args.overwrite,
    )
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary
        console.print(f"best validation mIoU {result.best_miou:.4f}: {result.best}  (last: {result.last})")
    return 0
