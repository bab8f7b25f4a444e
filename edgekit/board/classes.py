"""Class names and colours that travel with every checkpoint and bundle."""

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np

from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class ClassSet:
    """Names and RGB colours, indexed by the network's output channel."""

    names: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.palette):
            raise EdgekitError(f"{len(self.names)} class names but {len(self.palette)} palette colours")

    def __len__(self) -> int:
        return len(self.names)

    def lut_bgr(self) -> np.ndarray:
        """256x3 uint8 lookup table (BGR, for OpenCV) from class id to colour; ids past the palette are black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(self.palette)] = np.asarray(self.palette, np.uint8)[:, ::-1]
        return lut

    def to_dict(self) -> Dict[str, Any]:
        return {"names": list(self.names), "palette": [list(c) for c in self.palette]}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ClassSet":
        try:
            return cls(
                names=tuple(str(n) for n in data["names"]),
                palette=tuple((int(c[0]), int(c[1]), int(c[2])) for c in data["palette"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise EdgekitError(f"invalid class description: {exc}") from exc

    @classmethod
    def generic(cls, count: int) -> "ClassSet":
        """Numbered classes with well-separated colours, for models trained on unnamed labels."""
        colours = np.random.RandomState(0).randint(0, 256, size=(count, 3))  # numpy 1.13 (JetPack 4.6) API
        colours[0] = 0
        return cls(
            names=tuple(f"class{i}" for i in range(count)),
            palette=tuple((int(r), int(g), int(b)) for r, g, b in colours),
        )


def cityscapes_classes(with_background: bool = True) -> ClassSet:
    """The 19 Cityscapes train ids from cityscapesscripts' official label table.

    The official ESPNet/ESPNetv2 Cityscapes models have a 20th output for the ignored pixels (label 255 remapped
    to 19 during training); ``with_background`` appends it, drawn in black.
    """
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EdgekitError("Cityscapes class names need the [host] extra (cityscapesscripts)") from exc
    train = sorted((lab for lab in labels if 0 <= lab.trainId < 255), key=lambda lab: lab.trainId)
    names = [lab.name for lab in train]
    palette = [tuple(int(c) for c in lab.color) for lab in train]
    if with_background:
        names.append("background")
        palette.append((0, 0, 0))
    return ClassSet(names=tuple(names), palette=tuple(palette))  # type: ignore[arg-type]
