"""Image folders and globs as a sorted sequence; an unreadable image is skipped and counted, not fatal."""

import glob
import logging
from pathlib import Path
from typing import List, Optional, Union

import cv2
import numpy as np

from edgekit.board.preprocess import IMAGE_SUFFIXES, is_image
from edgekit.board.sources.base import Source
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

GLOB_CHARS = ("*", "?", "[")


def is_glob(text: str) -> bool:
    return any(char in text for char in GLOB_CHARS)


def list_images(pattern: str) -> List[Path]:
    """Image files in a folder, matching a glob, or the single image given, sorted by path."""
    path = Path(pattern)
    if is_glob(pattern):
        files = [Path(p) for p in glob.glob(pattern, recursive=True)]
    elif path.is_dir():
        files = list(path.iterdir())
    else:
        files = [path]
    return sorted(f for f in files if is_image(f))


class ImageSequenceSource(Source):
    """Every image of a folder/glob in sorted order; frames are named after their files."""

    live = False

    def __init__(self, pattern: Union[str, Path]) -> None:
        super().__init__(str(pattern))
        self.files = list_images(str(pattern))
        if not self.files:
            raise EdgekitError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {pattern}")
        self.frame_count = len(self.files)
        self._position = 0
        self._current = self.files[0]
        self._start()

    def _read(self) -> Optional[np.ndarray]:
        while self._position < len(self.files):
            self._current = self.files[self._position]
            self._position += 1
            image = cv2.imread(str(self._current), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            log.warning("skipping %s: not an image or corrupt", self._current)
            self.skipped.append(f"{self._current}: not an image or corrupt")
        if len(self.skipped) == len(self.files):
            raise EdgekitError(f"none of the {len(self.files)} images in {self.uri} could be read")
        return None

    def _frame_name(self) -> str:
        return self._current.stem

    def describe(self) -> str:
        return f"image sequence {self.uri} ({len(self.files)} files, sorted; OpenCV imread)"
