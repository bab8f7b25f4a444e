"""`edgekit build` end to end on a tiny configuration, bundle integrity, atomicity and the board hand-over."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.board.bundle import Bundle
from edgekit.board.classes import cityscapes_classes
from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.build import BuildOptions, build, real_data_source, synthetic_calibration_warning
from edgekit.checkpoint import Checkpoint
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.export import ort_session
from edgekit.models import build_model, get_spec

TINY = ["--input-size", "64x32", "--train-seconds", "2", "--eval-scenes", "2"]


def test_build_for_the_nano_writes_a_complete_verified_bundle(nano_bundle: tuple[Path, str]) -> None:
    root, target = nano_bundle
    bundle = Bundle.load(root)  # verifies every sha256
    manifest = json.loads((bundle.root / "manifest.json").read_text())  # the file a board reads
    assert manifest["target"] == target and manifest["precision"] == "fp16"
    assert manifest["target_profile"]["software"]["tensorrt"] == "8.2.1"
    assert manifest["artifacts"]["onnx"] == {"fp32": "model.fp32.onnx", "fp16": "model.fp16.onnx"}
    assert manifest["artifacts"]["engine"] is None and manifest["engine"] is None  # no TensorRT on this machine
    assert manifest["artifacts"]["calibration_cache"] is None  # the Nano has no fast INT8
    assert set(manifest["files"]) >= {"model.fp32.onnx", "model.fp16.onnx", "report.md", "report.json"}
    assert manifest["preprocessing"]["input_size"] == [64, 32] and manifest["input"]["shape"] == [1, 3, 32, 64]
    classes = len(manifest["classes"]["names"])
    assert classes == len(manifest["classes"]["palette"]) == 19  # Cityscapes train ids of the synthetic labels
    assert manifest["metrics"]["model_source"]["trained_on"] == "synthetic street scenes"
    assert manifest["metrics"]["export"]["max_abs_diff"] < 1e-3
    accuracy = manifest["metrics"]["accuracy"]["variants"]
    assert set(accuracy) == {"fp32", "fp16"} and accuracy["fp16"]["agreement_with_fp32"] > 0.95
    report = json.loads((root / "report.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["model", "export", "fp16", "accuracy", "classmap", "compile"]
    assert "edgekit compile --bundle nano" in report["compile"] and "tensorrt does not import" in report["compile"]
    assert "| fp16 | `model.fp16.onnx` |" in (root / "report.md").read_text()
    # the same engine without Python, with TensorRT 8.2's trtexec flags (--workspace, not --memPoolSize)
    assert report["trtexec"] == (
        "/usr/src/tensorrt/bin/trtexec --onnx=model.fp32.onnx --saveEngine=model.engine --workspace=1024 --fp16 "
        "--profilingVerbosity=detailed --exportLayerInfo=layers.json"
    ).replace("1024", str(manifest["target_profile"].get("workspace_mib") or 1024))
    assert report["trtexec"] in (root / "report.md").read_text()
    # the runtime model runs in onnxruntime and ends in the class-map head: an int32 class map at the input size
    assert manifest["output"] == {"name": "classmap", "kind": "classmap", "dtype": "int32"}
    assert manifest["metrics"]["classmap"]["checked"].startswith("2 variants give exactly the argmax")
    assert manifest["onnx"]["opset"] == 13 and "onnx-tensorrt 8.2-GA" in manifest["onnx"]["why"]
    assert manifest["classmap_head"]["formulation"] == "reducemax-equal-where-reducemin"
    session = ort_session(bundle.runtime_onnx)
    frame = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    (classmap,) = session.run(None, {manifest["input"]["name"]: bundle.preprocessing(frame)})
    assert classmap.shape == (1, 32, 64) and classmap.dtype == np.int32
    assert classmap.min() >= 0 and classmap.max() < classes


def test_tampered_file_fails_to_load(nano_bundle: tuple[Path, str], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(nano_bundle[0], copy)
    onnx = copy / "model.fp16.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(EdgekitError, match=r"model\.fp16\.onnx has sha256 .* rebuild the bundle"):
        Bundle.load(copy)
    (copy / "model.fp16.onnx").unlink()
    with pytest.raises(EdgekitError, match=r"model\.fp16\.onnx is missing"):
        Bundle.load(copy)


def test_failed_build_leaves_the_previous_bundle_and_no_partial_one(
    nano_bundle: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A build that fails after export (bad calibration folder) neither replaces nor half-writes a bundle."""
    spec = get_spec("espnet-c")
    classes = cityscapes_classes()
    model = build_model("espnet-c", num_classes=len(classes))
    checkpoint = Checkpoint("espnet-c", {}, classes, spec.default_preprocessing, model.state_dict())
    checkpoint.save(tmp_path / "c.pt")
    destination = tmp_path / "bundles" / "xnx"
    shutil.copytree(nano_bundle[0], destination)
    before = Bundle.load(destination).files
    argv = ["build", "--target", "jetson-xavier-nx", "--checkpoint", str(tmp_path / "c.pt"), *TINY]
    assert main([*argv, "--calib", str(tmp_path / "no-such-frames"), "-o", str(destination)]) == 2
    assert "--calib" in capsys.readouterr().err
    assert Bundle.load(destination).files == before
    assert [p.name for p in destination.parent.iterdir()] == ["xnx"]  # no .xnx.partial-* left behind
    fresh = tmp_path / "bundles" / "fresh"
    assert main([*argv, "--calib", str(tmp_path / "no-such-frames"), "-o", str(fresh)]) == 2
    assert not fresh.exists()


