"""``edgekit bench``: latency, FPS, memory, power, accuracy and MACs per combination, into one JSON file."""

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, List, Tuple

from edgekit.cli.common import console, non_negative_int, parse_size, positive_float, positive_int


def _csv(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _sizes(text: str) -> List[Tuple[int, int]]:
    return [parse_size(part) for part in _csv(text)]


def _batches(text: str) -> List[int]:
    try:
        values = [int(part) for part in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected batch sizes such as 1,4, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return values


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark models on this device (latency, FPS, memory, power, accuracy, MACs) into a JSON file",
        description="Every model x size x batch x precision is warmed up and timed until the median latency is "
        "stable (95%% CI of the median within --target-ci) or --budget seconds pass.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--models", type=_csv, help="zoo models, e.g. espnet,espnetv2-s2.0 (exported here)")
    source.add_argument("--bundle", type=Path, help="a bundle folder built by `edgekit build`")
    parser.add_argument("--precisions", type=_csv, default=["fp32"], help="fp32,fp16,int8 (default fp32)")
    parser.add_argument("--sizes", type=_sizes, default=[(1024, 512)], help="WxH list (default 1024x512)")
    parser.add_argument("--batch", type=_batches, default=[1], help="batch sizes, e.g. 1,4 (default 1)")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    parser.add_argument("--device", default="auto", help="onnxruntime: auto/cpu/cuda/tensorrt; torch: auto/cpu/cuda")
    parser.add_argument(
        "--threads", type=non_negative_int, default=0, help="CPU inference threads (default: the runtime's)"
    )
    parser.add_argument("--classes", type=positive_int, default=20, help="output classes of zoo models (default 20)")
    parser.add_argument("--images", type=Path, help="folder of real frames: timed input, accuracy, pipeline video")
    parser.add_argument("--labels", type=Path, help="folder of label PNGs named like --images (gives mIoU)")
    parser.add_argument("--video", type=Path, help="video file for the full-pipeline FPS (default: from --images)")
    parser.add_argument(
        "--pipeline-frames", type=non_negative_int, default=60, help="synthetic video length (0: no pipeline)"
    )
    parser.add_argument("--target", help="target profile (targets/*.yaml) whose peak_gmacs gives fraction of peak")
    parser.add_argument(
        "--budget", type=positive_float, default=20.0, help="seconds of timed runs per combination (20)"
    )
    parser.add_argument(
        "--target-ci", type=positive_float, default=0.02, help="stop when the median's 95%% CI is ±this (0.02)"
    )
    parser.add_argument("--warmup", type=non_negative_int, default=5, help="untimed runs first (default 5)")
    parser.add_argument("--min-runs", type=positive_int, default=20, help="timed runs at least (default 20)")
    parser.add_argument(
        "--profile-runs", type=non_negative_int, default=10, help="runs in the per-layer profile (0 turns it off)"
    )
    parser.add_argument("--no-torch-baseline", action="store_true", help="skip the ESPNet authors' naive loop")
    parser.add_argument("--no-channels-last", action="store_true", help="torch backend: keep NCHW memory format")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="torch backend: no CUDA graph replay")
    parser.add_argument("--workdir", type=Path, help="keep exported ONNX files here (default: a temporary folder)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="results JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit.board.measure.bench import Bench, BenchConfig, write_results
    from edgekit.board.measure.timing import StopRule
    from edgekit.board.outputs import check_output_dir, check_output_file
    from edgekit.errors import EdgekitError

    check_output_file(args.output, "-o results file")  # before the run, not after it
    if args.workdir:
        check_output_dir(args.workdir, "--workdir")
    images: List[Path] = []
    if args.images is not None:
        if not args.images.is_dir():
            raise EdgekitError(f"--images {args.images} is not a folder of images")
        from edgekit.board.preprocess import IMAGE_SUFFIXES, is_image

        images = sorted(p for p in args.images.iterdir() if is_image(p))
        if not images:
            raise EdgekitError(f"--images {args.images} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    config = BenchConfig(
        models=args.models or [],
        bundle=args.bundle,
        precisions=args.precisions,
        sizes=args.sizes,
        batches=args.batch,
        backend=args.backend,
        device=args.device,
        threads=args.threads,
        num_classes=args.classes,
        images=images,
        labels=args.labels,
        video=args.video,
        target=args.target,
        rule=StopRule(warmup=args.warmup, min_runs=args.min_runs, budget_s=args.budget, target_rel_ci=args.target_ci),
        profile_runs=args.profile_runs,
        torch_baseline=not args.no_torch_baseline,
        channels_last=not args.no_channels_last,
        cuda_graphs=not args.no_cuda_graphs,
        workdir=args.workdir,
        pipeline_frames=args.pipeline_frames,
    )
    if config.models:  # zoo networks are exported on the host (torch, onnx): imported only for them
        from edgekit.bench.zoo import zoo_workloads

        bench = Bench(config, zoo_workloads)
    else:
        bench = Bench(config)
    command = " ".join(shlex.quote(word) for word in ["edgekit", *sys.argv[1:]])
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("bench", total=None)

        def step(label: str) -> None:
            progress.update(task, description=f"bench {label}", advance=1)

        document = bench.run(progress=step, command=command)
    path = write_results(document, args.output)
    for result in document["results"]:
        what = f"{result['model']} {result['size'][0]}x{result['size'][1]} b{result['batch']} {result['precision']}"
        if result["status"] == "ok":
            latency = result["latency_ms"]
            console.print(
                f"{what} {result['backend']}: p50 {latency['p50_ms']:.2f} ms, {result['fps_inference']:.1f} FPS"
            )
        else:
            console.print(f"{what} {result['backend']}: {result['status']} ({result['reason']})")
    console.print(f"results written to {path}")
    return 0
