"""One overlay image per frame, named after the source frame (its file name for image sequences)."""

from pathlib import Path
from typing import Union

import cv2

from edgekit.board.sinks.base import OutputFrame, Sink
from edgekit.errors import EdgekitError


class ImageFilesSink(Sink):
    def __init__(self, folder: Union[str, Path], suffix: str = ".png") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.suffix = suffix
        self.frames = 0

    def write(self, output: OutputFrame) -> None:
        path = self.folder / f"{output.frame.name}{self.suffix}"
        if not cv2.imwrite(str(path), output.image):
            raise EdgekitError(f"cannot write {path}: check the folder is writable")
        self.frames += 1

    def describe(self) -> str:
        return f"image files in {self.folder} (*{self.suffix})"
