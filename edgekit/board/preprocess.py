"""How an image becomes a model input, stored with every checkpoint and bundle.

Every stage (prediction, calibration, export verification, the on-device runner) preprocesses through this one
object, so that INT8 calibration sees exactly what the runner feeds and official weights see what their
authors fed them. Torch-free: the runner on a board uses it too.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import cv2
import numpy as np
from typing_extensions import Literal  # typing.Literal is 3.8+; JetPack 4.6 has 3.6

from edgekit.errors import EdgekitError

ChannelOrder = Literal["BGR", "RGB"]
ResizeMethod = Literal["cv2-bilinear", "pil-bilinear"]


@dataclass(frozen=True)
class Preprocessing:
    """``y = (pixel - mean) / std * scale`` per channel, after resizing to ``input_size`` in ``channel_order``.

    ``mean`` and ``std`` are in 0-255 pixel units and listed in ``channel_order``. ESPNet's authors normalise in
    pixel units and then divide by 255 (scale=1/255); ImageNet-style models use scale=1 with mean/std times 255.
    """

    input_size: Tuple[int, int]  # (width, height) of the network input
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: Tuple[float, float, float] = (255.0, 255.0, 255.0)
    scale: float = 1.0
    channel_order: ChannelOrder = "RGB"
    resize: ResizeMethod = "cv2-bilinear"
    source: str = field(default="edgekit default", compare=False)

    def __post_init__(self) -> None:
        if self.channel_order not in ("BGR", "RGB"):
            raise EdgekitError(f"channel_order must be BGR or RGB, not {self.channel_order!r}")
        if self.resize not in ("cv2-bilinear", "pil-bilinear"):
            raise EdgekitError(f"resize must be cv2-bilinear or pil-bilinear, not {self.resize!r}")
        if any(s == 0 for s in self.std):
            raise EdgekitError("std must not contain zeros")

    @property
    def width(self) -> int:
        return self.input_size[0]

    @property
    def height(self) -> int:
        return self.input_size[1]

    def with_size(self, width: int, height: int) -> "Preprocessing":
        """The same normalisation at another network input size."""
        return Preprocessing(**{**self.to_dict(), "input_size": (width, height)})

    def affine(self) -> Tuple[np.ndarray, np.ndarray]:
        """Per-channel (gain, bias) with ``y = x * gain + bias`` — what an in-graph normalisation layer bakes in."""
        std = np.asarray(self.std, np.float32)
        mean = np.asarray(self.mean, np.float32)
        gain = np.float32(self.scale) / std
        return gain.astype(np.float32), (-mean * gain).astype(np.float32)

    def resize_bgr(self, image_bgr: np.ndarray) -> np.ndarray:
        """Resize an HxWx3 uint8 BGR frame to the network size with the authors' interpolation."""
        if image_bgr.shape[1] == self.width and image_bgr.shape[0] == self.height:
            return image_bgr
        if self.resize == "pil-bilinear":
            from PIL import Image

            rgb = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
            resized = rgb.resize((self.width, self.height), Image.Resampling.BILINEAR)
            return np.ascontiguousarray(np.asarray(resized)[:, :, ::-1])
        return cv2.resize(image_bgr, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def _resized_chw(self, image_bgr: np.ndarray) -> np.ndarray:
        """The checked frame at the network size as a 3xHxW uint8 view in the network's channel order."""
        resized = self.resize_bgr(check_bgr_image(image_bgr))
        if self.channel_order == "RGB":
            resized = resized[:, :, ::-1]
        return resized.transpose(2, 0, 1)

    def to_uint8_chw(self, image_bgr: np.ndarray) -> np.ndarray:
        """Resized, reordered, un-normalised 1x3xHxW uint8: the input of a model with in-graph normalisation."""
        return np.ascontiguousarray(self._resized_chw(image_bgr)[None])

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 BGR frame -> 1x3xHxW float32 network input.

        The uint8 -> float conversion, channel reordering and gain happen in one numpy pass straight into the
        output (then the bias in place): 8x faster than separate copies at 512x256, and the runner pays it per frame.
        """
        gain, bias = self.affine()
        x = np.empty((1, 3, self.height, self.width), np.float32)
        np.multiply(self._resized_chw(image_bgr), gain[:, None, None], out=x[0], casting="unsafe")
        x[0] += bias[:, None, None]
        return x

    def load(self, path: Union[str, Path]) -> np.ndarray:
        """Read an image file and preprocess it; a clear error when it is missing or unreadable."""
        return self(read_bgr(path))

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Preprocessing":
        try:
            return cls(
                input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
                mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
                scale=float(data.get("scale", 1.0)),
                channel_order=data.get("channel_order", "RGB"),
                resize=data.get("resize", "cv2-bilinear"),
                source=str(data.get("source", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise EdgekitError(f"invalid preprocessing description {data!r}: {exc}") from exc


def check_bgr_image(image: np.ndarray) -> np.ndarray:
    """Accept HxWx3 uint8 (and HxW grey, HxWx4 BGRA by conversion); reject anything else with a clear error."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise EdgekitError(f"expected a uint8 image array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise EdgekitError(f"expected an HxWx3 BGR image, got shape {image.shape}")
    return image


# The one list of image suffixes edgekit reads (OpenCV decodes all of them): sources, calibration, datasets, predict.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image(path: Path) -> bool:
    """A file with an image suffix (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def read_bgr(path: Union[str, Path]) -> np.ndarray:
    """cv2.imread with errors that name the file instead of returning None."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdgekitError(f"cannot read image {path}: not an image or the file is corrupt")
    return image


# The official preprocessing of the reference networks, so weights see what their authors fed them.
ESPNET_CITYSCAPES = Preprocessing(
    input_size=(1024, 512),
    mean=(72.3923111, 82.90893555, 73.15840149),
    std=(45.3192215, 46.15289307, 44.91483307),
    scale=1.0 / 255.0,
    channel_order="BGR",
    resize="cv2-bilinear",
    source="sacmehta/ESPNet test/VisualizeResults.py: BGR, cv2 bilinear, (x - mean) / std / 255",
)

IMAGENET = Preprocessing(
    input_size=(1024, 512),
    mean=(0.485 * 255, 0.456 * 255, 0.406 * 255),
    std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
    scale=1.0,
    channel_order="RGB",
    resize="pil-bilinear",
    source="sacmehta/EdgeNets segmentation: RGB, PIL bilinear, /255 then ImageNet mean/std",
)
