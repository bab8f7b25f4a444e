"""Any GStreamer pipeline (``gst://videotestsrc ! ...``), run by GStreamer itself through PyGObject's appsink.

PyGObject is preferred because pip's OpenCV wheels are built without GStreamer; when PyGObject is missing and
this OpenCV has GStreamer, OpenCV's CAP_GSTREAMER runs the pipeline instead. Which one is in use is logged and
shown by ``describe()``. A pipeline that reaches PAUSED without prerolling (NO_PREROLL) is live and gets the
newest-frame policy; a pipeline that prerolls (a file, ``videotestsrc num-buffers=N``) is read in order.
"""

import contextlib
import ctypes
import importlib.util
import logging
import threading
import time
from typing import Any, Optional, Tuple

import cv2
import numpy as np

from edgekit.board.sources.base import Source, StallError
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

SINK_NAME = "edgekit_sink"
STOP_TIMEOUT = 2.0  # seconds to wait for a pipeline to reach NULL when closing
PULL_SLICE = 0.25  # seconds between looks at the bus while waiting for a frame
BGR_TAIL = f"videoconvert ! video/x-raw,format=BGR ! appsink name={SINK_NAME}"
TO_BGR = {
    "BGR": None,
    "BGRx": cv2.COLOR_BGRA2BGR,
    "BGRA": cv2.COLOR_BGRA2BGR,
    "RGB": cv2.COLOR_RGB2BGR,
    "RGBx": cv2.COLOR_RGBA2BGR,
    "RGBA": cv2.COLOR_RGBA2BGR,
    "GRAY8": cv2.COLOR_GRAY2BGR,
}
CHANNELS = {"BGR": 3, "RGB": 3, "GRAY8": 1}


def pygobject_gstreamer() -> Optional[Any]:
    """The initialised ``Gst`` module, or None when PyGObject or GStreamer's introspection data is missing."""
    if importlib.util.find_spec("gi") is None:
        return None
    _keep_gcc_unwinder_first()
    import gi

    try:
        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp  # type: ignore[attr-defined,unused-ignore]  # noqa: F401 - GstApp adds try_pull_sample
    except (ValueError, ImportError):
        return None
    Gst.init(None)
    return Gst


def _keep_gcc_unwinder_first() -> None:
    """Load libgcc_s globally before libgstreamer, which links libunwind: otherwise libunwind's ``_Unwind_*``
    symbols win for every library loaded later, and PyTorch (imported after GStreamer in the same process)
    crashes the first time its JIT throws a C++ exception (seen with torch.onnx.export)."""
    with contextlib.suppress(OSError):  # not glibc/gcc: nothing to keep first
        ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)


def opencv_has_gstreamer() -> bool:
    return any(
        line.strip().startswith("GStreamer:") and "YES" in line for line in cv2.getBuildInformation().splitlines()
    )


def with_appsink(pipeline: str) -> str:
    """Append a BGR appsink unless the pipeline already ends in one."""
    return pipeline if "appsink" in pipeline else f"{pipeline} ! {BGR_TAIL}"


def gstreamer_engine() -> str:
    """'pygobject' or 'opencv', or a clear error saying how to get either."""
    if pygobject_gstreamer() is not None:
        return "pygobject"
    if opencv_has_gstreamer():
        return "opencv"
    raise EdgekitError(
        "gst:// sources need GStreamer: install PyGObject and GStreamer (`make gstreamer`, or apt-get install "
        "python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base/good and pip install 'pygobject<3.51'), "
        "or an OpenCV built with GStreamer (JetPack's)"
    )


