"""``edgekit scale``: grow LPS-Net from the official tiny network by latency measured on the target."""

import argparse
from pathlib import Path
from typing import Any, List

from edgekit.cli.common import console, parse_size


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scale",
        help="grow an LPS-Net for a latency budget, measured on the target (LPS-Net's progressive scaling)",
        description="Starts from LPS-Net's tiny network and, each step, grows depth, width or resolution by the "
        "step length that lands nearest the step's target latency, proxy-trains every candidate and keeps the best "
        "mIoU gain per millisecond. family.json, family.md, family.png and final.pt go to -o. Ctrl-C or SIGTERM "
        "leave a state that --resume continues without re-measuring or retraining anything.",
    )
    parser.add_argument("--target", required=True, help="target profile (see `edgekit targets`)")
    parser.add_argument("--budget-ms", type=float, required=True, help="latency budget per frame (p50, ms)")
    parser.add_argument("--data", type=Path, help="dataset folder; omitted: synthetic street scenes")
    parser.add_argument("--input-size", type=parse_size, help="WxH (default: the target profile's)")
    parser.add_argument("--precision", help="fp32 or fp16 (default: the target's)")
    parser.add_argument("--proxy-seconds", type=float, default=60.0, help="training seconds per candidate (60)")
    parser.add_argument("--max-steps", type=int, default=14, help="expansion steps at most (14, as the paper)")
    parser.add_argument("--finetune-seconds", type=float, default=0.0, help="train the final network this long")
    parser.add_argument("--measure", choices=("auto", "here", "kit"), default="auto",
                        help="where latencies are measured: here, or on the board through kits (auto: here when "
                        "this machine is the target)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime/torch threads (default: the runtime's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes for proxy training (0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-budget", type=float, default=2.0, help="seconds of timed runs per network (2)")
    parser.add_argument("--compare", type=_names, default=[], help="zoo networks to measure and proxy-train "
                        "alike for the plot, e.g. lpsnet-s,lpsnet-m,lpsnet-l")  # fmt: skip
    parser.add_argument("--kit-lookahead", type=int, default=3, help="kit flow: step lengths per operator and "
                        "round (more: fewer round trips to the board, more networks to measure; 3)")  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the run in -o")
    parser.add_argument("--latencies", type=Path, help="with --resume: a board's `edgekit scale-measure` output")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgekit.scale.search import DEFAULT_RULE, ScaleConfig, run_scale

    config = ScaleConfig(
        target=args.target,
        budget_ms=args.budget_ms,
        out_dir=args.output,
        data=args.data,
        input_size=args.input_size,
        precision=args.precision,
        proxy_seconds=args.proxy_seconds,
        max_steps=args.max_steps,
        resume=args.resume,
        latencies=args.latencies,
        measure=args.measure,
        threads=args.threads,
        seed=args.seed,
        batch_size=args.batch_size,
        num_workers=args.workers,
        finetune_seconds=args.finetune_seconds,
        compare=args.compare,
        kit_lookahead=args.kit_lookahead,
        rule=replace(DEFAULT_RULE, budget_s=args.timing_budget),
    )
    try:
        result = run_scale(config)
    except KeyboardInterrupt:
        console.print(f"interrupted: {args.output} keeps everything measured and trained; continue with the same "
                      "command plus --resume")  # fmt: skip
        raise
    console.print(result.message)
    console.print(f"family: {result.family}")
    return 0
