"""The synthetic street generator: deterministic, labelled with Cityscapes train ids, written in the real layouts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.board.synthetic import DRAWN_TRAIN_IDS, generate_scene, synthetic_video
from edgekit.cli import main
from edgekit.errors import EdgekitError


def test_scene_is_deterministic_and_labelled_with_train_ids() -> None:
    image, label = generate_scene(3, (256, 128))
    again_image, again_label = generate_scene(3, (256, 128))
    other_image, _ = generate_scene(4, (256, 128))
    assert image.shape == (128, 256, 3) and image.dtype == np.uint8
    assert label.shape == (128, 256) and label.dtype == np.uint8
    assert np.array_equal(image, again_image) and np.array_equal(label, again_label)
    assert not np.array_equal(image, other_image)
    assert set(np.unique(label).tolist()) <= set(DRAWN_TRAIN_IDS)


def test_scenes_cover_the_street_classes() -> None:
    seen: set[int] = set()
    for seed in range(8):
        _, label = generate_scene(seed, (512, 256))
        seen |= set(np.unique(label).tolist())
        # A street: road at the bottom centre, sky at the top centre.
        assert label[-1, 256] == 0
        assert label[0, 256] in (2, 8, 10)
    assert {0, 1, 2, 5, 7, 8, 10, 11, 13} <= seen


def test_too_small_size_is_a_clear_error() -> None:
    with pytest.raises(EdgekitError, match="16x16"):
        generate_scene(0, (8, 8))


def test_cli_writes_cityscapes_layout(tmp_path: Path) -> None:
    assert main(["data", "synth", "--out", str(tmp_path), "--count", "5", "--size", "128x64", "--seed", "2"]) == 0
    train = sorted((tmp_path / "leftImg8bit" / "train" / "synth").glob("*_leftImg8bit.png"))
    val = sorted((tmp_path / "leftImg8bit" / "val" / "synth").glob("*_leftImg8bit.png"))
    assert (len(train), len(val)) == (4, 1)
    stem = val[0].name.replace("_leftImg8bit.png", "")
    train_ids = cv2.imread(
        str(tmp_path / "gtFine/val/synth" / f"{stem}_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED
    )
    label_ids = cv2.imread(str(tmp_path / "gtFine/val/synth" / f"{stem}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
    assert train_ids.shape == (64, 128)
    # Official ids: road 7 <-> train id 0, sky 23 <-> 10, car 26 <-> 13.
    assert np.array_equal(label_ids == 7, train_ids == 0)
    assert np.array_equal(label_ids == 23, train_ids == 10)
    assert np.array_equal(label_ids == 26, train_ids == 13)


def test_video_drives_forward(tmp_path: Path) -> None:
    path = synthetic_video(tmp_path / "street.mp4", frames=6, size=(160, 96), fps=10, seed=1)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 6 and frames[0].shape == (96, 160, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 2  # the scene moves
