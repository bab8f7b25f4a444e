"""A run's output folder: which files training writes there, when it may write, and the training curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.board.outputs import check_output_dir
from edgekit.errors import EdgekitError
from edgekit.train.config import TrainConfig

RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "training_curve.png")


def is_training_run(folder: Path) -> bool:
    """Whether every entry of ``folder`` is a file that training writes (the folder is a run, nothing else)."""
    entries = list(folder.iterdir())
    return bool(entries) and all(e.name in RUN_FILES or e.name.endswith(".pt.partial") for e in entries)


def check_out_dir(config: TrainConfig) -> bool:
    """Refuse to write into a folder of other files, or over an earlier run without --resume (of that run) or
    --overwrite; whether this run continues the one in the folder (else the folder's run files are replaced)."""
    out = config.out_dir
    check_output_dir(out, "training output folder", is_training_run, "a training run (best.pt, last.pt, ...)")
    continues_this_run = config.resume is not None and config.resume.resolve().parent == out.resolve()
    if not continues_this_run and not config.overwrite and out.is_dir() and is_training_run(out):
        metrics = out / "metrics.jsonl"
        epochs = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        raise EdgekitError(
            f"{out} already holds a training run ({epochs} epochs in metrics.jsonl); continue it with --resume "
            f"{out / 'last.pt'}, replace it with --overwrite, or choose another --out"
        )
    return continues_this_run


def clear_run_files(out: Path) -> None:
    """--overwrite: nothing of the earlier run may mix with this one."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:red", label="train loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("train loss", color="tab:red")
    miou_axis = loss_axis.twinx()
    miou_axis.plot(epochs, [h["miou"] for h in history], "s-", color="tab:blue", label="val mIoU")
    miou_axis.set_ylabel("validation mIoU", color="tab:blue")
    miou_axis.set_ylim(0, 1)
    fig.suptitle("edgekit training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
