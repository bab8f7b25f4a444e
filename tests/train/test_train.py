"""Training end to end on tiny synthetic data: checkpoints, logs, exact resume after Ctrl-C, corrupt files, eval."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import signal
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO

from edgekit.board.synthetic import generate_scene
from edgekit.checkpoint import Checkpoint
from edgekit.cli import build_parser, main
from edgekit.train import TrainConfig, TrainResult, evaluate, learning_rate, train

TINY = {
    "input_size": (64, 32),
    "batch_size": 2,
    "num_workers": 0,
    "synthetic_train": 4,
    "synthetic_val": 2,
    "threads": 1,
}


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One epoch of ESPNet-C on tiny synthetic scenes, shared by the tests that only read its outputs."""
    out = tmp_path_factory.mktemp("synthetic_run")
    return train(TrainConfig(model="espnet-c", data=None, out_dir=out, epochs=1, **TINY))  # type: ignore[arg-type]


def test_train_writes_checkpoints_metrics_and_curve(synthetic_run: TrainResult) -> None:
    result = synthetic_run
    tmp_path = result.best.parent
    assert result.best.is_file() and result.last.is_file()
    assert (tmp_path / "training_curve.png").stat().st_size > 1000
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and 0.0 <= records[0]["miou"] <= 1.0 and records[0]["train_loss"] > 0
    assert set(records[0]["iou"]) <= {"road", "sidewalk", "building", "pole", "traffic light", "traffic sign",
                                      "vegetation", "terrain", "sky", "person", "car"}  # fmt: skip
    best = Checkpoint.load(result.best)
    assert best.model_name == "espnet-c" and best.num_classes == 19 and best.classes.names[0] == "road"
    assert best.preprocessing.input_size == (64, 32) and best.preprocessing.channel_order == "BGR"
    assert best.training is None and best.meta["miou"] == pytest.approx(result.best_miou)
    last = Checkpoint.load(result.last)
    assert last.training is not None and last.training["epoch"] == 1 and "optimizer" in last.training
    assert best.build()(torch.zeros(1, 3, 32, 64)).shape == (1, 19, 32, 64)


RESUMABLE = {"model": "espnet-c", "epochs": 2, "seed": 3, **TINY, "synthetic_train": 16}  # 8 steps an epoch


def _train_command(config: dict[str, Any], out: Path) -> list[str]:
    """The `edgekit train` command line of a TrainConfig keyword set (the CLI's other defaults are the config's)."""
    width, height = config["input_size"]
    return [
        sys.executable, "-m", "edgekit", "train", "--model", config["model"], "--epochs", str(config["epochs"]),
        "--seed", str(config["seed"]), "--input-size", f"{width}x{height}", "--batch-size", str(config["batch_size"]),
        "--workers", str(config["num_workers"]), "--synthetic-train", str(config["synthetic_train"]),
        "--synthetic-val", str(config["synthetic_val"]), "--threads", str(config["threads"]), "--out", str(out),
    ]  # fmt: skip


