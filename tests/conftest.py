"""Shared fixtures: the ../shared data folder (present on dev machines and CI, absent in a user's fresh clone)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekit.board import events
from edgekit.board.classes import ClassSet

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_edgekit(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m edgekit ARGS`` in a fresh interpreter on this tree, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )  # fmt: skip


@pytest.fixture(autouse=True)
def library_channel_as_an_embedding_user_gets_it() -> Iterator[None]:
    """An in-process ``main()`` installs the CLI's renderer and console handler for good; each test starts from
    the library's defaults (plain log records, tasks as log lines) whatever ran before it."""
    logger = logging.getLogger("edgekit")
    handlers, level = logger.handlers[:], logger.level
    yield
    events.install(events.Renderer())
    logger.handlers[:] = handlers
    logger.setLevel(level)


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


# --- tiny bundles for the runner, backend, source, sink, bench and report tests: made by `edgekit build` itself ---
TINY_SIZE = (128, 64)  # (width, height): small enough that a frame infers in milliseconds on one CPU core


def _seeded_checkpoint(path: Path, classes: ClassSet, size: tuple[int, int], **model_kwargs: Any) -> Path:
    """A randomly initialised ESPNet (seed 0) saved as an edgekit checkpoint: the input of export and build."""
    import torch

    from edgekit.board.preprocess import ESPNET_CITYSCAPES
    from edgekit.checkpoint import Checkpoint
    from edgekit.models import build_model

    torch.manual_seed(0)
    model = build_model("espnet", num_classes=len(classes), **model_kwargs)
    preprocessing = ESPNET_CITYSCAPES.with_size(*size)
    return Checkpoint("espnet", model_kwargs, classes, preprocessing, model.state_dict()).save(path)


@pytest.fixture(scope="session")
def tiny_cityscapes_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ESPNet (random weights, seed 0) with the 20 Cityscapes classes and the authors' preprocessing at TINY_SIZE."""
    from edgekit.board.classes import cityscapes_classes

    path = tmp_path_factory.mktemp("tiny_cityscapes") / "espnet.ckpt"
    return _seeded_checkpoint(path, cityscapes_classes(), TINY_SIZE)


def _build_tiny(checkpoint: Path, destination: Path, target: str, precision: str, **options: Any) -> Path:
    """`edgekit build` from a checkpoint (no training) at TINY_SIZE, one held-out scene, no engine."""
    from edgekit.build import BuildOptions, build

    made = build(
        BuildOptions(
            target=target, checkpoint=checkpoint, input_size=TINY_SIZE, precision=precision, strict=True,
            eval_scenes=1, compile=False, output=destination, **options,
        )
    )  # fmt: skip
    return made.bundle.root


@pytest.fixture(scope="session")
def tiny_bundle(tiny_cityscapes_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `edgekit build --target cpu-x86` makes: float32 input, an int32 class map out (ArgMax head)."""
    return _build_tiny(tiny_cityscapes_checkpoint, tmp_path_factory.mktemp("bundles") / "tiny-cpu", "cpu-x86", "fp32")


@pytest.fixture(scope="session")
def tiny_logits_onnx(tiny_cityscapes_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `edgekit export` writes from the same checkpoint: float32 input, float logits out (the general path;
    a bundle always ends in the class-map head, a plain ONNX file need not)."""
    from edgekit.checkpoint import Checkpoint
    from edgekit.export import export_onnx

    output = tmp_path_factory.mktemp("onnx") / "tiny-logits.onnx"
    return export_onnx(Checkpoint.load(tiny_cityscapes_checkpoint), output).output


@pytest.fixture(scope="session")
def tiny_uint8_onnx(tiny_cityscapes_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `edgekit export --normalize-in-graph --argmax` writes: uint8 input normalised in-graph, a class map
    out (the runner's fast path)."""
    from edgekit.checkpoint import Checkpoint
    from edgekit.export import export_onnx

    output = tmp_path_factory.mktemp("onnx") / "tiny-uint8-argmax.onnx"
    checkpoint = Checkpoint.load(tiny_cityscapes_checkpoint)
    return export_onnx(checkpoint, output, normalize_in_graph=True, argmax=True).output


@pytest.fixture(scope="session")
def tiny_espnet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, randomly initialised ESPNet (p=1, q=1, 5 classes) checkpoint at 128x64, for export/quantize."""
    path = tmp_path_factory.mktemp("tiny_espnet") / "espnet.ckpt"
    return _seeded_checkpoint(path, ClassSet.generic(5), TINY_SIZE, p=1, q=1)


# --- benchmark results for the bench and report tests: a built bundle with FP32 and Q/DQ INT8 variants ---
@pytest.fixture(scope="session")
def int8_bundle(tiny_cityscapes_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `edgekit build --target titan-x-pascal` makes (FP32 and INT8, no FP16 on Pascal), calibrated on 4
    synthetic scenes."""
    destination = tmp_path_factory.mktemp("bench") / "tiny-int8"
    return _build_tiny(tiny_cityscapes_checkpoint, destination, "titan-x-pascal", "int8", calib_count=4)


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
