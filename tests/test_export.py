"""export_onnx / convert_fp16 through real onnx, onnxsim and onnxruntime at small sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgekit.checkpoint import Checkpoint
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.export import append_classmap_head, convert_fp16, export_onnx, ort_session, read_metadata


def test_export_is_verified_and_carries_preprocessing(tiny_espnet_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = Checkpoint.load(tiny_espnet_checkpoint)
    report = export_onnx(checkpoint, tmp_path / "m.onnx")
    model = onnx.load(str(report.output))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-3
    assert report.argmax_agreement == 1.0
    assert len(report.verified_on) == 2
    meta = read_metadata(report.output)
    assert meta.preprocessing == checkpoint.preprocessing
    assert meta.classes == checkpoint.classes
    assert (meta.input_dtype, meta.output_kind) == ("float32", "logits")
    assert report.to_dict()["input_size"] == [128, 64]


def test_argmax_and_in_graph_normalisation_with_dynamic_batch(tiny_espnet_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = Checkpoint.load(tiny_espnet_checkpoint)
    report = export_onnx(
        checkpoint, tmp_path / "d.onnx", input_size=(96, 64), argmax=True, normalize_in_graph=True, dynamic_batch=True
    )
    assert report.max_abs_diff is None and report.argmax_agreement >= 0.999
    session = ort_session(report.output)
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert session.get_outputs()[0].type == "tensor(int32)"
    preprocessing = checkpoint.preprocessing.with_size(96, 64)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (80, 120, 3), dtype=np.uint8) for _ in range(3)]
    batch = np.concatenate([preprocessing.to_uint8_chw(f) for f in frames])
    (classmap,) = session.run(None, {"input": batch})
    assert classmap.shape == (3, 64, 96)
    with torch.no_grad():
        expected = checkpoint.build()(torch.from_numpy(np.concatenate([preprocessing(f) for f in frames])))
    assert (classmap == expected.argmax(1).numpy()).mean() > 0.999
    assert read_metadata(report.output).input_dtype == "uint8"
    fp16 = convert_fp16(report.output, tmp_path / "d.fp16.onnx")  # the uint8 -> float Cast must stay valid
    assert fp16.max_abs_diff is None and fp16.argmax_agreement > 0.95


def test_export_fails_loudly_above_tolerance(tiny_espnet_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="differs from PyTorch"):
        export_onnx(Checkpoint.load(tiny_espnet_checkpoint), tmp_path / "m.onnx", tolerance=1e-12)


def test_fp16_keeps_float32_io_and_agrees(tiny_espnet_checkpoint: Path, tmp_path: Path) -> None:
    fp32 = export_onnx(Checkpoint.load(tiny_espnet_checkpoint), tmp_path / "m.onnx").output
    report = convert_fp16(fp32, tmp_path / "m.fp16.onnx")
    model = onnx.load(str(report.output))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert report.argmax_agreement > 0.95 and report.verified_on == 2


def test_fp16_agreement_is_judged_unless_the_caller_only_times_it(tiny_espnet_checkpoint: Path, tmp_path: Path) -> None:
    """Random-weight networks timed for latency (scale, bench's zoo) disagree under FP16 at random (a scale
    candidate measured 84.38 %): tolerance=None reports that agreement instead of failing the run."""
    fp32 = export_onnx(Checkpoint.load(tiny_espnet_checkpoint), tmp_path / "m.onnx").output
    with pytest.raises(EdgekitError, match="keep FP32"):
        convert_fp16(fp32, tmp_path / "strict.fp16.onnx", tolerance=-0.01)  # asks for more than 100 %
    assert not (tmp_path / "strict.fp16.onnx").exists()  # a rejected model is not left behind
    report = convert_fp16(fp32, tmp_path / "timed.fp16.onnx", tolerance=None)
    assert report.output.is_file() and 0.0 < report.argmax_agreement <= 1.0
    accepted = report.output.read_bytes()
    with pytest.raises(EdgekitError, match="was not written"):
        convert_fp16(fp32, report.output, tolerance=-0.01)
    assert report.output.read_bytes() == accepted  # the previous model is kept as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "timed.fp16.onnx"]  # no staged file left


def test_bare_onnx_asks_for_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "bare.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(EdgekitError, match="--checkpoint"):
        read_metadata(path)


def test_cli_export(tiny_espnet_checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "cli.onnx"
    code = main(["export", "--checkpoint", str(tiny_espnet_checkpoint), "--input-size", "64x32", "-o", str(output)])
    assert code == 0
    assert read_metadata(output).preprocessing.input_size == (64, 32)
    assert main(["export", "--checkpoint", str(tmp_path / "missing.ckpt"), "-o", str(output)]) == 2


def test_appended_classmap_head_gives_the_argmax_of_the_logits_it_replaces(
    tiny_espnet_checkpoint: Path, tmp_path: Path
) -> None:
    logits_model = export_onnx(Checkpoint.load(tiny_espnet_checkpoint), tmp_path / "logits.onnx").output
    classmap_model = tmp_path / "classmap.onnx"
    classmap_model.write_bytes(logits_model.read_bytes())
    append_classmap_head(classmap_model)
    assert read_metadata(classmap_model).output_kind == "classmap"
    height, width = ort_session(logits_model).get_inputs()[0].shape[2:]
    x = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
    (logits,) = ort_session(logits_model).run(None, {"input": x})
    (classmap,) = ort_session(classmap_model).run(None, {"input": x})
    assert classmap.dtype == np.int32 and classmap.shape == (1, height, width)
    np.testing.assert_array_equal(classmap, logits.argmax(1))
    with pytest.raises(EdgekitError, match="does not end in a single logits output"):
        append_classmap_head(classmap_model)