def _assert_equal_tensors(a: Any, b: Any, where: str) -> None:
    """Bit-exact equality of nested dicts/lists of tensors and numbers."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_equal_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _metrics(folder: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("elapsed_s")  # wall time is the one thing an interrupted run cannot share
    return records


def test_sigterm_mid_epoch_saves_a_last_pt_that_resumes_bit_exactly(tmp_path: Path) -> None:
    """A real SIGTERM in the second epoch; the resumed run equals the uninterrupted one exactly: weights,
    BatchNorm buffers, optimizer state and the metrics log (the interrupted step must not touch BN stats)."""
    straight = train(TrainConfig(out_dir=tmp_path / "straight", data=None, **RESUMABLE))  # type: ignore[arg-type]
    cut = tmp_path / "cut"
    process = subprocess.Popen(_train_command(RESUMABLE, cut), cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # the progress lines say where training is: signal it mid-way through epoch 2
        if line.startswith("epoch 2 step"):
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 128 + signal.SIGTERM, rest
    assert "Traceback" not in rest and "interrupted (SIGTERM)" in rest
    assert not list(cut.glob("*.partial"))
    saved = Checkpoint.load(cut / "last.pt")
    assert saved.training is not None and saved.training["epoch"] == 1 and 0 < saved.training["step_in_epoch"] < 8

    resumed = train(TrainConfig(out_dir=cut, data=None, resume=cut / "last.pt", **RESUMABLE))  # type: ignore[arg-type]
    a, b = Checkpoint.load(straight.last), Checkpoint.load(resumed.last)
    _assert_equal_tensors(a.state_dict, b.state_dict, "state_dict")  # BatchNorm running stats and counts included
    assert a.training is not None and b.training is not None
    _assert_equal_tensors(a.training["optimizer"], b.training["optimizer"], "optimizer")
    _assert_equal_tensors(a.training["torch_rng"], b.training["torch_rng"], "torch_rng")
    assert _metrics(tmp_path / "straight") == _metrics(cut)


def test_train_onto_an_earlier_run_needs_resume_or_overwrite(
    synthetic_run: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = synthetic_run.best.parent
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    args = ["train", "--model", "espnet-c", "--input-size", "64x32", "--batch-size", "2", "--workers", "0",
            "--synthetic-train", "4", "--synthetic-val", "2", "--threads", "1", "--epochs", "1"]  # fmt: skip
    assert main([*args, "--out", str(run)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "already holds a training run" in error and "--resume" in error and "--overwrite" in error
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    assert main([*args, "--out", str(mine), "--overwrite"]) == 2  # --overwrite replaces runs, never other files
    assert "is not a training run" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in before.items():
        (copy / name).write_bytes(data)
    (copy / "metrics.jsonl").write_text((copy / "metrics.jsonl").read_text() * 3)  # an "earlier, longer" run
    assert main([*args, "--out", str(copy), "--overwrite"]) == 0
    assert len((copy / "metrics.jsonl").read_text().splitlines()) == 1


def test_resuming_with_another_model_names_both_models(
    synthetic_run: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--model", "espnet", "--input-size", "64x32", "--synthetic-train", "4", "--synthetic-val", "2",
            "--resume", str(synthetic_run.last), "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is a run of espnet-c, not espnet" in error and "--model espnet-c" in error and "classes" not in error


def test_train_on_a_full_disk_is_one_line_and_leaves_no_partial_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        code = main(["train", "--model", "espnet-c", "--input-size", "64x32", "--batch-size", "2", "--workers", "0",
                     "--synthetic-train", "4", "--synthetic-val", "2", "--threads", "1", "--epochs", "1",
                     "--out", str(disk / "run")])  # fmt: skip
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert code == 2 and "no space left on the device" in error and "was not written" in error
        assert not list(disk.rglob("*.partial")) and not (disk / "run" / "best.pt").exists()
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def _road_dataset(data: Path, count: int) -> Path:
    """images/ + masks/ of synthetic scenes with two classes: road and everything else."""
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "classes.yaml").write_text("[road, not road]\n")
    for i in range(count):
        image, label = generate_scene(i, (64, 32))
        cv2.imwrite(str(data / "images" / f"{i}.png"), image)
        cv2.imwrite(str(data / "masks" / f"{i}.png"), (label != 0).astype(np.uint8))
    return data


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    data = _road_dataset(tmp_path / "data", 6)
    (data / "images" / "0.png").write_bytes(b"\x89PNG garbage")  # unreadable header
    png = (data / "images" / "1.png").read_bytes()
    (data / "images" / "1.png").write_bytes(png[: len(png) // 3])  # truncated after a valid header
    out = tmp_path / "out"
    code = main(["train", "--model", "espnet-c", "--data", str(data), "--out", str(out), "--input-size", "64x32",
                 "--epochs", "1", "--batch-size", "2", "--workers", "0", "--threads", "1"])  # fmt: skip
    assert code == 0
    record = json.loads((out / "metrics.jsonl").read_text())
    assert record["skipped"] == 1  # the truncated one; the garbage one was dropped before training
    assert Checkpoint.load(out / "best.pt").classes.names == ("road", "not road")


def test_fine_tuning_replaces_the_classifier_and_eval_prints_the_table(
    synthetic_run: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    first = synthetic_run
    data = _road_dataset(tmp_path / "data", 3)
    config = TrainConfig(model="espnet-c", data=data, out_dir=tmp_path / "b", epochs=1, init_checkpoint=first.best,
                         **TINY)  # type: ignore[arg-type]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="edgekit"):
        tuned = train(config)
    assert "replaced the classifier" in caplog.text
    start, end = Checkpoint.load(first.best).state_dict, Checkpoint.load(tuned.last).state_dict
    assert end["classifier.conv.weight"].shape[0] == 2 and start["classifier.conv.weight"].shape[0] == 19
    assert main(["eval", "--checkpoint", str(tuned.best), "--data", str(data)]) == 0
    output = capsys.readouterr().out
    assert "road" in output and "mIoU" in output


def test_cyclic_schedule_follows_espnetv2() -> None:
    config = TrainConfig(model="espnet", data=None, out_dir=Path("."), epochs=100, lr=0.01, schedule="cyclic")
    # HybirdLR(base 0.01, clr_max 60, 100 epochs): warm-up at lr, then 5*lr .. lr in cycles of 5, then linear.
    assert [round(learning_rate(config, e / 100), 4) for e in range(8)] == [0.01, 0.05, 0.04, 0.03, 0.02, 0.01,
                                                                            0.05, 0.04]  # fmt: skip
    assert learning_rate(config, 0.6) == pytest.approx(0.01 * (1 - 1 / 41))
    assert learning_rate(config, 1.0) == 0.0
    assert learning_rate(TrainConfig(model="espnet", data=None, out_dir=Path("."), lr=0.01), 0.5) == pytest.approx(
        0.01 * 0.5**0.9
    )


def test_the_train_and_eval_commands_leave_their_defaults_to_the_library() -> None:
    """Flags left out stay out of the namespace (TrainConfig's and evaluate()'s defaults apply), and every flag
    given lands on a field of the same name (a misspelt dest would be dropped silently)."""
    parser = build_parser()
    bare = parser.parse_args(["train", "--model", "espnet-c", "--out", "runs/x"])
    assert {f.name for f in fields(TrainConfig) if hasattr(bare, f.name)} == {"model", "data", "out_dir"}
    every = parser.parse_args(
        ["train", "--model", "espnet-c", "--out", "runs/x", "--data", "d", "--input-size", "64x32", "--epochs", "3",
         "--time-budget", "5", "--batch-size", "2", "--lr", "0.01", "--optimizer", "sgd", "--schedule", "cyclic",
         "--class-weighting", "none", "--init", "a.pt", "--resume", "b.pt", "--overwrite", "--workers", "1",
         "--seed", "4", "--synthetic-train", "6", "--synthetic-val", "2", "--crop", "32x16", "--threads", "1",
         "--no-augment"]
    )  # fmt: skip
    given = {name: value for name, value in vars(every).items() if name not in ("command", "func")}
    assert set(given) <= {f.name for f in fields(TrainConfig)}
    assert len(given) == 21 and given["crop_size"] == (32, 16) and given["augment"] is False

    parameters = inspect.signature(evaluate).parameters
    bare = parser.parse_args(["eval", "--checkpoint", "best.pt"])
    assert {name for name in parameters if hasattr(bare, name)} == {"checkpoint", "data"}
    every = parser.parse_args(["eval", "--checkpoint", "best.pt", "--data", "d", "--split", "test", "--batch-size",
                               "2", "--workers", "1", "--synthetic-val", "3", "--seed", "1"])  # fmt: skip
    assert {name for name in vars(every) if name not in ("command", "func")} == set(parameters)


def _help_of(parser: argparse.ArgumentParser, command: str) -> str:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(subparsers.choices[command].format_help().split())  # unwrapped


def test_help_shows_the_library_defaults_read_when_help_is_printed() -> None:
    """--help names each default the library owns (read from TrainConfig / evaluate() only when help is printed,
    so building the parser imports no host code), and a missing host half leaves the help without them."""
    from edgekit.cli.common import library_defaults_help

    defaults = TrainConfig("espnet", None, Path("x"))
    text = _help_of(build_parser(), "train")
    assert f"passes over the training set (default {defaults.epochs})" in text
    assert f"(default {defaults.input_size[0]}x{defaults.input_size[1]})" in text and f"(default {defaults.lr})" in text
    assert "--overwrite replace an earlier run in --out (without it only --resume may) --workers" in text  # a switch
    split = inspect.signature(evaluate).parameters["split"].default
    assert f"split to score (default {split})" in _help_of(build_parser(), "eval")

    def host_half_missing() -> dict[str, Any]:
        raise ImportError("No module named 'torch'")

    board = argparse.ArgumentParser(prog="x", formatter_class=library_defaults_help(host_half_missing))
    board.add_argument("--epochs", default=argparse.SUPPRESS, help="passes")
    assert "--epochs EPOCHS passes" in " ".join(board.format_help().split())
