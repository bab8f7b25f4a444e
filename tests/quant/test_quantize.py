"""INT8 Q/DQ quantization through real onnxruntime: graph form, cache format, report, errors, official ESPNet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import edgekit.quant
from edgekit.board import events
from edgekit.board.backends.tensorrt_backend.cache import (
    cache_header,
    calibrator_for,
    hex_to_scale,
    read_cache,
    retarget_cache_file,
    scale_to_hex,
    trt_version_int,
    write_cache,
)
from edgekit.checkpoint import Checkpoint
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.export import export_onnx, ort_session, read_metadata
from edgekit.quant import FP16_QDQ_OPSET, QuantizeOptions, load_calibration, qdq_to_fp16, quantize_int8
from edgekit.quant.fold import fold_batchnorm
from edgekit.quant.scoring import CLASS_IOU_FLOOR, class_iou, confident_pixels, confusion


@pytest.fixture(scope="module")
def tiny_onnx(tiny_espnet_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("q") / "tiny.onnx"
    return export_onnx(Checkpoint.load(tiny_espnet_checkpoint), output).output


@pytest.fixture(scope="module")
def tiny_report(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    calibration = load_calibration("default", read_metadata(tiny_onnx).preprocessing, count=4)
    out = tmp_path_factory.mktemp("q8") / "tiny.int8.onnx"
    return quantize_int8(
        tiny_onnx,
        calibration,
        out,
        QuantizeOptions(method="percentile", max_drop=None),
        calibration_cache=out.with_suffix(".calib"),
    )


def test_cache_format_matches_tensorrt() -> None:
    assert scale_to_hex(1 / 127) == "3c010204"
    assert scale_to_hex(0.125) == "3e000000"
    assert hex_to_scale("4000889d") == pytest.approx(2.008338, rel=1e-6)
    assert (trt_version_int("8.2.1"), trt_version_int("8.6.2"), trt_version_int("10.3.0")) == (8201, 8602, 100300)


def test_cache_round_trip_and_names_with_colons(tmp_path: Path) -> None:
    path = write_cache(tmp_path / "c.calib", {"input": 1.0, "input_1:0": 0.0, "/x/Conv_output_0": 12.7}, "10.3.0")
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    assert lines[2] == "input_1:0: 0"
    version, algorithm, scales = read_cache(path)
    assert (version, algorithm) == (100300, "EntropyCalibration2")
    assert scales["/x/Conv_output_0"] == pytest.approx(0.1)
    with pytest.raises(EdgekitError, match="non-finite"):
        write_cache(tmp_path / "bad.calib", {"x": float("nan")}, "8.6.2")


def test_cache_headers_are_retargeted_and_pick_the_calibrator(
    tiny_onnx: Path, tiny_report: object, tmp_path: Path
) -> None:
    """On caches `edgekit quantize` wrote: the header's algorithm picks the calibrator class (MinMax for minmax),
    the DLA gets EntropyCalibration2, and compile rewrites the header for the installed release, scales unchanged."""
    entropy = Path(report_cache(tiny_report))
    calibration = load_calibration("default", read_metadata(tiny_onnx).preprocessing, count=4)
    minmax_report = quantize_int8(
        tiny_onnx,
        calibration,
        tmp_path / "minmax.onnx",
        QuantizeOptions(method="minmax", max_drop=None, trt_version="8.5.2"),
        calibration_cache=tmp_path / "minmax.cache",
    )
    minmax = Path(str(minmax_report.calibration_cache))
    assert cache_header(minmax.read_bytes(), "minmax") == (8502, "MinMaxCalibration")
    assert calibrator_for("MinMaxCalibration", dla=False) == ("IInt8MinMaxCalibrator", "MinMaxCalibration", None)
    dla_class, dla_header, why = calibrator_for("MinMaxCalibration", dla=True)
    assert (dla_class, dla_header) == ("IInt8EntropyCalibrator2", "EntropyCalibration2") and why and "DLA" in why
    assert calibrator_for(cache_header(entropy.read_bytes(), "e")[1], dla=False)[0] == "IInt8EntropyCalibrator2"
    with pytest.raises(EdgekitError, match="LegacyCalibration calibration cache cannot be used"):
        calibrator_for("LegacyCalibration", dla=False)

    # JetPack 5.0.2 ships TensorRT 8.4.1 where the Xavier profile says 8.5.2
    before, scales_before = minmax.read_bytes(), read_cache(minmax)[2]
    assert retarget_cache_file(minmax, "8.4.1") == ("TRT-8502-MinMaxCalibration", "TRT-8401-MinMaxCalibration")
    after = minmax.read_bytes()
    assert after.split(b"\n", 1)[1] == before.split(b"\n", 1)[1]  # every scale line byte for byte
    assert read_cache(minmax)[:2] == (8401, "MinMaxCalibration") and read_cache(minmax)[2] == scales_before
    assert retarget_cache_file(minmax, "8.4.1") is None  # already right: the file is left alone
    bad = tmp_path / "bad.cache"
    bad.write_text("calibration v2\ninput: 3c010204\n")
    with pytest.raises(EdgekitError, match="not a TensorRT calibration cache"):
        retarget_cache_file(bad, "8.4.1")


def test_strongly_typed_int8_model_is_fp16_between_its_qdq_pairs(tiny_report: object, tmp_path: Path) -> None:
    """TensorRT 11 runs float layers at the ONNX's type: the 11.x INT8 model carries FP16 there (opset 19 scales)."""
    source = onnx.load(str(tiny_report.output))  # type: ignore[attr-defined]
    report = qdq_to_fp16(tiny_report.output, tmp_path / "model.int8.qdq.onnx", tolerance=0.2)  # type: ignore[attr-defined]
    model = onnx.load(str(report.output))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [FP16_QDQ_OPSET]
    initializers = {i.name: i for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) == sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in source.graph.node) > 0
    assert {initializers[n.input[1]].data_type for n in qdq if n.input[1] in initializers} == {onnx.TensorProto.FLOAT16}
    float_weights = {i.data_type for i in model.graph.initializer if i.data_type in (1, 10)}
    assert float_weights == {onnx.TensorProto.FLOAT16}  # no FP32 layer left for TensorRT 11 to run in FP32
    assert report.argmax_agreement >= 0.8 and report.max_abs_diff < 1e-2
    assert not list(tmp_path.glob(".*"))  # the opset-19 staging copy is gone


