"""RTSP/HTTP/RTMP streams through OpenCV's FFmpeg backend, reconnecting with exponential back-off."""

import logging
import re
import time
from typing import Optional

import cv2
import numpy as np

from edgekit.board.sources.base import Source
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")


def redact(url: str) -> str:
    """rtsp://user:secret@host -> rtsp://user:***@host, for logs and stats files."""
    return re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", url)


class NetworkStreamSource(Source):
    """A network stream. Live streams get the newest-frame policy and reconnect after a failed read; a URL
    that serves a finite file (the container gives a frame count) is read in order like a local file."""

    def __init__(
        self,
        url: str,
        open_timeout: float = 5.0,
        read_timeout: float = 5.0,
        reconnect_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        super().__init__(redact(url))
        self.url = url
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.reconnect_attempts, self.backoff, self.max_backoff = reconnect_attempts, backoff, max_backoff
        self.reconnects = 0
        self.capture = self._connect("connect to")
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self.live = self.frame_count is None
        fps = float(self.capture.get(cv2.CAP_PROP_FPS))
        self.fps = fps if 0 < fps < 1000 else None
        self._start()

    def _open_once(self) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout * 1000),
        ]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def _connect(self, what: str) -> cv2.VideoCapture:
        """Open, retrying with doubling delays; a clear error once the attempts are used up."""
        delay = self.backoff
        for attempt in range(1, self.reconnect_attempts + 1):
            capture = self._open_once()
            if capture.isOpened():
                return capture
            capture.release()
            if attempt < self.reconnect_attempts:
                log.warning("cannot %s %s (attempt %d/%d); retrying in %.1f s", what, self.uri, attempt,
                            self.reconnect_attempts, delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise EdgekitError(
            f"cannot {what} {self.uri} after {self.reconnect_attempts} attempts: nothing answers there or it is not "
            "a stream FFmpeg can read; check the URL, that the camera/server is running, and the network"
        )

    def _read(self) -> Optional[np.ndarray]:
        ok, image = self.capture.read()
        if ok:
            return image
        if not self.live:
            return None
        log.warning("stream %s: read failed; reconnecting", self.uri)
        self.capture.release()
        self.capture = self._connect("reconnect to")
        self.reconnects += 1
        ok, image = self.capture.read()
        if not ok:
            raise EdgekitError(f"stream {self.uri} reconnected but delivers no frames")
        return image

    def describe(self) -> str:
        kind = "live, newest frame, reconnects with back-off" if self.live else f"{self.frame_count} frames, in order"
        return f"network stream {self.uri} ({kind}; OpenCV FFmpeg)"

    def _release(self) -> None:
        self.capture.release()
