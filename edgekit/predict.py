"""Segment image files with a checkpoint in PyTorch: class-id, colour and overlay PNGs per image.

Post-processing follows the official EdgeNets ``test_segmentation.py``: argmax at the network resolution, then
the class map is resized to the original image size with PIL nearest-neighbour (ESPNet's ``VisualizeResults.py``
stops at 1024x512; resizing the class map, not the logits, keeps both authors' label maps pixel-identical at
the network size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from edgekit.board.classes import ClassSet
from edgekit.board.preprocess import IMAGE_SUFFIXES, Preprocessing, is_image, read_bgr
from edgekit.board.visualize import colorize, draw_legend, overlay
from edgekit.checkpoint import Checkpoint
from edgekit.errors import EdgekitError


def predict_labels(model: nn.Module, preprocessing: Preprocessing, image_bgr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 BGR image -> HxW uint8 class ids at the image's own size."""
    with torch.inference_mode():
        logits = model(torch.from_numpy(preprocessing(image_bgr)))
    labels = logits[0].argmax(0).to(torch.uint8).numpy()
    return resize_labels(labels, (image_bgr.shape[1], image_bgr.shape[0]))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class map to (width, height) with PIL nearest, as the official EdgeNets evaluation does."""
    if (labels.shape[1], labels.shape[0]) == size:
        return labels
    return np.asarray(Image.fromarray(labels).resize(size, Image.Resampling.NEAREST))


def class_fractions(labels: np.ndarray, classes: ClassSet) -> dict[str, float]:
    """Fraction of pixels per class name (present classes only), largest first."""
    counts = np.bincount(labels.ravel(), minlength=len(classes))
    order = np.argsort(-counts)
    return {classes.names[i]: float(counts[i]) / labels.size for i in order if counts[i] and i < len(classes)}


def list_images(source: Path) -> list[Path]:
    """The image itself, or the images directly inside a directory (by suffix, sorted)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise EdgekitError(f"input not found: {source}")
    images = sorted(p for p in source.iterdir() if is_image(p))
    if not images:
        raise EdgekitError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    return images


def write_prediction(
    image_bgr: np.ndarray, labels: np.ndarray, classes: ClassSet, output_dir: Path, stem: str
) -> list[Path]:
    """``<stem>_labels.png`` (class ids), ``<stem>_color.png`` and ``<stem>_overlay.png`` (with a legend)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    blended = draw_legend(overlay(image_bgr, labels, classes), classes, present=np.unique(labels))
    outputs = {"labels": labels, "color": colorize(labels, classes), "overlay": blended}
    paths = []
    for kind, picture in outputs.items():
        path = output_dir / f"{stem}_{kind}.png"
        if not cv2.imwrite(str(path), picture):
            raise EdgekitError(f"cannot write {path}: check that {output_dir} is writable")
        paths.append(path)
    return paths


@dataclass
class PredictionReport:
    """What ``predict_files`` did: per-image class fractions, and the images it could not read."""

    fractions: dict[Path, dict[str, float]] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)


def predict_files(
    checkpoint: Checkpoint,
    source: Path,
    output_dir: Path,
    input_size: tuple[int, int] | None = None,
    on_image: Callable[[Path], None] | None = None,
) -> PredictionReport:
    """Segment one image or every image in a directory, writing three PNGs per image into ``output_dir``.

    A single unreadable image is an error; in a directory, unreadable images are skipped and reported in
    ``failed`` so that one bad file does not stop a batch. ``on_image`` is called after each image (progress).
    """
    images = list_images(source)
    preprocessing = checkpoint.preprocessing_at(input_size)
    model = checkpoint.build()
    report = PredictionReport()
    for path in images:
        try:
            image = read_bgr(path)
        except EdgekitError as exc:
            if source.is_file():
                raise
            report.failed[path] = str(exc)
        else:
            labels = predict_labels(model, preprocessing, image)
            write_prediction(image, labels, checkpoint.classes, output_dir, path.stem)
            report.fractions[path] = class_fractions(labels, checkpoint.classes)
        if on_image is not None:
            on_image(path)
    return report
