"""Bad input is one line and exit 2, never a traceback and never a silent acceptance: sizes a network cannot
take, out-of-range flags, bench results of the wrong shape, unreadable calibration images, inputs a build
only used to check after training, and the messages that pointed at the wrong thing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from conftest import run_edgekit as edgekit

from edgekit.board.classes import ClassSet
from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.checkpoint import Checkpoint
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.models import build_model
from edgekit.quant import RECOMMENDED_IMAGES, load_calibration


def last_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for index in range(2):
        cv2.imwrite(str(folder / f"frame{index}.png"), np.full((64, 128, 3), 40 * index, np.uint8))
    return folder


# ------------------------------------------------------------------------------------- 8: sizes a model cannot take
@pytest.fixture(scope="module")
def espnet_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny ESPNet (stride 8) checkpoint at 128x64, and one saved for 1000x500 (what import-weights wrote)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("espnet_sizes")
    state = build_model("espnet", num_classes=5, p=1, q=1).state_dict()
    paths = []
    for name, size in (("good.pt", (128, 64)), ("bad-size.pt", (1000, 500))):
        checkpoint = Checkpoint(
            "espnet", {"p": 1, "q": 1}, ClassSet.generic(5), ESPNET_CITYSCAPES.with_size(*size), state
        )
        paths.append(checkpoint.save(folder / name))
    return paths[0], paths[1]


@pytest.mark.parametrize(
    "command",
    [
        ["build", "--target", "cpu-x86", "--checkpoint", "{good}", "--input-size", "1000x500", "-o", "{tmp}/b"],
        ["export", "--checkpoint", "{good}", "--input-size", "1000x500", "-o", "{tmp}/m.onnx"],
        ["train", "--model", "espnet", "--input-size", "1000x500", "--out", "{tmp}/run"],
        ["train", "--model", "espnet", "--input-size", "128x64", "--crop", "60x30", "--out", "{tmp}/run"],
        ["predict", "--checkpoint", "{good}", "--input", "{frames}", "--output", "{tmp}/p", "--input-size", "1x1"],
        ["bench", "--models", "espnet", "--sizes", "1000x500", "-o", "{tmp}/r.json"],
        ["import-weights", "--model", "espnet", "--official", "{good}", "--input-size", "1x1", "-o", "{tmp}/x.pt"],
        ["run", "--checkpoint", "{bad}", "--source", "{frames}"],
    ],
    ids=["build", "export", "train", "train --crop", "predict", "bench", "import-weights", "run --checkpoint"],
)
def test_an_input_size_the_network_cannot_take_says_which_work(
    command: list[str],
    espnet_checkpoints: tuple[Path, Path],
    frames: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good, bad = espnet_checkpoints
    args = [w.format(good=good, bad=bad, frames=frames, tmp=tmp_path) for w in command]
    assert main(args) == 2
    line = last_error(capsys)
    assert "does not fit espnet" in line and "multiples of 8" in line, line
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------------ 17: out-of-range flags
@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--max-frames", "0", "must be at least 1"),
        ("--max-frames", "-1", "must be at least 1"),
        ("--alpha", "5", "between 0 and 1"),
        ("--alpha", "-1", "between 0 and 1"),
        ("--output-fps", "-5", "must be a positive number"),
    ],
)
def test_out_of_range_run_flags_are_refused(flag: str, value: str, says: str, tiny_bundle: Path, frames: Path) -> None:
    result = edgekit("run", "--bundle", str(tiny_bundle), "--source", str(frames), f"{flag}={value}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert flag in result.stderr and says in result.stderr, result.stderr


def test_a_one_frame_run_says_its_fps_is_not_measured(tiny_bundle: Path, frames: Path, tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    result = edgekit("run", "--bundle", str(tiny_bundle), "--source", str(frames), "--max-frames", "1",
                     "--stats", str(stats))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "FPS not measured" in result.stderr and "0.00 FPS" not in result.stderr
    assert json.loads(stats.read_text())["fps"] is None


# ------------------------------------------------------------------------------------- 12, 17: bench result files
def _result(**changes: Any) -> dict[str, Any]:
    result = {
        "model": "espnet", "size": [128, 64], "batch": 1, "precision": "fp32", "backend": "onnxruntime",
        "status": "ok", "fps_inference": 100.0,
        "latency_ms": {"p50_ms": 10.0, "p90_ms": 11.0, "p99_ms": 12.0, "mean_ms": 10.0, "std_ms": 0.5},
    }  # fmt: skip
    result.update(changes)
    return result


def _document(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": "edgekit-bench/1", "tier": "test cpu", "device": {}, "results": results}


def _without(document: dict[str, Any], *path: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


VALID = _document([_result()])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (_without(VALID, "results"), "missing key 'results'"),
        (_without(VALID, "results", 0, "fps_inference"), "results[0]: missing key 'fps_inference'"),
        (_without(VALID, "results", 0, "latency_ms", "p99_ms"), "results[0].latency_ms: missing key 'p99_ms'"),
        (_document([_result(size="128x64")]), "'size' must be list"),
        (_document([_result(fps_inference="fast")]), "'fps_inference' must be int or float"),
        (_document([_result(fps_inference=-3.0)]), "'fps_inference' must be a positive number"),
        (_document([]), "'results' is empty"),
        (_document([_result(), _result(fps_inference=90.0)]), "results[1] repeats results[0]"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "cannot read bench results"),
    ],
    ids=["no results", "no fps", "no p99", "size type", "fps type", "negative fps", "empty", "repeated", "binary"],
)
def test_report_validates_the_result_schema_naming_the_key(
    content: dict[str, Any] | bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    assert main(["report", str(path), "-o", str(tmp_path / "report")]) == 2
    assert says in last_error(capsys)


def test_report_refuses_the_same_results_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, copy_of_it = tmp_path / "a.json", tmp_path / "b.json"
    for path in (first, copy_of_it):
        path.write_text(json.dumps(VALID))
    assert main(["report", str(first), str(first), "-o", str(tmp_path / "r")]) == 2
    assert "given twice" in last_error(capsys)
    assert main(["report", str(first), str(copy_of_it), "-o", str(tmp_path / "r")]) == 2
    assert "both hold espnet 128x64 b1 fp32 onnxruntime" in last_error(capsys)
    assert main(["report", str(first), "-o", str(tmp_path / "r"), "--no-published"]) == 0  # the valid file passes


# ------------------------------------------------------------------------------- 16: unreadable calibration images
def _calibration_folder(folder: Path, good: int, corrupt: int) -> Path:
    folder.mkdir()
    for index in range(good):
        cv2.imwrite(str(folder / f"good{index}.png"), np.full((64, 128, 3), 30 * index, np.uint8))
    png = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8))[1].tobytes()
    for index in range(corrupt):
        (folder / f"corrupt{index}.png").write_bytes(png[: len(png) // 3])  # truncated mid-stream
    return folder


def test_a_corrupt_calibration_image_is_skipped_and_counted(tmp_path: Path) -> None:
    calibration = load_calibration(_calibration_folder(tmp_path / "calib", 3, 1), ESPNET_CITYSCAPES.with_size(128, 64))
    assert len(calibration) == 3 and len(calibration.skipped) == 1 and "corrupt0.png" in calibration.skipped[0]
    notes = " | ".join(calibration.notes)
    assert "1 of 4 images" in notes and "only 3 usable images" in notes and str(RECOMMENDED_IMAGES) in notes
    with pytest.raises(EdgekitError, match=r"none of the 2 images for --calib can be read"):
        load_calibration(_calibration_folder(tmp_path / "bad", 0, 2), ESPNET_CITYSCAPES.with_size(128, 64))


# ------------------------------------------------------------------------- 15: a build checks inputs before stage 1
def test_build_checks_calib_before_it_trains(tmp_path: Path) -> None:
    """Without a checkpoint the build trains first (here for up to 300 s): a bad --calib must fail before."""
    result = edgekit(
        "build", "--target", "jetson-xavier-nx", "--precision", "int8", "--model", "espnet-c", "--calib",
        str(tmp_path / "no-such-frames"), "--train-seconds", "300", "-o", str(tmp_path / "bundle"), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--calib" in result.stderr and "[1/" not in result.stderr  # no stage started
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ 18: messages that misled
def test_an_empty_holdout_names_holdout_not_calib(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekitError, match=r"point --holdout at a folder") as caught:
        load_calibration(tmp_path / "empty", ESPNET_CITYSCAPES.with_size(128, 64), option="--holdout")
    assert "--calib" not in str(caught.value)


def test_an_unwritable_output_video_is_refused_before_anything_is_written(tiny_bundle: Path, frames: Path) -> None:
    result = edgekit("run", "--bundle", str(tiny_bundle), "--source", str(frames), "--output", "/proc/x.mp4")
    assert result.returncode == 2 and "wrote" not in result.stderr and "cannot be written" in result.stderr
