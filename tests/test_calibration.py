"""Calibration-set definitions: folders, globs, YAML, the synthetic default, and the errors users hit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.board.synthetic import generate_scene
from edgekit.calibration import load_calibration
from edgekit.errors import EdgekitError

PREPROCESSING = ESPNET_CITYSCAPES.with_size(64, 32)


def _write_images(folder: Path, count: int, size: tuple[int, int] = (96, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"frame{seed:02d}.png"
        cv2.imwrite(str(path), generate_scene(seed, size)[0])
        paths.append(path)
    return paths


def test_default_set_is_synthetic_with_a_holdout() -> None:
    calibration = load_calibration("default", PREPROCESSING, count=3)
    assert len(calibration) == 3 and calibration.name == "default"
    assert calibration.holdout is not None and len(calibration.holdout) >= 1
    assert not set(calibration.sources) & set(calibration.holdout.sources)
    x = next(calibration.inputs())
    assert x.shape == (1, 3, 32, 64) and x.dtype == np.float32
    assert np.allclose(x, PREPROCESSING(calibration.frames[0]))
    assert next(calibration.inputs("uint8")).dtype == np.uint8


def test_folder_count_is_evenly_spaced(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "frames", 5)
    calibration = load_calibration(tmp_path / "frames", PREPROCESSING, count=3)
    assert calibration.sources == [str(paths[0]), str(paths[2]), str(paths[4])]
    assert all(f.shape == (32, 64, 3) for f in calibration.frames)


def test_yaml_glob_relative_to_the_file(tmp_path: Path) -> None:
    _write_images(tmp_path / "data" / "a", 2)
    _write_images(tmp_path / "data" / "b", 1)
    spec = tmp_path / "set.yaml"
    spec.write_text("name: mine\nglob: data/**/*.png\n")
    assert len(load_calibration(spec, PREPROCESSING)) == 3


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d.mkdir(), "no images"),
        (lambda d: (d.mkdir(), (d / "broken.png").write_bytes(b"not a png")), "cannot read image"),
        (lambda d: (d.mkdir(), cv2.imwrite(str(d / "tiny.png"), np.zeros((8, 8, 3), np.uint8))), "too small"),
    ],
)
def test_bad_folders_fail_clearly(tmp_path: Path, setup: object, message: str) -> None:
    folder = tmp_path / "calib"
    setup(folder)  # type: ignore[operator]
    with pytest.raises(EdgekitError, match=message):
        load_calibration(folder, PREPROCESSING)


def test_bad_definitions_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="not found"):
        load_calibration(tmp_path / "nowhere", PREPROCESSING)
    spec = tmp_path / "two.yaml"
    spec.write_text("folder: a\nsynthetic: {count: 2}\n")
    with pytest.raises(EdgekitError, match="exactly one"):
        load_calibration(spec, PREPROCESSING)
    spec.write_text("synthetic: {count: 2}\ncount: 0\n")
    with pytest.raises(EdgekitError, match="positive"):
        load_calibration(spec, PREPROCESSING)
