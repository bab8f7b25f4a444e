"""Calibration-set definitions: folders, globs, YAML, the synthetic default, and the errors users hit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.errors import EdgekitError
from edgekit.quant import load_calibration
from edgekit.quant.holdout import plan_holdout
from edgekit.quant.ranges import ActivationStats, TensorHistogram

PREPROCESSING = ESPNET_CITYSCAPES.with_size(64, 32)


def test_default_set_is_synthetic_with_a_holdout() -> None:
    calibration = load_calibration("default", PREPROCESSING, count=3)
    assert len(calibration) == 3 and calibration.name == "default"
    assert calibration.holdout is not None and len(calibration.holdout) >= 1
    assert not set(calibration.sources) & set(calibration.holdout.sources)
    x = next(calibration.inputs())
    assert x.shape == (1, 3, 32, 64) and x.dtype == np.float32
    assert np.allclose(x, PREPROCESSING(calibration.frames[0]))
    assert next(calibration.inputs("uint8")).dtype == np.uint8


def test_folder_count_is_evenly_spaced(tmp_path: Path, write_frames: Any) -> None:
    paths = write_frames(tmp_path / "frames", 5)
    calibration = load_calibration(tmp_path / "frames", PREPROCESSING, count=3)
    assert calibration.sources == [str(paths[0]), str(paths[2]), str(paths[4])]
    assert all(f.shape == (32, 64, 3) for f in calibration.frames)


def test_yaml_glob_relative_to_the_file(tmp_path: Path, write_frames: Any) -> None:
    write_frames(tmp_path / "data" / "a", 2)
    write_frames(tmp_path / "data" / "b", 1)
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


@pytest.mark.parametrize(("count", "scheme", "scored"), [(16, "split", 4), (5, "cross-validated", 5)])
def test_holdout_from_real_images_never_scores_an_image_on_ranges_it_calibrated(
    tmp_path: Path, write_frames: Any, count: int, scheme: str, scored: int
) -> None:
    calibration = load_calibration(write_frames(tmp_path / "photos", count)[0].parent, PREPROCESSING)
    assert not calibration.synthetic
    plan = plan_holdout(calibration, None, None, "float32")
    assert plan.scheme == scheme and len(plan.sources) == len(set(plan.sources)) == scored
    calibrated = [calibration.sources[i] for part in plan.parts for i in part]
    assert len(calibrated) == len(set(calibrated)), "calibration parts are disjoint"
    for fold in plan.folds:
        assert fold.confident_only and len(fold.inputs) == len(fold.sources)
        ranges_from = {calibration.sources[i] for j, part in enumerate(plan.parts) if j != fold.uncalibrated_part
                       for i in part}  # fmt: skip
        assert ranges_from and not ranges_from & set(fold.sources)
        for source, x in zip(fold.sources, fold.inputs, strict=True):
            assert np.array_equal(x, PREPROCESSING(calibration.frames[calibration.sources.index(source)]))
    if scheme == "split":
        assert len(calibrated) == count - scored and not set(calibrated) & set(plan.sources)
    else:
        assert sorted(calibrated) == sorted(calibration.sources), "the written model is calibrated on every image"
    assert f"{scored}" in plan.reason


def test_holdout_of_synthetic_sets_given_sets_and_single_images(tmp_path: Path, write_frames: Any) -> None:
    spec = tmp_path / "synth.yaml"
    spec.write_text("synthetic: {count: 2}\n")
    synthetic = load_calibration(spec, PREPROCESSING)
    assert synthetic.synthetic
    plan = plan_holdout(synthetic, None, None, "float32")
    assert plan.scheme == "synthetic" and plan.sources == ["synthetic scene seed 1000", "synthetic scene seed 1001"]
    assert not plan.folds[0].confident_only and plan.parts == [[0, 1]]
    assert (
        plan_holdout(load_calibration("default", PREPROCESSING, count=2), None, None, "float32").scheme == "definition"
    )
    single = load_calibration(write_frames(tmp_path / "one", 1)[0].parent, PREPROCESSING)
    assert "single calibration image" in plan_holdout(single, None, None, "float32").reason
    given = plan_holdout(single, [PREPROCESSING(single.frames[0])], ["mine.png"], "float32")
    assert (given.scheme, given.sources, given.folds[0].confident_only) == ("given", ["mine.png"], False)
    with pytest.raises(EdgekitError, match="empty"):
        plan_holdout(single, [], None, "float32")


def test_merged_statistics_match_one_pass_over_every_image() -> None:
    rng = np.random.default_rng(0)
    images = [rng.standard_normal(4096) * scale for scale in (1.0, 3.0, 0.5)]
    one_pass, parts = TensorHistogram(), []
    for values in images:
        one_pass.add(values)
        parts.append(TensorHistogram())
        parts[-1].add(values)
    merged = ActivationStats.merged([ActivationStats({"t": h}, 1) for h in parts])
    assert merged.images == 3 and merged.histograms["t"].amax == one_pass.amax
    assert merged.histograms["t"].counts.sum() == one_pass.counts.sum() == 3 * 4096
    bin_width = one_pass.amax / len(one_pass.counts)
    assert abs(merged.amax("percentile")["t"] - one_pass.percentile_amax()) <= 2 * bin_width
    without_widest = ActivationStats.merged([ActivationStats({"t": h}, 1) for h in (parts[0], parts[2])])
    assert without_widest.histograms["t"].amax == max(np.abs(images[0]).max(), np.abs(images[2]).max())