def report_cache(report: object) -> str:
    return str(report.calibration_cache)  # type: ignore[attr-defined]


def test_qdq_graph_is_in_tensorrt_form(tiny_report: object) -> None:
    report = tiny_report
    model = onnx.load(str(report.output))  # type: ignore[attr-defined]
    nodes = list(model.graph.node)
    producers = {o: n for n in nodes for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in nodes if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and all(producers[n.input[0]].op_type == "DequantizeLinear" for n in convs)
    for conv in convs:
        weight_dq = producers[conv.input[1]]
        scales, zeros = inits[weight_dq.input[1]], inits[weight_dq.input[2]]
        channels = inits[producers[weight_dq.input[0]].input[0]].shape[0 if conv.op_type == "Conv" else 1]
        assert scales.shape == (channels,), "per-channel weights"
        assert zeros.dtype == np.int8 and not zeros.any(), "symmetric INT8"
    for node in nodes:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            assert inits[node.input[2]].dtype == np.int8 and inits[node.input[2]] == 0
    # Regression (onnxruntime work-around): only convolutions may read a dequantized activation.
    for node in nodes:
        if node.op_type not in ("Conv", "ConvTranspose", "QuantizeLinear", "DequantizeLinear"):
            assert not any(producers.get(i) and producers[i].op_type == "DequantizeLinear" for i in node.input)
    assert read_metadata(report.output).preprocessing.input_size == (128, 64)  # type: ignore[attr-defined]


def test_report_and_cache(tiny_report: object, tiny_onnx: Path) -> None:
    report = tiny_report
    data = json.loads(json.dumps(report.to_dict()))  # type: ignore[attr-defined]
    assert data["int8_mac_share"] == 1.0 and data["int8_layers"] == data["conv_layers"]
    assert 0.5 < data["pixel_agreement"] <= 1.0 and 0 < data["miou_vs_fp32"] <= 1.0
    assert len(data["sensitivity"]) == data["conv_layers"] and data["excluded"] == []
    assert data["folding"]["folded_into_conv"] >= 1
    version, algorithm, scales = read_cache(report.calibration_cache)  # type: ignore[attr-defined]
    assert (version, algorithm) == (8602, "EntropyCalibration2")
    model = onnx.load(str(tiny_onnx))
    conv_inputs = {n.input[0] for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")}
    assert {"input", *conv_inputs} <= set(scales)
    assert all(np.isfinite(s) and s >= 0 for s in scales.values())


def test_mixed_precision_meets_a_tight_budget(tiny_onnx: Path, tiny_report: object, tmp_path: Path) -> None:
    from edgekit.board.synthetic import generate_scene

    preprocessing = read_metadata(tiny_onnx).preprocessing
    calibration = load_calibration("default", preprocessing, count=4)
    scenes = [generate_scene(seed, preprocessing.input_size) for seed in (7000, 7001)]
    strict = quantize_int8(
        tiny_onnx,
        calibration,
        tmp_path / "s.onnx",
        QuantizeOptions(method="minmax", max_drop=0.0),
        holdout=[preprocessing(image) for image, _ in scenes],
        holdout_labels=[label for _, label in scenes],
    )
    assert strict.met_budget and strict.pixel_agreement == 1.0
    assert strict.miou_labels_int8 == strict.miou_labels_fp32 is not None
    assert strict.int8_mac_share < 1.0 and strict.excluded
    assert all(layer.agreement_alone is not None for layer in strict.excluded[:1])


def test_bad_inputs_fail_clearly(tiny_onnx: Path, tiny_espnet_checkpoint: Path, tmp_path: Path) -> None:
    preprocessing = read_metadata(tiny_onnx).preprocessing
    calibration = load_calibration("default", preprocessing, count=1)
    with pytest.raises(EdgekitError, match="not found"):
        quantize_int8(tmp_path / "none.onnx", calibration, tmp_path / "o.onnx")
    wrong = load_calibration("default", preprocessing.with_size(64, 32), count=1)
    with pytest.raises(EdgekitError, match="use the model's preprocessing size"):
        quantize_int8(tiny_onnx, wrong, tmp_path / "o.onnx")
    argmax = export_onnx(Checkpoint.load(tiny_espnet_checkpoint), tmp_path / "a.onnx", argmax=True).output
    with pytest.raises(EdgekitError, match="without --argmax"):
        quantize_int8(argmax, calibration, tmp_path / "o.onnx")
    no_conv = tmp_path / "relu.onnx"
    torch.onnx.export(torch.nn.ReLU(), (torch.zeros(1, 3, 64, 128),), str(no_conv), dynamo=False)
    with pytest.raises(EdgekitError, match="no Conv"):
        quantize_int8(no_conv, calibration, tmp_path / "o.onnx")


def test_fold_batchnorm_after_concat_is_exact(tiny_onnx: Path) -> None:
    model = onnx.load(str(tiny_onnx))
    folded, report = fold_batchnorm(model)
    assert report.split_after_concat >= 1
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 128)).astype(np.float32)
    expected = ort_session(model.SerializeToString()).run(None, {"input": x})[0]
    actual = ort_session(folded.SerializeToString()).run(None, {"input": x})[0]
    assert np.abs(actual - expected).max() < 1e-4