def test_strict_precision_refuses_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nano-int8"
    assert main(["build", "--target", "jetson-nano", "--precision", "int8", "--strict", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "INT8 is not available on jetson-nano" in err and "drop --strict" in err
    assert not out.exists()


def test_compile_here_says_what_is_missing(nano_bundle: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; tests/board/backends/test_tensorrt_build.py builds real engines")
    assert main(["compile", "--bundle", str(nano_bundle[0])]) == 2
    assert "tensorrt does not import" in capsys.readouterr().err


@pytest.mark.slow
def test_official_weights_without_calib_say_the_calibration_is_synthetic(shared: Path, tmp_path: Path) -> None:
    """Real-data weights meet the synthetic default set: report.md says what it cost and how to pass --calib."""
    out = tmp_path / "official"
    weights = shared / "weights/espnet/espnet_p_2_q_8.pth"
    argv = ["build", "--target", "jetson-xavier-nx", "--weights", str(weights), "--input-size", "64x32"]
    assert main([*argv, "--calib-count", "2", "--eval-scenes", "1", "--no-compile", "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    int8 = report["metrics"]["int8"]
    warning = int8["calibration_warning"]
    assert "synthetic street scenes" in warning and "espnet_p_2_q_8.pth" in warning and "--calib DIR" in warning
    assert f"{int8['int8_mac_share']:.1%} of conv MACs stay in INT8" in warning
    markdown = (out / "report.md").read_text()
    assert f"**Calibration:** {warning}." in markdown
    assert f"Hold-out ({int8['holdout_scheme']}): " in markdown and int8["holdout_scheme"] == "definition"
    assert real_data_source(Checkpoint.load(out / "checkpoint.pt")) is not None


def test_calibration_warning_only_for_real_data_weights_without_calib() -> None:
    quantized = {"int8_mac_share": 0.5, "pixel_agreement": 0.97}
    trained = Checkpoint(
        "espnet", {}, cityscapes_classes(), ESPNET_CITYSCAPES, {}, meta={"trained_with": {"data": "/c"}}
    )
    assert "weights trained on /c" in (synthetic_calibration_warning(trained, None, quantized) or "")
    assert synthetic_calibration_warning(trained, "frames/", quantized) is None
    synthetic = Checkpoint(
        "espnet", {}, cityscapes_classes(), ESPNET_CITYSCAPES, {}, meta={"trained_with": {"data": None}}
    )
    assert synthetic_calibration_warning(synthetic, None, quantized) is None


def test_the_printed_run_command_is_one_that_run_takes(tmp_path: Path) -> None:
    """The line `edgekit build` prints after a build goes through `edgekit run`'s own parser (it once named a
    --model flag that run does not have)."""
    from edgekit.cli import build_parser
    from edgekit.cli.build import run_command

    command = run_command(tmp_path / "bundle")
    assert command[:2] == ["edgekit", "run"]
    args = build_parser().parse_args(command[1:])
    assert args.func.__module__ == "edgekit.cli.run"
    assert args.bundle == tmp_path / "bundle" and args.source == "0"


def test_the_cli_leaves_the_build_defaults_to_build_options() -> None:
    """Flags left out reach BuildOptions as its own defaults (one owner), and --help shows them from there."""
    import argparse

    from edgekit.cli import build_parser

    parser = build_parser()
    plain = vars(parser.parse_args(["build", "--target", "cpu-x86"]))
    assert not {"train_seconds", "eval_scenes"} & set(plain)
    argv = ["build", "--target", "cpu-x86", "--train-seconds", "9", "--eval-scenes", "3"]
    given = vars(parser.parse_args(argv))
    assert (given["train_seconds"], given["eval_scenes"]) == (9.0, 3)
    fields = {f.name: f for f in dataclasses.fields(BuildOptions)}
    assert {"train_seconds", "eval_scenes"} <= set(fields)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(subparsers.choices["build"].format_help().split())
    assert f"training time budget in seconds (default {fields['train_seconds'].default})" in text
    assert f"held-out scenes for the accuracy figures (default {fields['eval_scenes'].default})" in text


def test_each_stage_is_a_task_and_a_log_line(
    tiny_espnet_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """build() takes no console: each stage is an events task and ends in one plain "✓ [i/n] stage" record."""
    from edgekit.board import events

    seen: list[str] = []

    class Recorder(events.Renderer):
        def started(self, task: events.Task) -> None:
            seen.append(task.description)

    options = BuildOptions(
        target="cpu-x86", checkpoint=tiny_espnet_checkpoint, input_size=(64, 32), precision="fp32", eval_scenes=1,
        output=tmp_path / "b",
    )  # fmt: skip
    previous = events.install(Recorder())
    try:
        with caplog.at_level(logging.INFO, logger="edgekit"):
            result = build(options)
    finally:
        events.install(previous)
    names = ["model", "export", "fp16", "accuracy", "classmap", "compile", "bundle"]
    assert [s.name for s in result.stages] == names
    stage_tasks = [d for d in seen if d.startswith("[")]
    assert [d.split(":")[0] for d in stage_tasks] == [f"[{i}/7] {name}" for i, name in enumerate(names, 1)]
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("✓")]
    assert [line.split(" (")[0] for line in done] == [f"✓ [{i}/7] {name}" for i, name in enumerate(names, 1)]
    assert f"loaded {tiny_espnet_checkpoint}" in done[0] and "[green]" not in "".join(done)
