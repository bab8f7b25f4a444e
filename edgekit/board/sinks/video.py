"""Video file output through OpenCV's FFmpeg writer; released on every exit path so the file is playable."""

import logging
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2

from edgekit.board.sinks.base import OutputFrame, Sink
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

# pip's OpenCV has no H.264 encoder; MPEG-4 part 2 in mp4 plays in VLC/ffplay/OpenCV, MJPEG in avi everywhere.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class VideoFileSink(Sink):
    """Writes at the source's rate (or ``fps``); frames of another size are resized to the first frame's."""

    def __init__(self, path: Union[str, Path], fps: Optional[float] = None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise EdgekitError(f"output video {self.path}: use one of {', '.join(FOURCC)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps or 30.0
        self.writer: Optional[cv2.VideoWriter] = None
        self.size: Optional[Tuple[int, int]] = None
        self.frames = 0

    def write(self, output: OutputFrame) -> None:
        image = output.image
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter.fourcc(*FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise EdgekitError(f"cannot write video {self.path}: check the folder is writable")
        assert self.size is not None
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1

    def describe(self) -> str:
        return f"video file {self.path} ({FOURCC[self.path.suffix.lower()]}, {self.fps:.2f} fps)"

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            log.info("wrote %s (%d frames)", self.path, self.frames)
