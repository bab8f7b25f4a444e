"""The build's first stage: the network to deploy, loaded from --checkpoint, imported from official weights, or
trained briefly (synthetic street scenes unless --data) so that a fresh machine gets a meaningful model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgekit.build.inputs import Inputs
from edgekit.build.options import BuildOptions
from edgekit.checkpoint import Checkpoint
from edgekit.train import TrainConfig, train
from edgekit.weights import import_official


def obtain_checkpoint(options: BuildOptions, inputs: Inputs, metrics: dict[str, Any], note: list[str]) -> Checkpoint:
    """The checkpoint to deploy; records where it came from in ``metrics["model_source"]``."""
    if inputs.checkpoint is not None:
        note.append(f"loaded {options.checkpoint} ({inputs.model_name})")
        metrics["model_source"] = {"checkpoint": str(options.checkpoint)}
        return inputs.checkpoint
    if options.weights:
        checkpoint = import_official(inputs.model_name, options.weights, input_size=inputs.size)
        note.append(f"imported official {options.weights.name} as {inputs.model_name}")
        metrics["model_source"] = {"official": dict(checkpoint.meta)}
        return checkpoint
    return train_briefly(options, inputs, metrics, note)


def train_briefly(options: BuildOptions, inputs: Inputs, metrics: dict[str, Any], note: list[str]) -> Checkpoint:
    """``edgekit train`` with the build's time budget and recipe; the best checkpoint of the run."""
    with tempfile.TemporaryDirectory(prefix="edgekit-build-train-") as work:
        config = TrainConfig(
            model=inputs.model_name,
            data=options.data,
            out_dir=Path(work),
            input_size=inputs.size,
            crop_size=inputs.train_crop,
            epochs=options.train_epochs,
            time_budget_s=options.train_seconds,
            batch_size=options.train_batch_size,
            lr=options.train_lr,
            class_weighting=options.train_class_weighting,
            seed=options.seed,
            synthetic_train=800,
            synthetic_val=options.train_val_scenes,
            num_workers=1,
            threads=1,
        )
        result = train(config)
        checkpoint = Checkpoint.load(result.best)
    data = str(options.data) if options.data else "synthetic street scenes"
    metrics["model_source"] = {
        "trained_on": data,
        "seconds_budget": options.train_seconds,
        "input_size": list(inputs.size),
        "train_crop": list(inputs.train_crop),
        "recipe": {
            "batch_size": options.train_batch_size,
            "lr": options.train_lr,
            "class_weighting": options.train_class_weighting,
        },
        "best_val_miou": result.best_miou,
        "epochs_run": len(result.history),
    }
    note.append(
        f"trained {inputs.model_name} on {data} for <= {options.train_seconds:g} s, val mIoU {result.best_miou:.3f}"
    )
    return checkpoint
