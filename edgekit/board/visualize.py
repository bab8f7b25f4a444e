"""Colouring class maps and blending them over frames: shared by `edgekit predict` and the runner's sinks."""

from typing import Optional

import cv2
import numpy as np

from edgekit.board.classes import ClassSet


def colorize(classmap: np.ndarray, classes: ClassSet) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 BGR colours from the class palette.

    uint8 maps go through cv2.applyColorMap with the palette as a user colour map: 11x faster than numpy indexing
    at 640x360 (0.26 vs 2.97 ms), and the runner colours every frame.
    """
    if classmap.dtype == np.uint8:
        return cv2.applyColorMap(classmap, classes.lut_bgr()[:, None])
    return classes.lut_bgr()[classmap]


def overlay(frame_bgr: np.ndarray, classmap: np.ndarray, classes: ClassSet, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured class map over the frame; the map is resized (nearest) to the frame when they differ."""
    height, width = frame_bgr.shape[:2]
    if classmap.shape != (height, width):
        classmap = cv2.resize(classmap, (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.addWeighted(frame_bgr, 1.0 - alpha, colorize(classmap, classes), alpha, 0.0)


def draw_legend(image_bgr: np.ndarray, classes: ClassSet, present: Optional[np.ndarray] = None) -> np.ndarray:
    """Draw a colour legend in the top-left corner (only the classes in ``present`` when given); in place."""
    ids = range(len(classes)) if present is None else [int(i) for i in present if i < len(classes)]
    y = 8
    for class_id in ids:
        r, g, b = classes.palette[class_id]
        cv2.rectangle(image_bgr, (8, y), (24, y + 14), (b, g, r), thickness=-1)
        cv2.putText(
            image_bgr, classes.names[class_id], (30, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1
        )
        y += 18
    return image_bgr
