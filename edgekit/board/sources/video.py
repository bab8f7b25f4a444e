"""Video files through OpenCV's FFmpeg backend; read in order, never dropping a frame."""

from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from edgekit.board.sources.base import Source
from edgekit.errors import EdgekitError


class VideoFileSource(Source):
    """A video file; a file that ends well before the length its header gives is reported as truncated."""

    live = False

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        super().__init__(str(self.path))
        if not self.path.is_file():
            raise EdgekitError(f"video file not found: {self.path}")
        self.capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self.capture.isOpened():
            raise EdgekitError(f"cannot open video {self.path}: not a video OpenCV/FFmpeg can decode, or corrupt")
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        fps = float(self.capture.get(cv2.CAP_PROP_FPS))
        self.fps = fps if fps > 0 else None
        self.size = (int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._decoded = 0
        self._start()

    def _read(self) -> Optional[np.ndarray]:
        ok, image = self.capture.read()
        if not ok:
            self._check_complete()
            return None
        self._decoded += 1
        return image

    def _check_complete(self) -> None:
        """A decode that stops more than a frame or two short of the header's count means a damaged file."""
        if self.frame_count is None:
            return
        missing = self.frame_count - self._decoded
        if missing > max(2, self.frame_count // 100):
            raise EdgekitError(
                f"video {self.path} ended after {self._decoded} of {self.frame_count} frames: the file is truncated "
                "or corrupt (re-encode or re-copy it)"
            )

    def describe(self) -> str:
        rate = f"{self.fps:.2f} fps" if self.fps else "unknown fps"
        length = f"{self.frame_count} frames" if self.frame_count else "unknown length"
        return f"video file {self.path} ({self.size[0]}x{self.size[1]}, {rate}, {length}; OpenCV FFmpeg)"

    def _release(self) -> None:
        self.capture.release()
