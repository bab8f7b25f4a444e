"""Shared fixtures: the ../shared data folder (present on dev machines and CI, absent in a user's fresh clone)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_edgekit(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m edgekit ARGS`` in a fresh interpreter on this tree, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )  # fmt: skip


@pytest.fixture
def shared() -> Path:
    """Path of ../shared, or a skip saying why the test cannot run without it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (official weights and real samples live there, not in the repo)")
    return SHARED


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB file system (tmpfs) for the full-disk cases; skips where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the full-disk case needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], stderr=subprocess.PIPE)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)  # a failed test left a file open there


def fill_up(folder: Path) -> None:
    """Write a file into ``folder`` until its file system has no byte left."""
    with (folder / "filler").open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.fixture
def write_frames() -> Any:
    """Writes ``count`` synthetic street scenes as PNG files into a folder: to edgekit, a folder of real photos."""
    import cv2

    from edgekit.board.synthetic import generate_scene

    def write(folder: Path, count: int, size: tuple[int, int] = (96, 48)) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"frame{seed:02d}.png" for seed in range(count)]
        for seed, path in enumerate(paths):
            cv2.imwrite(str(path), generate_scene(seed, size)[0])
        return paths

    return write


# --- tiny ESPNet bundles for the runner, backend, source and sink tests (exported here, no build needed) ---
TINY_SIZE = (128, 64)  # (width, height): small enough that a frame infers in milliseconds on one CPU core


def _export_tiny_bundle(
    destination: Path, normalize_in_graph: bool, argmax: bool, size: tuple[int, int] = TINY_SIZE
) -> Path:
    """ESPNet (random weights, seed 0) with optional in-graph normalisation/ArgMax, as a real edgekit bundle."""
    import torch

    from edgekit.board.bundle import Artifacts, BundleWriter, InputSpec, Manifest, ModelInfo, OutputSpec
    from edgekit.board.classes import cityscapes_classes
    from edgekit.board.preprocess import ESPNET_CITYSCAPES
    from edgekit.models import build_model
    from edgekit.models.complexity import measure

    torch.manual_seed(0)
    net = build_model("espnet", num_classes=20).eval()
    preprocessing = ESPNET_CITYSCAPES.with_size(*size)
    gain, bias = (torch.from_numpy(a).view(1, 3, 1, 1) for a in preprocessing.affine())

    class Deployed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("gain", gain)
            self.register_buffer("bias", bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.net(x.float() * self.gain + self.bias if normalize_in_graph else x)
            return out.argmax(dim=1).to(torch.uint8) if argmax else out

    width, height = size
    counted = measure(net, size)
    dtype = torch.uint8 if normalize_in_graph else torch.float32
    example = torch.zeros(1, 3, height, width, dtype=dtype)
    with BundleWriter(destination) as writer, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as edgekit export uses
        torch.onnx.export(
            Deployed().eval(), (example,), str(writer.path("model.onnx")), opset_version=17,
            input_names=["input"], output_names=["classmap" if argmax else "logits"], dynamo=False,
        )  # fmt: skip
        manifest = Manifest(
            model=ModelInfo("espnet", {}, params=counted.params, macs=counted.macs),
            classes=cityscapes_classes(),
            preprocessing=preprocessing,
            input=InputSpec("input", [1, 3, height, width], "uint8" if normalize_in_graph else "float32",
                            normalized_in_graph=normalize_in_graph),
            output=OutputSpec("classmap", "classmap", "uint8") if argmax else OutputSpec("logits", "logits"),
            target="test", target_profile={}, precision="fp32", precision_choice={},
            artifacts=Artifacts(onnx={"fp32": "model.onnx"}, runtime_onnx="model.onnx"),
        )  # fmt: skip
        return writer.commit(manifest).root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uint8 input normalised in-graph, class map from in-graph ArgMax: the runner's fast path."""
    return _export_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny-uint8-argmax", True, True)


@pytest.fixture(scope="session")
def tiny_logits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """float32 normalised input, float logits out: the general path."""
    return _export_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny-float-logits", False, False)


@pytest.fixture(scope="session")
def tiny_espnet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, randomly initialised ESPNet (p=1, q=1, 5 classes) checkpoint at 128x64, for export/quantize."""
    import torch

    from edgekit.board.classes import ClassSet
    from edgekit.board.preprocess import ESPNET_CITYSCAPES
    from edgekit.checkpoint import Checkpoint
    from edgekit.models import build_model

    torch.manual_seed(0)
    model = build_model("espnet", num_classes=5, p=1, q=1)
    path = tmp_path_factory.mktemp("tiny_espnet") / "espnet.ckpt"
    return Checkpoint(
        model_name="espnet",
        model_kwargs={"p": 1, "q": 1},
        classes=ClassSet.generic(5),
        preprocessing=ESPNET_CITYSCAPES.with_size(128, 64),
        state_dict=model.state_dict(),
    ).save(path)


# --- benchmark results for the bench and report tests: the tiny bundle plus a real Q/DQ INT8 variant ---
@pytest.fixture(scope="session")
def int8_bundle(tiny_logits_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny float bundle plus a real Q/DQ INT8 variant made by onnxruntime's static quantizer."""
    import shutil

    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgekit.board.bundle import Bundle, BundleWriter

    source = Bundle.load(tiny_logits_bundle)
    shape = source.manifest.input.shape
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": rng.normal(size=shape).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    destination = tmp_path_factory.mktemp("bench") / "tiny-int8"
    with BundleWriter(destination) as writer:
        shutil.copy(source.runtime_onnx, writer.path("model.onnx"))
        quantize_static(str(source.runtime_onnx), str(writer.path("model.int8.onnx")), Reader(),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=True)  # fmt: skip
        manifest = source.manifest
        manifest.artifacts.onnx = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
        return writer.commit(manifest).root


@pytest.fixture(scope="session")
def bench_document(int8_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real `edgekit bench` run (fp32, int8 and an fp16 the bundle lacks) with a short stop rule, on two
    labelled synthetic street scenes (so both agreement with FP32 and mIoU are measured)."""
    import cv2

    from edgekit.board.measure.bench import Bench, BenchConfig
    from edgekit.board.measure.timing import StopRule
    from edgekit.board.synthetic import generate_scene

    scenes = tmp_path_factory.mktemp("scenes")
    (scenes / "labels").mkdir()
    images = []
    for seed in (0, 1):
        image, label = generate_scene(seed, (256, 128))
        images.append(scenes / f"scene{seed}.png")
        cv2.imwrite(str(images[-1]), image)
        cv2.imwrite(str(scenes / "labels" / f"scene{seed}.png"), label)
    config = BenchConfig(
        bundle=int8_bundle, precisions=["fp32", "int8", "fp16"], backend="onnxruntime", images=images,
        labels=scenes / "labels",
        rule=StopRule(warmup=2, min_runs=8, max_runs=200, budget_s=1.0, target_rel_ci=0.05), profile_runs=2,
        pipeline_frames=4, target="cpu-x86", workdir=tmp_path_factory.mktemp("bench-work"),
    )  # fmt: skip
    return Bench(config).run(command="pytest")


@pytest.fixture(scope="session")
def nano_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One real `edgekit build --target jetson-nano` (brief training on synthetic scenes) shared by the tests."""
    from edgekit.cli import main

    out = tmp_path_factory.mktemp("build") / "nano"
    tiny = ["--input-size", "64x32", "--train-seconds", "2", "--eval-scenes", "2"]
    assert main(["build", "--target", "jetson-nano", *tiny, "-o", str(out)]) == 0
    return out, "jetson-nano"
