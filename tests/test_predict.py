"""``edgekit import-weights`` and ``edgekit predict`` end to end through the CLI, errors included."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgekit.cli import main

V2_FILE = "weights/espnetv2/espnetv2_s_0.5_city_512x256.pth"
FRAME = "samples/cityscapes/frankfurt_000000_000576_leftImg8bit.png"


@pytest.fixture
def v2_checkpoint(shared: Path, tmp_path: Path) -> Path:
    """The smallest official model, imported through the CLI (512x256: the fastest official set-up)."""
    path = tmp_path / "espnetv2-s0.5.ckpt"
    assert (
        main(["import-weights", "--model", "espnetv2-s0.5", "--official", str(shared / V2_FILE), "-o", str(path)]) == 0
    )
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_predict_directory_writes_label_colour_overlay_and_skips_unreadable(
    shared: Path, tmp_path: Path, v2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(shared / FRAME, images / "street.png")
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"

    code = main(["predict", "--checkpoint", str(v2_checkpoint), "--input", str(images), "--output", str(out)])

    assert code == 1  # the broken image is reported, the good one still predicted
    assert "skipped broken.jpg" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["street_color.png", "street_labels.png", "street_overlay.png"]
    labels = cv2.imread(str(out / "street_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (1024, 2048) and labels.dtype == np.uint8  # the original size, one class id per pixel
    assert labels.max() < 20
    assert np.bincount(labels.ravel()).argmax() == 0  # road is the largest class in this street
    color = cv2.imread(str(out / "street_color.png"))
    assert tuple(color[900, 1024]) == (128, 64, 128)[::-1]  # Cityscapes road colour (BGR) ahead of the car


def test_predict_single_unreadable_image_is_a_one_line_error(
    tmp_path: Path, v2_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    code = main(["predict", "--checkpoint", str(v2_checkpoint), "--input", str(broken), "--output", str(tmp_path)])
    assert code == 2
    assert "cannot read image" in _error_line(capsys)


def test_predict_without_checkpoint_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", "--checkpoint", str(tmp_path / "no.ckpt"), "--input", str(tmp_path), "--output", "x"])
    assert code == 2
    assert "checkpoint not found" in _error_line(capsys)


def test_import_truncated_file_fails_cleanly(shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (shared / V2_FILE).read_bytes()
    truncated = tmp_path / "espnetv2_s_0.5_city_512x256.pth"
    truncated.write_bytes(data[: len(data) - 1000])
    out = tmp_path / "x.ckpt"
    assert main(["import-weights", "--model", "espnetv2-s0.5", "--official", str(truncated), "-o", str(out)]) == 2
    assert "truncated or corrupt" in _error_line(capsys)
    assert not out.exists()


def test_import_other_architecture_names_the_keys(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import-weights", "--model", "espnet", "--official", str(shared / V2_FILE), "-o", str(tmp_path / "x")])
    assert code == 2
    err = _error_line(capsys)
    assert "missing keys (e.g. encoder.level1.conv.weight" in err
    assert "unexpected keys (e.g. base_net.level1.conv.weight" in err
    assert "holds espnetv2-s0.5 weights" in err


def test_import_other_class_count_names_the_shapes(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 19-class head (no background output): the error shows the file's and the model's shapes."""
    state = torch.load(shared / V2_FILE, map_location="cpu", weights_only=True)
    state["bu_dec_l4.merge_layer.3.weight"] = state["bu_dec_l4.merge_layer.3.weight"][:19]
    state["bu_dec_l4.merge_layer.3.bias"] = state["bu_dec_l4.merge_layer.3.bias"][:19]
    path = tmp_path / "espnetv2_s_0.5_19classes.pth"
    torch.save(state, path)
    code = main(["import-weights", "--model", "espnetv2-s0.5", "--official", str(path), "-o", str(tmp_path / "x")])
    assert code == 2
    assert "bu_dec_l4.merge_layer.3.weight: file (19, 10, 1, 1) vs model (20, 10, 1, 1)" in _error_line(capsys)
