"""``edgekit scale``: grow LPS-Net from the official tiny network by latency measured on the target."""

import argparse
from functools import partial
from pathlib import Path
from typing import Any, Dict, List

from edgekit.cli.common import console, dataclass_defaults, library_defaults_help, parse_size


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scale",
        help="grow an LPS-Net for a latency budget, measured on the target (LPS-Net's progressive scaling)",
        description="Starts from LPS-Net's tiny network and, each step, grows depth, width or resolution by the "
        "step length that lands nearest the step's target latency, proxy-trains every candidate and keeps the best "
        "mIoU gain per millisecond. family.json, family.md, family.png and final.pt go to -o. Ctrl-C or SIGTERM "
        "leave a state that --resume continues without re-measuring or retraining anything. Options left out take "
        "the defaults of the library's edgekit.scale.ScaleConfig.",
        formatter_class=library_defaults_help(_defaults),
    )
    parser.add_argument("--target", required=True, help="target profile (see `edgekit targets`)")
    parser.add_argument("--budget-ms", type=float, required=True, help="latency budget per frame (p50, ms)")
    parser.add_argument("-o", "--output", dest="out_dir", metavar="OUTPUT", type=Path, required=True,
                        help="output folder")  # fmt: skip
    # Options left out stay out of the namespace, so ScaleConfig's defaults apply: one owner for each default.
    option = partial(parser.add_argument, default=argparse.SUPPRESS)
    option("--data", type=Path, help="dataset folder; omitted: synthetic street scenes")
    option("--input-size", type=parse_size, help="WxH (default: the target profile's)")
    option("--precision", help="fp32 or fp16 (default: the target's)")
    option("--proxy-seconds", type=float, help="training seconds per candidate")
    option("--max-steps", type=int, help="expansion steps at most (default: the paper's count)")
    option("--finetune-seconds", type=float, help="train the final network this long")
    option("--measure", choices=("auto", "here", "kit"),
           help="where latencies are measured: here, or on the board through kits (auto: here when this machine is "
           "the target)")  # fmt: skip
    option("--threads", type=int, help="onnxruntime/torch threads (default: the runtime's)")
    option("--batch-size", type=int, help="images per proxy-training step")
    option("--workers", dest="num_workers", metavar="N", type=int, help="data-loading processes for proxy training")
    option("--seed", type=int, help="seed of proxy training and the synthetic scenes")
    option("--timing-budget", type=float, help="seconds of timed runs per network")
    option("--compare", type=_names, help="zoo networks to measure and proxy-train alike for the plot, e.g. "
           "lpsnet-s,lpsnet-m,lpsnet-l")  # fmt: skip
    option("--kit-lookahead", type=int, help="kit flow: step lengths per operator and round (more: fewer round "
           "trips to the board, more networks to measure)")  # fmt: skip
    option("--resume", action="store_true", help="continue the run in -o")
    option("--latencies", type=Path, help="with --resume: a board's `edgekit scale-measure` output")
    parser.set_defaults(func=run)


def _defaults() -> Dict[str, Any]:
    from edgekit.scale.search import DEFAULT_RULE, ScaleConfig

    return {**dataclass_defaults(ScaleConfig), "timing_budget": DEFAULT_RULE.budget_s}


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields, replace

    from edgekit.scale.search import DEFAULT_RULE, ScaleConfig, run_scale

    given = {f.name: getattr(args, f.name) for f in fields(ScaleConfig) if hasattr(args, f.name)}
    if hasattr(args, "timing_budget"):
        given["rule"] = replace(DEFAULT_RULE, budget_s=args.timing_budget)
    try:
        result = run_scale(ScaleConfig(**given))
    except KeyboardInterrupt:
        console.print(f"interrupted: {args.out_dir} keeps everything measured and trained; continue with the same "
                      "command plus --resume")  # fmt: skip
        raise
    console.print(result.message)
    console.print(f"family: {result.family}")
    return 0
