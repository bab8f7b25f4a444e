"""Calibration sets: which images INT8 calibration sees, defined in YAML (``calibration/*.yaml``) or as a folder.

A definition names images only — a folder, a glob, or synthetic scenes — and how many. Preprocessing always
comes from the checkpoint/bundle (the runner's own :class:`Preprocessing`), so calibration statistics are those
of the tensors the deployed network really receives. Nothing here ever substitutes random data: an empty,
unreadable or wrongly sized source is an error that says what to do.

YAML keys::

    name: default                       # optional, for reports
    synthetic: {count: 32, seed: 0}     # or
    folder: ../data/frames              # relative to the YAML file; with optional `pattern: "*.png"`, or
    glob: /data/city/**/*_leftImg8bit.png
    count: 32                           # optional cap (evenly spaced over the sorted files)
    holdout: {synthetic: {count: 4, seed: 1000}}   # optional calibration-free images for the accuracy report
                                        # (without it, quantize holds out some of the images themselves:
                                        # edgekit.quant.holdout)
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edgekit.board.preprocess import IMAGE_SUFFIXES, Preprocessing, is_image, read_bgr
from edgekit.board.synthetic import synthetic_frames
from edgekit.board.targets import data_dir
from edgekit.errors import EdgekitError

CALIBRATION_DIR = data_dir("calibration")
MIN_SIDE_FRACTION = 0.25  # an image needing more than 4x upscaling says little about real input statistics
# Below this many usable images a set still calibrates, with a warning: percentile ranges then rest on a few
# frames' tails (the shipped default set is 32 scenes). Unreadable files are skipped and counted; a set fails
# only when none of its images can be read.
RECOMMENDED_IMAGES = 16


@dataclass
class CalibrationSet:
    """Resized BGR frames plus the preprocessing that turns them into network inputs."""

    name: str
    frames: list[np.ndarray]  # HxWx3 uint8 BGR at the network size
    sources: list[str]
    preprocessing: Preprocessing
    holdout: CalibrationSet | None = field(default=None, repr=False)
    synthetic: bool = False  # rendered scenes, not photos: a hold-out drawn from them says little about real input
    skipped: list[str] = field(default_factory=list)  # "path: reason" of every unreadable image left out

    @property
    def notes(self) -> list[str]:
        """What the user should know about this set: skipped files, too few images."""
        notes = [f"skipped unreadable calibration image {item}" for item in self.skipped]
        if self.skipped:
            notes.append(f"{len(self.skipped)} of {len(self.skipped) + len(self)} images of {self.name} were skipped")
        if len(self) < RECOMMENDED_IMAGES:
            notes.append(
                f"{self.name} has only {len(self)} usable images; INT8 ranges from fewer than {RECOMMENDED_IMAGES} "
                "are noisy (give more frames like those the camera will see)"
            )
        return notes

    def __len__(self) -> int:
        return len(self.frames)

    def subset(self, indices: list[int]) -> CalibrationSet:
        """The frames at ``indices`` (in that order), without the hold-out definition."""
        return CalibrationSet(
            name=self.name,
            frames=[self.frames[i] for i in indices],
            sources=[self.sources[i] for i in indices],
            preprocessing=self.preprocessing,
            synthetic=self.synthetic,
        )

    def inputs(self, input_dtype: str = "float32") -> Iterator[np.ndarray]:
        """1x3xHxW network inputs: float32 normalised, or uint8 for a model that normalises in-graph."""
        for frame in self.frames:
            yield self.preprocessing.to_uint8_chw(frame) if input_dtype == "uint8" else self.preprocessing(frame)


def _evenly_spaced(items: list[Path], count: int | None) -> list[Path]:
    if count is None or count >= len(items):
        return items
    index = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in index]


def _image_files(paths: list[Path], what: str, option: str) -> list[Path]:
    files = sorted(p for p in paths if is_image(p))
    if not files:
        raise EdgekitError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {what}; point {option} at a folder of frames like those "
            "the camera will see, or use calibration/default.yaml (synthetic scenes)"
        )
    return files


def _load_frames(
    files: list[Path], preprocessing: Preprocessing, option: str
) -> tuple[list[np.ndarray], list[Path], list[str]]:
    """(frames, their files, "path: reason" of the unreadable files skipped); an error when none is readable."""
    frames, used, skipped = [], [], []
    for path in files:
        try:
            image = read_bgr(path)
        except EdgekitError as exc:
            skipped.append(f"{path}: {exc}")
            continue
        height, width = image.shape[:2]
        if width < preprocessing.width * MIN_SIDE_FRACTION or height < preprocessing.height * MIN_SIDE_FRACTION:
            raise EdgekitError(
                f"calibration image {path} is {width}x{height}, too small for the {preprocessing.width}x"
                f"{preprocessing.height} network input (more than 4x upscaling); use full-size frames"
            )
        frames.append(preprocessing.resize_bgr(image))
        used.append(path)
    if not frames:
        raise EdgekitError(f"none of the {len(files)} images for {option} can be read (first: {skipped[0]})")
    return frames, used, skipped


def _from_definition(
    definition: dict[str, Any], base: Path, preprocessing: Preprocessing, count: int | None, name: str, option: str
) -> CalibrationSet:
    count = count if count is not None else definition.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise EdgekitError(f"calibration set {name}: count must be a positive integer, got {count!r}")
    sources = [key for key in ("synthetic", "folder", "glob") if key in definition]
    if len(sources) != 1:
        raise EdgekitError(f"calibration set {name} must name exactly one of synthetic, folder or glob; got {sources}")
    if "synthetic" in definition:
        spec = definition["synthetic"] or {}
        if not isinstance(spec, dict):
            raise EdgekitError(f"calibration set {name}: synthetic must be a mapping with count and seed")
        total = int(count if count is not None else spec.get("count", 32))
        seed = int(spec.get("seed", 0))
        frames = synthetic_frames(total, preprocessing.input_size, seed)
        labels = [f"synthetic scene seed {s}" for s in range(seed, seed + total)]
        skipped: list[str] = []
    else:
        if "folder" in definition:
            folder = (base / str(definition["folder"])).resolve()
            if not folder.is_dir():
                raise EdgekitError(f"{option}: folder {folder} does not exist (named in {name})")
            files = _image_files(list(folder.glob(str(definition.get("pattern", "*")))), str(folder), option)
        else:
            pattern = str(definition["glob"])
            pattern = pattern if Path(pattern).is_absolute() else str(base / pattern)
            files = _image_files([Path(p) for p in globlib.glob(pattern, recursive=True)], f"glob {pattern}", option)
        files = _evenly_spaced(files, count)
        frames, used, skipped = _load_frames(files, preprocessing, option)
        labels = [str(p) for p in used]
    holdout = None
    if "holdout" in definition:
        holdout = _from_definition(
            definition["holdout"], base, preprocessing, None, f"{name} (holdout)", f"the holdout of {option}"
        )
    return CalibrationSet(
        name=name,
        frames=frames,
        sources=labels,
        preprocessing=preprocessing,
        holdout=holdout,
        skipped=skipped,
        synthetic="synthetic" in definition,
    )


def load_calibration(
    spec: Path | str, preprocessing: Preprocessing, count: int | None = None, option: str = "--calib"
) -> CalibrationSet:
    """A calibration set from a folder of images, a YAML definition, or a name under ``calibration/``;
    ``option`` is the flag that named it, for the error messages."""
    path = Path(spec)
    if not path.exists() and (CALIBRATION_DIR / f"{spec}.yaml").is_file():
        path = CALIBRATION_DIR / f"{spec}.yaml"
    if path.is_dir():
        return _from_definition({"folder": str(path)}, Path.cwd(), preprocessing, count, str(path), option)
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(CALIBRATION_DIR.glob("*.yaml")))
        raise EdgekitError(f"{option} {spec} not found; give a folder of images, a YAML file or one of: {known}")
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise EdgekitError(f"{option} {path} is neither a folder of images nor a .yaml calibration definition")
    try:
        definition = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EdgekitError(f"cannot read calibration definition {path}: {exc}") from exc
    if not isinstance(definition, dict):
        raise EdgekitError(f"calibration definition {path} must be a YAML mapping")
    name = str(definition.get("name", path.stem))
    return _from_definition(definition, path.parent, preprocessing, count, name, option)
