"""Joint augmentations for training: every geometric change is applied to the image and its mask alike.

Images resize bilinearly, masks with nearest neighbour (class ids never blend); padding of the mask uses the
ignore index so padded pixels never count as a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IGNORE_INDEX = 255


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Both to (width, height): the image bilinear, the mask nearest."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image, mask
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
        cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST),
    )


@dataclass(frozen=True)
class Augmentation:
    """Random scale around the training size, a random crop back to it, horizontal flip and colour jitter."""

    scale: tuple[float, float] = (0.75, 1.5)
    flip: bool = True
    brightness: float = 0.25  # +-fraction of 255 added
    contrast: float = 0.25  # multiplied by 1 +- this
    saturation: float = 0.25

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        width, height = size
        factor = float(rng.uniform(*self.scale))
        scaled = (max(1, round(width * factor)), max(1, round(height * factor)))
        image, mask = resize_pair(image, mask, scaled)
        image, mask = self._crop(image, mask, size, rng)
        if self.flip and rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return self._jitter(np.ascontiguousarray(image), rng), np.ascontiguousarray(mask)

    @staticmethod
    def _crop(
        image: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        width, height = size
        pad_h, pad_w = max(0, height - image.shape[0]), max(0, width - image.shape[1])
        if pad_h or pad_w:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            mask = cv2.copyMakeBorder(mask, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
        top = int(rng.integers(0, image.shape[0] - height + 1))
        left = int(rng.integers(0, image.shape[1] - width + 1))
        return image[top : top + height, left : left + width], mask[top : top + height, left : left + width]

    def _jitter(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.saturation:
            hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
            factor = 1.0 + float(rng.uniform(-self.saturation, self.saturation))
            hsv[:, :, 1] = cv2.convertScaleAbs(hsv[:, :, 1], alpha=factor)
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        alpha = 1.0 + float(rng.uniform(-self.contrast, self.contrast))
        beta = 255.0 * float(rng.uniform(-self.brightness, self.brightness))
        # (x - 128) * alpha + 128 + beta, saturated to uint8.
        return cv2.addWeighted(image, alpha, image, 0.0, 128.0 * (1.0 - alpha) + beta)