class GStreamerSource(Source):
    """A GStreamer pipeline description ending in an appsink (one is appended when absent)."""

    def __init__(self, pipeline: str, open_timeout: float = 10.0, uri: Optional[str] = None) -> None:
        super().__init__(uri or f"gst://{pipeline}")
        self.pipeline_text = with_appsink(pipeline)
        self.engine = gstreamer_engine()
        log.info("GStreamer through %s", "PyGObject appsink" if self.engine == "pygobject" else "OpenCV CAP_GSTREAMER")
        if self.engine == "pygobject":
            self._open_pygobject(open_timeout)
        else:
            self._open_opencv()
        self._start()

    def _open_pygobject(self, open_timeout: float) -> None:
        Gst = pygobject_gstreamer()
        assert Gst is not None
        self.Gst = Gst
        try:
            self.pipeline = Gst.parse_launch(self.pipeline_text)
        except Exception as exc:  # GLib.Error: syntax error or unknown element
            raise EdgekitError(f"invalid GStreamer pipeline {self.pipeline_text!r}: {exc}") from exc
        self.appsink: Any = self.pipeline.get_by_name(SINK_NAME) or next(
            (e for e in self.pipeline.iterate_sinks() if e.get_factory().get_name() == "appsink"), None
        )
        if self.appsink is None:
            raise EdgekitError(f"GStreamer pipeline {self.pipeline_text!r} has no appsink to read frames from")
        self.appsink.set_property("sync", False)
        paused = self.pipeline.set_state(Gst.State.PAUSED)
        self.live = paused == Gst.StateChangeReturn.NO_PREROLL
        if self.live:  # the grabber keeps the newest frame; GStreamer need not queue any
            self.appsink.set_property("max-buffers", 1)
            self.appsink.set_property("drop", True)
        if paused == Gst.StateChangeReturn.FAILURE or self.pipeline.set_state(Gst.State.PLAYING) == (
            Gst.StateChangeReturn.FAILURE
        ):
            self._raise_bus_error("cannot start")
        if not self.live:  # prerolling means the first frame is ready; a live pipeline has nothing to wait for
            result, _, _ = self.pipeline.get_state(int(open_timeout * Gst.SECOND))
            error = self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            if result == Gst.StateChangeReturn.FAILURE or error is not None:
                self._raise_bus_error("cannot start", error)
            if result == Gst.StateChangeReturn.ASYNC:
                self.pipeline.set_state(Gst.State.NULL)
                raise StallError(f"{self.uri} delivered no first frame within {open_timeout:.0f} s")
        self.size: Optional[Tuple[int, int]] = None

    def _open_opencv(self) -> None:
        self.capture = cv2.VideoCapture(self.pipeline_text, cv2.CAP_GSTREAMER)
        if not self.capture.isOpened():
            raise EdgekitError(f"OpenCV/GStreamer cannot open pipeline {self.pipeline_text!r}")
        self.live = not self.capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
        self.size = (int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def _raise_bus_error(self, what: str, message: Any = None) -> None:
        Gst = self.Gst
        message = message or self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        self.pipeline.set_state(Gst.State.NULL)
        detail = "no error message on the bus"
        if message is not None:
            error, debug = message.parse_error()
            detail = f"{error.message} ({debug.splitlines()[-1] if debug else 'no details'})"
        raise EdgekitError(f"GStreamer {what} {self.pipeline_text!r}: {detail}")

    def _read(self) -> Optional[np.ndarray]:
        if self.engine == "opencv":
            ok, image = self.capture.read()
            return image if ok else None
        return self._pull(None)

    def _pull(self, timeout: Optional[float]) -> Optional[np.ndarray]:
        """The next sample, pulled in short slices so that an error posted on the bus is raised as it happens
        rather than looking like a stall; None at the end of the stream or once closed."""
        Gst = self.Gst
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = PULL_SLICE if deadline is None else max(min(PULL_SLICE, deadline - time.monotonic()), 0.0)
            sample = self.appsink.try_pull_sample(int(wait * Gst.SECOND))
            if sample is not None:
                return self._to_bgr(sample)
            error = self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            if error is not None:
                self._raise_bus_error("failed while running", error)
            if self.appsink.is_eos() or self._closed:
                return None
            if deadline is not None and time.monotonic() >= deadline:
                raise StallError(f"{self.uri} delivered no frame for {timeout:.1f} s: the pipeline stalled")

    def _read_within(self, timeout: Optional[float]) -> Optional[np.ndarray]:
        """Prerolled (non-live) pipelines are pulled directly, so a stall is caught by the pull's timeout."""
        return self._pull(timeout) if self.engine == "pygobject" else self._read()

    def _to_bgr(self, sample: Any) -> np.ndarray:
        structure = sample.get_caps().get_structure(0)
        width, height = structure.get_value("width"), structure.get_value("height")
        fmt = structure.get_value("format")
        if fmt not in TO_BGR:
            raise EdgekitError(
                f"appsink delivers {fmt}; end the pipeline with `{BGR_TAIL}` or leave the appsink out "
                "(edgekit adds one)"
            )
        buffer = sample.get_buffer()
        ok, info = buffer.map(self.Gst.MapFlags.READ)
        if not ok:
            raise EdgekitError(f"{self.uri}: cannot map a GStreamer buffer")
        try:
            data = np.frombuffer(info.data, np.uint8)
        finally:
            buffer.unmap(info)
        channels = CHANNELS.get(fmt, 4)
        rows = data[: (data.size // height) * height].reshape(height, -1)  # rows may be padded to 4 bytes
        image = rows[:, : width * channels].reshape(height, width, channels)
        self.size = (width, height)
        conversion = TO_BGR[fmt]
        return np.ascontiguousarray(image) if conversion is None else cv2.cvtColor(image, conversion)

    def describe(self) -> str:
        how = "GStreamer via PyGObject appsink" if self.engine == "pygobject" else "GStreamer via OpenCV CAP_GSTREAMER"
        kind = "live" if self.live else "prerolled, never drops"
        return f"{self.uri} ({kind}; {how})"

    def _interrupt(self) -> bool:
        """Stop the pipeline; an element blocked in its own work (a dead camera, a sleeping identity) can hold
        set_state(NULL) for as long as it likes, so that wait is bounded and then left to the process exit."""
        if self.engine != "pygobject":
            return True
        stopper = threading.Thread(target=self.pipeline.set_state, args=(self.Gst.State.NULL,), daemon=True)
        stopper.start()
        stopper.join(STOP_TIMEOUT)
        if stopper.is_alive():
            log.warning("GStreamer pipeline %s did not stop within %.0f s; leaving it to the process exit", self.uri,
                        STOP_TIMEOUT)  # fmt: skip
            return False
        return True

    def _release(self) -> None:
        if self.engine == "opencv":
            self.capture.release()
