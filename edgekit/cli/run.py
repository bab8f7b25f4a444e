"""``edgekit run``: a model on a camera, stream, video, image folder or GStreamer pipeline, into any outputs."""

import argparse
import logging
import signal
from pathlib import Path
from typing import Any, Dict

SOURCE_HELP = (
    "0 or v4l2:///dev/video0 (USB camera), csi://0 (Jetson CSI camera), rtsp://... or http://... (stream), "
    "a video file, an image folder or a quoted glob ('frames/*.png'), or gst://<GStreamer pipeline>"
)
INTERRUPTED_EXIT = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="segment a live camera, stream, video or image folder with a bundle or ONNX model",
        description="Capture, preprocessing, inference, overlay and output run as overlapping threads.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--bundle", type=Path, help="bundle folder made by `edgekit build`")
    model.add_argument("--onnx", type=Path, help="an ONNX model exported by `edgekit export`")
    model.add_argument("--checkpoint", type=Path, help="an edgekit checkpoint (runs on PyTorch)")
    parser.add_argument("--source", required=True, help=SOURCE_HELP)
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Output, backend and pipeline flags shared by `edgekit run` and `edgekit demo`."""
    from edgekit.board.backends import BACKENDS
    from edgekit.board.pipeline import STAGE_NICENESS
    from edgekit.cli.common import fraction, non_negative_int, positive_float, positive_int

    out = parser.add_argument_group("outputs (several at once; none = throughput only)")
    out.add_argument("--output", type=Path, help="write the overlay video (.mp4, .avi)")
    out.add_argument("--save-frames", type=Path, metavar="DIR", help="write one overlay PNG per frame")
    out.add_argument("--serve", metavar="[HOST]:PORT", help="MJPEG live view for a browser, e.g. :8080")
    out.add_argument("--show", action="store_true", help="show a window (needs a display and GUI OpenCV)")
    out.add_argument(
        "--output-fps", type=positive_float, help="frame rate of --output (default: the source's, else 30)"
    )
    out.add_argument("--stats", type=Path, help="write the run statistics as JSON")
    run = parser.add_argument_group("backend and pipeline")
    run.add_argument("--backend", choices=BACKENDS, default="auto", help="default auto: TensorRT engine if usable")
    run.add_argument("--threads", type=non_negative_int, default=0, help="onnxruntime intra-op threads (0 = all cores)")
    run.add_argument("--no-spin", action="store_true", help="onnxruntime workers sleep instead of busy-waiting")
    run.add_argument(
        "--measure-inference", type=non_negative_int, default=0, metavar="N",
        help="first time N inferences alone on the first frame, to compare the pipeline FPS with",
    )  # fmt: skip
    run.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    run.add_argument(
        "--stall-timeout", type=positive_float, default=10.0, help="seconds without a frame = stalled (10)"
    )
    run.add_argument("--queue-size", type=positive_int, default=2, help="frames buffered between stages (2)")
    run.add_argument("--alpha", type=fraction, default=0.5, help="overlay opacity from 0 to 1 (0.5)")
    run.add_argument(
        "--stage-niceness", type=int, default=STAGE_NICENESS, metavar="N",
        help=f"run every stage but inference N steps nicer, so inference gets the CPU first "
        f"(Linux; 0 = equal priority; default {STAGE_NICENESS})",
    )  # fmt: skip
    cam = parser.add_argument_group("camera requests (v4l2://, csi://)")
    cam.add_argument("--width", type=positive_int, help="capture width")
    cam.add_argument("--height", type=positive_int, help="capture height")
    cam.add_argument("--fps", type=positive_float, help="capture rate")


def camera_options(args: argparse.Namespace) -> Dict[str, Any]:
    requests = {"width": args.width, "height": args.height, "fps": args.fps}
    return {key: value for key, value in requests.items() if value is not None}


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path the flags name, checked before the model loads (not after the run, losing it)."""
    from edgekit.board.outputs import check_output_dir, check_output_file

    if args.output:
        check_output_file(args.output, "--output video")
    if args.save_frames:
        check_output_dir(args.save_frames, "--save-frames folder")
    if args.stats:
        check_output_file(args.stats, "--stats file")


def execute(args: argparse.Namespace, model: Any, source_uri: str) -> int:
    """Open backend, source and sinks from the parsed flags, run, print a summary; the exit status."""
    from edgekit.board.opencv import describe_opencv

    logging.getLogger("edgekit").info(describe_opencv())  # before anything imports cv2 and fails less clearly
    from edgekit.board.backends import choose_backend, open_backend, resolve_model
    from edgekit.board.pipeline import model_inputs, run_pipeline
    from edgekit.board.sinks import open_sinks
    from edgekit.board.sources import open_source
    from edgekit.cli.common import console

    check_outputs(args)
    resolved = resolve_model(model)
    preprocessing, classes = model_inputs(resolved)
    name, _ = choose_backend(resolved, args.backend)
    options = {"intra_op_threads": args.threads, "spin_wait": not args.no_spin} if name == "onnxruntime" else {}
    backend = open_backend(resolved, args.backend, **options)
    with backend:
        source = open_source(source_uri, **camera_options(args))
        try:
            # a live source's video runs at the rate the pipeline delivers, measured; a file's at its own rate
            fps = args.output_fps or (None if source.live else source.fps)
            sinks = open_sinks(args.output, args.save_frames, args.serve, args.show, fps=fps, measure_rate=source.live)
        except BaseException:
            source.close()
            raise
        stats = run_pipeline(
            backend, source, sinks, preprocessing, classes,
            queue_size=args.queue_size, stall_timeout=args.stall_timeout,
            inference_only_iterations=args.measure_inference, max_frames=args.max_frames, alpha=args.alpha,
            stats_path=args.stats, stage_niceness=args.stage_niceness,
        )  # fmt: skip
    rate = "FPS not measured (a rate needs 2 frames)" if stats.fps is None else f"{stats.fps:.2f} FPS end-to-end"
    summary = (
        f"{stats.frames_out} frames out of {stats.frames_in} in, {stats.frames_dropped} dropped, "
        f"{stats.frames_skipped} skipped; {rate}"
    )
    e2e = stats.latency.get("end_to_end", {})
    if e2e.get("p50_ms") is not None:
        summary += f", latency p50 {e2e['p50_ms']:.1f} / p99 {e2e['p99_ms']:.1f} ms"
    if stats.end_to_end_vs_inference is not None:
        summary += f" ({stats.end_to_end_vs_inference:.2f}x inference's p50)"
    if stats.frames_dropped_between_stages:
        summary += f", {stats.frames_dropped_between_stages} dropped between stages (replaced by newer)"
    if stats.inference_only:
        summary += f"; inference alone {stats.inference_only['fps']:.2f} FPS (ratio {stats.fps_vs_inference_only})"
    console.print(f"{stats.stopped_by}: {summary}")
    for signame, code in INTERRUPTED_EXIT.items():
        if signame in stats.stopped_by:
            return code
    return 0


def run(args: argparse.Namespace) -> int:
    return execute(args, args.bundle or args.onnx or args.checkpoint, args.source)
