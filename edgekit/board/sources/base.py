"""What every frame source shares: frames with capture times, and the newest-frame policy of live sources.

A live source (camera, network stream, live GStreamer pipeline) is read by a grabber thread that keeps only the
newest frame, so the pipeline always infers what the camera sees now and counts the stale frames it replaced;
files and folders are read on demand and never drop a frame (the pipeline's bounded queues slow them down
instead). A live source that delivers nothing for ``timeout`` seconds raises ``StallError``.
"""

import abc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)


class StallError(EdgekitError):
    """A live source delivered no frame within the stall timeout."""


@dataclass
class Frame:
    image: np.ndarray  # HxWx3 uint8 BGR
    index: int  # position in the source; for live sources it counts dropped frames too
    timestamp: float  # time.monotonic() when the frame was captured or decoded
    name: str  # file name for image sequences, else the zero-padded index


class LatestFrame:
    """A grabber thread calling ``grab`` in a loop and keeping only the newest frame."""

    def __init__(self, grab: Callable[[], Optional[np.ndarray]], what: str) -> None:
        self._grab = grab
        self._what = what
        self._condition = threading.Condition()
        self._image: Optional[np.ndarray] = None
        self._timestamp = 0.0
        self._grabbed = 0  # frames produced by the source
        self._taken = 0  # index of the last frame handed out
        self._ended = False
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"grab {what}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._grab()
                with self._condition:
                    if image is None:
                        self._ended = True
                    else:
                        if self._image is not None:
                            self.dropped += 1
                        self._image, self._timestamp = image, time.monotonic()
                        self._grabbed += 1
                    self._condition.notify_all()
                if image is None:
                    return
        except BaseException as exc:  # handed to the reader, which raises it in the pipeline
            with self._condition:
                self._error = exc
                self._condition.notify_all()

    def get(self, timeout: Optional[float]) -> Optional[Tuple[np.ndarray, float, int]]:
        """(image, timestamp, index) of a frame newer than the last one taken; None at the end of the stream."""
        with self._condition:
            ready = self._condition.wait_for(
                lambda: self._image is not None or self._ended or self._error is not None, timeout
            )
            if self._error is not None:
                raise self._error
            if self._image is not None:
                image, self._image = self._image, None
                self._taken = self._grabbed - 1
                return image, self._timestamp, self._taken
            if self._ended:
                return None
            assert not ready
            raise StallError(f"{self._what} delivered no frame for {timeout:.1f} s: the stream stalled")

    def stop(self, join_timeout: float = 2.0) -> bool:
        """Ask the grabber to stop; True when it has (a read blocked in a stalled driver may not return)."""
        self._stop.set()
        self._thread.join(join_timeout)
        return not self._thread.is_alive()


class Source(abc.ABC):
    """Frames from one URI. Subclasses implement ``_read`` and ``describe``, and call ``_start`` when open."""

    uri: str
    live: bool = False
    fps: Optional[float] = None  # nominal rate when the source knows it (file header, camera mode)
    frame_count: Optional[int] = None  # known length of files and folders

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.skipped: List[str] = []  # unreadable frames skipped, with the reason
        self._latest: Optional[LatestFrame] = None
        self._index = 0
        self._closed = False

    @abc.abstractmethod
    def _read(self) -> Optional[np.ndarray]:
        """The next image (HxWx3 uint8 BGR), or None at the end; blocking; raises EdgekitError on failure."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for logs and stats: what is read, how, at what size/rate."""

    def _read_within(self, timeout: Optional[float]) -> Optional[np.ndarray]:
        """``_read`` for in-order sources; those that can wait with a timeout override this to detect stalls."""
        return self._read()

    def _release(self) -> None:  # noqa: B027 - sources without handles need nothing
        """Close the underlying handle (called after the grabber has stopped)."""

    def _interrupt(self) -> bool:
        """Unblock a grabber waiting in ``_read`` (GStreamer: stop the pipeline); False when that failed.

        Most reads return within a frame period anyway, so by default there is nothing to do.
        """
        return True

    def _start(self) -> None:
        """Begin grabbing in the background when live; the first ``read`` then returns the newest frame."""
        log.info("source: %s", self.describe())
        if self.live:
            self._latest = LatestFrame(self._read, self.describe())

    @property
    def dropped(self) -> int:
        return self._latest.dropped if self._latest else 0

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The next frame (the newest one for live sources), None at the end; StallError after ``timeout`` s."""
        if self._latest is not None:
            got = self._latest.get(timeout)
            if got is None:
                return None
            newest, timestamp, index = got
            return Frame(image=newest, index=index, timestamp=timestamp, name=f"{index:06d}")
        image = self._read_within(timeout)
        if image is None:
            return None
        frame = Frame(image=image, index=self._index, timestamp=time.monotonic(), name=self._frame_name())
        self._index += 1
        return frame

    def _frame_name(self) -> str:
        return f"{self._index:06d}"

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        interrupted = self._interrupt()
        if self._latest is not None and not self._latest.stop(join_timeout=2.0 if interrupted else 0.0):
            log.warning("source %s: the grabber is blocked in a read; leaving it to end with the process", self.uri)
            return
        self._release()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
