"""Training end to end on tiny synthetic data: checkpoints, logs, exact resume after Ctrl-C, corrupt files, eval."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import edgekit.train as training
from edgekit.board.synthetic import generate_scene
from edgekit.checkpoint import Checkpoint
from edgekit.cli import main
from edgekit.train import TrainConfig, TrainResult, learning_rate, train

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


def test_ctrl_c_leaves_a_checkpoint_that_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"model": "espnet", "data": None, "epochs": 2, "seed": 3, **TINY}
    straight = train(TrainConfig(out_dir=tmp_path / "straight", **config))  # type: ignore[arg-type]

    real_step = training._step
    calls = {"n": 0}

    def interrupted_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # the first step of the second epoch
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out_dir=tmp_path / "cut", **config))  # type: ignore[arg-type]
    monkeypatch.setattr(training, "_step", real_step)
    saved = Checkpoint.load(tmp_path / "cut" / "last.pt")
    assert saved.training is not None and saved.training["epoch"] == 1 and saved.training["step_in_epoch"] == 0
    resumed = train(TrainConfig(out_dir=tmp_path / "cut", resume=tmp_path / "cut" / "last.pt", **config))  # type: ignore[arg-type]

    a, b = Checkpoint.load(straight.last).state_dict, Checkpoint.load(resumed.last).state_dict
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert [h["miou"] for h in resumed.history] == pytest.approx([h["miou"] for h in straight.history])


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
    synthetic_run: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = synthetic_run
    data = _road_dataset(tmp_path / "data", 3)
    config = TrainConfig(model="espnet-c", data=data, out_dir=tmp_path / "b", epochs=1, init_checkpoint=first.best,
                         **TINY)  # type: ignore[arg-type]  # fmt: skip
    tuned = train(config)
    assert "replaced the classifier" in capsys.readouterr().err
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
