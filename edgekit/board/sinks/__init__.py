"""Outputs of the runner; several at once (a video file, image files, a browser view, a window), or none."""

from pathlib import Path
from typing import List, Optional, Union

from edgekit.board.sinks.base import NullSink, OutputFrame, Sink

__all__ = ["NullSink", "OutputFrame", "Sink", "open_sinks"]


def open_sinks(
    output: Optional[Union[str, Path]] = None,
    save_frames: Optional[Union[str, Path]] = None,
    serve: Optional[str] = None,
    show: bool = False,
    fps: Optional[float] = None,
    measure_rate: bool = False,
) -> List[Sink]:
    """The sinks the CLI flags ask for; a NullSink when none is asked (a pure throughput run).

    ``fps`` and ``measure_rate``: the rate of the video, see VideoFileSink (a live source's is measured).

    Every sink is opened before the first frame, so a bad path, a busy port or a missing display fails at once.
    """
    sinks: List[Sink] = []
    try:
        if output:
            from edgekit.board.sinks.video import VideoFileSink

            sinks.append(VideoFileSink(output, fps=fps, measure_rate=measure_rate))
        if save_frames:
            from edgekit.board.sinks.images import ImageFilesSink

            sinks.append(ImageFilesSink(save_frames))
        if serve:
            from edgekit.board.sinks.mjpeg import MjpegSink

            sinks.append(MjpegSink(serve))
        if show:
            from edgekit.board.sinks.window import WindowSink

            sinks.append(WindowSink())
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks or [NullSink()]
