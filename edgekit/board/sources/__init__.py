"""Frame sources behind URIs, in the spirit of jetson-utils' videoSource.

=================================  =========================================================================
``0``, ``v4l2:///dev/video0``      USB/V4L2 camera (options: width, height, fps)
``csi://0``                        Jetson CSI camera through nvarguscamerasrc (width, height, fps, flip_method)
``rtsp://``, ``http://``, ...      network stream, reconnecting with back-off (open_timeout, read_timeout,
                                   reconnect_attempts, backoff, max_backoff)
``gst://<pipeline>``               any GStreamer pipeline, through PyGObject's appsink (open_timeout)
``video.mp4``, ``file://...``      video file
``folder/``, ``'frames/*.png'``    image folder or glob, sorted
=================================  =========================================================================
"""

from pathlib import Path
from typing import Any, Union

from edgekit.board.preprocess import IMAGE_SUFFIXES
from edgekit.board.sources.base import Frame, Source, StallError
from edgekit.board.sources.images import ImageSequenceSource, is_glob
from edgekit.errors import EdgekitError

__all__ = ["Frame", "Source", "StallError", "open_source"]


def open_source(uri: Union[Union[str, int], Path], **options: Any) -> Source:
    """Open the source a URI names; ``options`` go to that kind's class (see the table above)."""
    text = str(uri)
    scheme, _, rest = text.partition("://") if "://" in text else ("", "", text)
    scheme = scheme.lower()
    if isinstance(uri, int) or text.isdigit():
        from edgekit.board.sources.v4l2 import V4L2Source

        return V4L2Source(int(text), **options)
    if scheme == "v4l2":
        from edgekit.board.sources.v4l2 import V4L2Source

        return V4L2Source(rest if rest.startswith("/") else f"/dev/{rest}", **options)
    if scheme == "csi":
        from edgekit.board.sources.csi import open_csi

        if not rest.isdigit():
            raise EdgekitError(f"csi:// takes a sensor number such as csi://0, not {text!r}")
        return open_csi(int(rest), **options)
    if scheme == "gst":
        from edgekit.board.sources.gstreamer import GStreamerSource

        return GStreamerSource(rest, **options)
    from edgekit.board.sources.network import SCHEMES, NetworkStreamSource

    if scheme in SCHEMES:
        return NetworkStreamSource(text, **options)
    if scheme not in ("", "file"):
        raise EdgekitError(f"unknown source scheme {scheme}:// in {text!r}; see `edgekit run --help` for the URIs")
    path = Path(rest)
    if options:
        raise EdgekitError(f"files and folders take no options, got {', '.join(options)}")
    if path.is_dir() or is_glob(rest) or path.suffix.lower() in IMAGE_SUFFIXES:
        if not is_glob(rest) and not path.exists():
            raise EdgekitError(f"source not found: {path}")
        return ImageSequenceSource(rest)
    if not path.exists():
        raise EdgekitError(f"source not found: {path} (not a file, folder, glob, camera index or URL)")
    from edgekit.board.sources.video import VideoFileSource

    return VideoFileSource(path)
