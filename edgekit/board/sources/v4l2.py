"""USB/V4L2 cameras (``0``, ``v4l2:///dev/video0``) through OpenCV's V4L2 backend, with size and rate requests."""

import logging
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from edgekit.board.sources.base import Source
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)


class V4L2Source(Source):
    """A V4L2 camera; the driver may grant another size or rate than requested, which is logged."""

    live = True

    def __init__(
        self,
        device: Union[str, int],
        width: Optional[int] = None,
        height: Optional[int] = None,
        fps: Optional[float] = None,
    ) -> None:
        self.device = f"/dev/video{device}" if isinstance(device, int) else str(device)
        super().__init__(f"v4l2://{self.device}")
        if not Path(self.device).exists():
            raise EdgekitError(
                f"camera {self.device} does not exist: list the cameras with `ls /dev/video*` or "
                "`v4l2-ctl --list-devices`, and check that this user may access them (group video)"
            )
        self.capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not self.capture.isOpened():
            raise EdgekitError(
                f"camera {self.device} exists but cannot be opened: it is busy (see `fuser {self.device}`) "
                "or not a video capture device"
            )
        requests = {cv2.CAP_PROP_FRAME_WIDTH: width, cv2.CAP_PROP_FRAME_HEIGHT: height, cv2.CAP_PROP_FPS: fps}
        for prop, value in requests.items():
            if value:
                self.capture.set(prop, float(value))
        self.size = (int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        granted_fps = float(self.capture.get(cv2.CAP_PROP_FPS))
        self.fps = granted_fps if granted_fps > 0 else None
        if (width and width != self.size[0]) or (height and height != self.size[1]) or (fps and fps != self.fps):
            log.warning(
                "camera %s: requested %sx%s @ %s fps, the driver gives %dx%d @ %s fps",
                self.device, width, height, fps, *self.size, self.fps,
            )  # fmt: skip
        ok, _ = self.capture.read()
        if not ok:
            self.capture.release()
            raise EdgekitError(
                f"camera {self.device} opened but delivers no frames: another program may hold it "
                f"(`fuser {self.device}`), or the requested mode is not supported"
            )
        self._start()

    def _read(self) -> Optional[np.ndarray]:
        ok, image = self.capture.read()
        if not ok:
            raise EdgekitError(f"camera {self.device} stopped delivering frames (unplugged?)")
        return image

    def describe(self) -> str:
        rate = f"{self.fps:.1f} fps" if self.fps else "unknown fps"
        return f"V4L2 camera {self.device} ({self.size[0]}x{self.size[1]} @ {rate}; OpenCV V4L2, newest frame)"

    def _release(self) -> None:
        self.capture.release()
