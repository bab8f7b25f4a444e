"""Video file output through OpenCV's FFmpeg writer; released on every exit path and read back, so a video said to
be written is playable."""

import logging
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

from edgekit.board.files import free_bytes
from edgekit.board.sinks.base import OutputFrame, Sink
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

# pip's OpenCV has no H.264 encoder; MPEG-4 part 2 in mp4 plays in VLC/ffplay/OpenCV, MJPEG in avi everywhere.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
DEFAULT_FPS = 30.0  # the rate when neither the caller nor the source gives one and none is measured
# A live rate is measured over the first second of capture times, at most this many frames held meanwhile
RATE_WINDOW_S = 1.0
RATE_WINDOW_FRAMES = 30


class VideoFileSink(Sink):
    """Writes at ``fps`` (``--output-fps``, or a file's own rate); without one, at the rate measured from the
    capture times of the first second of frames when ``measure_rate`` (a live source: its pipeline delivers frames
    at whatever rate inference allows, not at the camera's, so a fixed rate plays the video too fast or too slow),
    else at 30. Frames of another size are resized to the first frame's.

    OpenCV reports no write error: ``write`` and ``release`` return nothing and FFmpeg only logs "Failed to write
    frame", so a full disk would leave an unplayable file reported as written. Two checks make it an error
    instead: before each frame, ``free_bytes`` of the folder (a write that fails with ENOSPC has used up every
    block left, so none free means FFmpeg's writes are failing) ends the run at once; after ``release`` the file
    is read back (it must open, index every frame written and decode the last one), which also catches a write
    lost any other way or space freed again in between.
    """

    def __init__(self, path: Union[str, Path], fps: Optional[float] = None, measure_rate: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise EdgekitError(f"output video {self.path}: use one of {', '.join(FOURCC)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps: Optional[float] = fps or (None if measure_rate else DEFAULT_FPS)  # None while measuring
        self.measured = self.fps is None
        self.writer: Optional[cv2.VideoWriter] = None
        self.size: Optional[Tuple[int, int]] = None
        self.frames = 0  # frames handed to the encoder
        self._held: List[Tuple[np.ndarray, float]] = []  # (image, capture time) while the rate is measured
        self._first_capture: Optional[float] = None  # capture times of the first and the last frame encoded
        self._last_capture = 0.0

    def write(self, output: OutputFrame) -> None:
        image = output.image
        if self.size is None:
            self.size = (image.shape[1], image.shape[0])
        elif (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        if free_bytes(self.path.parent) == 0:  # None (a file system without sizes) is not full
            raise EdgekitError(
                f"video {self.path}: the disk is full (no space left in {self.path.parent}) after {self.frames} "
                "frames; the video is incomplete and the rest of the run is not recorded: free space and run again"
            )
        if self.writer is None and self.fps is None:
            self._held.append((image, output.frame.timestamp))
            span = self._held[-1][1] - self._held[0][1]
            if len(self._held) < RATE_WINDOW_FRAMES and span < RATE_WINDOW_S:
                return
            self._open(self._measured_rate())
            return
        if self.writer is None:
            assert self.fps is not None
            self._open(self.fps)
        self._encode(image, output.frame.timestamp)

    def _measured_rate(self) -> float:
        """Frames per second of capture time over the held frames; the first is left out when there are more, as
        the pipeline holds it back for the warm-up and re-stamps it."""
        times = [timestamp for _, timestamp in self._held]
        times = times[1:] if len(times) > 2 else times
        if len(times) < 2 or times[-1] <= times[0]:
            log.info("video %s: too few frames to measure their rate; writing at %.0f fps", self.path, DEFAULT_FPS)
            return DEFAULT_FPS
        rate = (len(times) - 1) / (times[-1] - times[0])
        log.info("video %s: writing at %.2f fps, measured from the frames' capture times", self.path, rate)
        return rate

    def _open(self, fps: float) -> None:
        assert self.size is not None
        fourcc = cv2.VideoWriter.fourcc(*FOURCC[self.path.suffix.lower()])
        writer = cv2.VideoWriter(str(self.path), fourcc, fps, self.size)
        if not writer.isOpened():
            raise EdgekitError(f"cannot write video {self.path}: check the folder is writable")
        self.writer, self.fps = writer, fps
        held, self._held = self._held, []
        for image, timestamp in held:
            self._encode(image, timestamp)

    def _encode(self, image: np.ndarray, timestamp: float) -> None:
        assert self.writer is not None
        self.writer.write(image)
        self.frames += 1
        if self._first_capture is None:
            self._first_capture = timestamp
        self._last_capture = timestamp

    def describe(self) -> str:
        rate = "rate measured from capture times" if self.fps is None else f"{self.fps:.2f} fps"
        return f"video file {self.path} ({FOURCC[self.path.suffix.lower()]}, {rate})"

    def close(self) -> None:
        if self.writer is None and self._held:  # the run ended while the rate was being measured
            self._open(self._measured_rate())
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        self._check_written()
        log.info("wrote %s (%d frames at %.2f fps)", self.path, self.frames, self.fps)
        if self.measured:
            self._warn_if_the_rate_changed()

    def _warn_if_the_rate_changed(self) -> None:
        """The rate is measured once, over the first second; say so when the whole run came at another one."""
        assert self.fps is not None
        first, last = self._first_capture, self._last_capture
        if first is None or self.frames < 3 or last <= first:
            return
        whole_run = (self.frames - 1) / (last - first)
        if abs(whole_run / self.fps - 1) > 0.1:
            log.warning(
                "video %s: written at the %.2f fps of its first second, but the whole run delivered %.2f fps: "
                "it plays %.2fx real speed after the rate changed (pass --output-fps to fix the rate)",
                self.path, self.fps, whole_run, self.fps / whole_run,
            )  # fmt: skip

    def _check_written(self) -> None:
        """Read the finalized file back: it must open, index every frame and decode the last one."""
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        opened = capture.isOpened()
        try:
            indexed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
            last_decodes = False
            if indexed >= self.frames:
                capture.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)
                last_decodes = capture.read()[0]
        finally:
            capture.release()
        if indexed >= self.frames and last_decodes:
            return
        if not opened:
            found = "the file does not open as a video"
        elif indexed < self.frames:
            found = f"the file indexes {indexed}"
        else:
            found = "the last frame does not decode"
        why = "the disk is full" if free_bytes(self.path.parent) == 0 else "a write failed"
        raise EdgekitError(
            f"video {self.path} is incomplete: {self.frames} frames were encoded but {found} ({why}); "
            "the recording is lost: free space and run again"
        )
