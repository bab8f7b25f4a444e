"""One overlay image per frame, named after the source frame (its file name for image sequences)."""

from pathlib import Path
from typing import Union

import cv2

from edgekit.board.sinks.base import OutputFrame, Sink
from edgekit.errors import EdgekitError


class ImageFilesSink(Sink):
    """Encodes in memory and writes with Python's own file calls: cv2.imwrite hides why a write failed (a full disk
    reads like an unwritable folder), a Python write raises with the reason."""

    def __init__(self, folder: Union[str, Path], suffix: str = ".png") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.suffix = suffix
        self.frames = 0

    def write(self, output: OutputFrame) -> None:
        path = self.folder / f"{output.frame.name}{self.suffix}"
        ok, encoded = cv2.imencode(self.suffix, output.image)
        if not ok:
            raise EdgekitError(f"cannot encode frame {output.frame.name} as {self.suffix}")
        try:
            with path.open("wb") as handle:  # closing flushes: a full disk raises here at the latest
                handle.write(encoded.tobytes())
        except OSError as exc:
            if path.exists():
                path.unlink()  # half an image is not one of the frames written
            raise EdgekitError(
                f"cannot write {path}: {exc.strerror or exc}; {self.frames} frames were saved in {self.folder}, "
                "the rest of the run's are lost"
            ) from exc
        self.frames += 1

    def describe(self) -> str:
        return f"image files in {self.folder} (*{self.suffix})"
