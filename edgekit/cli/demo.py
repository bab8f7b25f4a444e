"""``edgekit demo``: the bundle `make demo` builds, on a street sample, into an overlay video and stats.

With no arguments the sample is a short synthetic street video generated on the fly when the bundle's model was
trained on synthetic scenes (real photos would only show the domain gap), else ../shared/samples' real street
sequence when that folder is there; ``--source 0`` (or any live URI) makes it the live camera demo,
served to a browser at :8080 unless a window or another output is asked for.
"""

import argparse
from pathlib import Path
from typing import Any, Optional, Tuple

from edgekit.cli.run import SOURCE_HELP, add_pipeline_arguments, execute

# `make demo`'s bundle, then `edgekit build --target jetson-nano`'s default output, then the oldest layout.
DEFAULT_BUNDLES = (
    Path("runs/bundles/demo-jetson-nano"),
    Path("runs/bundles/espnet-jetson-nano"),
    Path("out/jetson-nano"),
)
DEMO_DIR = Path("runs/demo")
SHARED_SEQUENCE = Path("..") / "shared" / "samples" / "labelme-street-sequence"
SYNTHETIC = {"frames": 60, "size": (640, 360), "fps": 15.0, "seed": 0}
SAMPLE_FPS = 5.0  # the shared sequence has five frames: one second of video
DEMO_FILES = ("overlay.mp4", "stats.json", "synthetic-street.mp4")  # what a demo writes into --out-dir


def is_demo_folder(folder: Path) -> bool:
    """Whether every entry of ``folder`` is a file the demo writes (so a rerun may replace them)."""
    return all(entry.name in DEMO_FILES for entry in folder.iterdir())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the demo bundle on a street sample (or --source 0: the live camera demo)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bundle", type=Path, help=f"default: the first of {', '.join(map(str, DEFAULT_BUNDLES))}")
    parser.add_argument("--source", help=f"default: the bundled street sample; or {SOURCE_HELP}")
    parser.add_argument("--out-dir", type=Path, default=DEMO_DIR, help=f"where outputs go (default {DEMO_DIR})")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def default_bundle() -> Path:
    from edgekit.board.bundle import MANIFEST
    from edgekit.errors import EdgekitError

    for candidate in DEFAULT_BUNDLES:
        if (candidate / MANIFEST).is_file():
            return candidate
    raise EdgekitError(
        f"no demo bundle at {DEFAULT_BUNDLES[0]}: run `make demo` (it builds one), or pass --bundle DIR "
        "from `edgekit build`"
    )


def sample_source(bundle: Path, out_dir: Path) -> Tuple[str, Optional[float], str]:
    """(source URI, output fps, why): a sample from the domain the bundle's model knows."""
    from edgekit.board.bundle import Bundle

    source = Bundle.load(bundle, verify=False).manifest.metrics.get("model_source", {})
    synthetic_model = source.get("trained_on") == "synthetic street scenes"
    if SHARED_SEQUENCE.is_dir() and not synthetic_model:
        return str(SHARED_SEQUENCE), SAMPLE_FPS, "real street frames from ../shared/samples"
    from edgekit.board.synthetic import synthetic_video

    path = out_dir / "synthetic-street.mp4"
    if not path.is_file():
        synthetic_video(path, **SYNTHETIC)  # type: ignore[arg-type]
    why = "the model was trained on synthetic scenes" if synthetic_model else "../shared/samples is absent"
    return str(path), None, f"a synthetic street video ({why})"


def run(args: argparse.Namespace) -> int:
    from edgekit.board.outputs import check_output_dir
    from edgekit.cli.common import console

    bundle = args.bundle or default_bundle()
    out_dir: Path = args.out_dir
    check_output_dir(out_dir, "--out-dir", is_demo_folder, f"a demo output folder (only {', '.join(DEMO_FILES)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    args.stats = args.stats or out_dir / "stats.json"
    if args.source is None:
        args.source, args.output_fps, why = sample_source(bundle, out_dir)
        console.print(f"sample: {why}")
        args.measure_inference = args.measure_inference or 10
    live = args.source.isdigit() or ("://" in args.source and not args.source.startswith("file://"))
    if live and not (args.show or args.serve or args.output or args.save_frames):
        args.serve = ":8080"
    elif not live:
        args.output = args.output or out_dir / "overlay.mp4"
    code = execute(args, bundle, args.source)
    for what, path in (("overlay video", args.output), ("frames", args.save_frames), ("stats", args.stats)):
        if path:
            console.print(f"{what}: {path}")
    return code