def test_cli_quantize_and_bare_onnx(tiny_onnx: Path, tmp_path: Path) -> None:
    output = tmp_path / "cli.int8.onnx"
    args = ["quantize", "--onnx", str(tiny_onnx), "--calib", "default", "--count", "2", "-o", str(output)]
    assert main([*args, "--method", "minmax", "--max-drop", "0.5"]) == 0
    assert output.is_file() and output.with_suffix(".calib").is_file()
    bare = tmp_path / "bare.onnx"
    stripped = onnx.load(str(tiny_onnx))
    del stripped.metadata_props[:]
    onnx.save(stripped, str(bare))
    assert main(["quantize", "--onnx", str(bare), "--calib", "default", "-o", str(tmp_path / "b.onnx")]) == 2
    assert main(["quantize", "--onnx", str(tiny_onnx), "--calib", str(tmp_path / "empty"), "-o", str(output)]) == 2


def test_default_holdout_is_drawn_from_real_calibration_images(
    tiny_onnx: Path, tmp_path: Path, write_frames: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --holdout and a folder of photos: every photo is scored on ranges of the other folds, and it says so."""
    photos = write_frames(tmp_path / "photos", 5, size=(256, 128))
    output, summary = tmp_path / "cv.int8.onnx", tmp_path / "cv.json"
    args = ["quantize", "--onnx", str(tiny_onnx), "--calib", str(photos[0].parent), "--max-drop", "0.5"]
    assert main([*args, "-o", str(output), "--json", str(summary)]) == 0
    said = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "hold-out (cross-validated): 4-fold cross-validation over the 5 calibration images" in said
    report = json.loads(summary.read_text())
    assert report["holdout_scheme"] == "cross-validated" and report["calibration_images"] == 5
    # the random tiny network is confident nowhere: said, and scored on every pixel rather than on none
    assert any("scored on every pixel" in note for note in report["notes"])
    assert report["pixel_agreement_per_image"] == report["pixel_agreement_all_pixels"]
    assert sorted(report["holdout"]) == sorted(str(p) for p in photos)
    assert len(report["pixel_agreement_per_image"]) == len(report["pixel_agreement_all_pixels"]) == 5
    assert report["pixel_agreement"] == min(report["pixel_agreement_per_image"]) >= 0.5
    names = read_metadata(tiny_onnx).classes.names
    assert report["class_iou_vs_fp32"] and set(report["class_iou_vs_fp32"]) <= set(names)
    assert all(0 <= v <= 1 for v in report["class_iou_vs_fp32"].values())
    assert all(report["class_iou_vs_fp32"][c] < report["class_iou_floor"] for c in report["classes_below_iou_floor"])


def test_confident_pixels_are_those_fp32_gives_at_least_the_threshold() -> None:
    logits = np.zeros((1, 3, 1, 3), np.float32)
    logits[0, 0, 0, 0] = 10.0  # p(top) ~ 1
    logits[0, 1, 0, 1] = np.log(0.9 / 0.05)  # p(top) = 0.9 exactly against two classes of 0.05
    logits[0, 1, 0, 1] += 1e-3
    assert confident_pixels(logits).tolist() == [[[True, True, False]]]  # the last pixel: a three-way tie


def test_class_iou_against_fp32_flags_a_lost_class_not_a_tiny_one() -> None:
    fp32 = np.zeros((1, 100, 100), np.int64)
    fp32[:, :50] = 1
    fp32[:, 50:60] = 2
    fp32[0, 99, 99] = 3
    int8 = np.where(fp32 == 2, 1, fp32)  # INT8 loses every "person" pixel (mmdeploy#637: masks come out empty)
    int8[0, 99, 99] = 0  # and the single "pole" pixel: too few pixels to judge
    result = class_iou(confusion([int8], [fp32], 4), ["road", "car", "person", "pole"])
    assert result.below_floor == ["person"]
    assert result.iou["person"] == result.iou["pole"] == 0.0
    assert result.iou["car"] == pytest.approx(5000 / 6000, abs=1e-4) and result.iou["car"] >= CLASS_IOU_FLOOR


class _RecordingRenderer(events.Renderer):
    def __init__(self) -> None:
        self.finished_tasks: list[tuple[str, int, int | None]] = []

    def finished(self, task: events.Task) -> None:
        self.finished_tasks.append((task.description, task.completed, task.total))


def test_progress_goes_through_the_events_channel(tiny_onnx: Path, tmp_path: Path) -> None:
    """The library only emits: the calibration pass and the sensitivity measurement are tasks, run to their end."""
    calibration = load_calibration("default", read_metadata(tiny_onnx).preprocessing, count=2)
    recorder = _RecordingRenderer()
    previous = events.install(recorder)
    try:
        quantize_int8(tiny_onnx, calibration, tmp_path / "p.onnx", QuantizeOptions(method="minmax", max_drop=None))
    finally:
        events.install(previous)
    assert recorder.finished_tasks == [("calibrating (minmax)", 2, 2), ("per-layer sensitivity", 8, 8)]


def test_the_cli_defaults_are_the_library_options() -> None:
    from edgekit.cli import build_parser

    args = build_parser().parse_args(["quantize", "--onnx", "m.onnx", "--calib", "default", "-o", "m.int8.onnx"])
    defaults = QuantizeOptions()
    assert (args.method, args.max_drop, args.trt_version) == (defaults.method, defaults.max_drop, defaults.trt_version)
    assert tuple(args.exclude) == defaults.exclude


def test_the_package_api_resolves_every_name() -> None:
    """The names imported on first use (edgekit/quant/__init__.py) all exist; others are an AttributeError."""
    for name in edgekit.quant._LAZY:
        assert getattr(edgekit.quant, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'quantise_int8'"):
        _ = edgekit.quant.quantise_int8


@pytest.mark.slow
def test_official_espnet_int8_agrees_with_fp32_on_cityscapes(shared: Path, tmp_path: Path) -> None:
    """The quality bar at 512x256: >= 97 % pixel agreement on both Cityscapes frames, >= 80 % MACs in INT8."""
    from edgekit.board.classes import cityscapes_classes
    from edgekit.board.preprocess import ESPNET_CITYSCAPES
    from edgekit.models import build_model

    model = build_model("espnet")
    model.load_state_dict(torch.load(shared / "weights/espnet/espnet_p_2_q_8.pth", map_location="cpu"), strict=False)
    checkpoint = Checkpoint("espnet", {"p": 2, "q": 8}, cityscapes_classes(), ESPNET_CITYSCAPES, model.state_dict())
    fp32 = export_onnx(checkpoint, tmp_path / "espnet.onnx", input_size=(512, 256)).output
    preprocessing = read_metadata(fp32).preprocessing
    frames = sorted((shared / "samples/cityscapes").glob("*.png"))
    report = quantize_int8(
        fp32,
        load_calibration(shared / "samples/street", preprocessing),
        tmp_path / "espnet.int8.onnx",
        QuantizeOptions(method="percentile"),
        holdout=[preprocessing.load(p) for p in frames],
    )
    assert len(report.pixel_agreement_per_image) == 2
    assert report.pixel_agreement >= 0.97, report.to_dict()
    assert report.int8_mac_share >= 0.80, report.to_dict()
