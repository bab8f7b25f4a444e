"""Outputs of the runner; several at once (a video file, image files, a browser view, a window), or none."""

from __future__ import annotations

from pathlib import Path

from edgekit.board.sinks.base import NullSink, OutputFrame, Sink

__all__ = ["NullSink", "OutputFrame", "Sink", "open_sinks"]


def open_sinks(
    output: str | Path | None = None,
    save_frames: str | Path | None = None,
    serve: str | None = None,
    show: bool = False,
    fps: float | None = None,
) -> list[Sink]:
    """The sinks the CLI flags ask for; a NullSink when none is asked (a pure throughput run).

    Every sink is opened before the first frame, so a bad path, a busy port or a missing display fails at once.
    """
    sinks: list[Sink] = []
    try:
        if output:
            from edgekit.board.sinks.video import VideoFileSink

            sinks.append(VideoFileSink(output, fps=fps))
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
