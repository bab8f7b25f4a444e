"""Every input of a build, checked before the first stage: a bad --calib fails at once, not after training."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edgekit.board.targets import PrecisionChoice, Target
from edgekit.build.options import DEFAULT_CALIBRATION, DEFAULT_MODEL, BuildOptions
from edgekit.checkpoint import Checkpoint
from edgekit.errors import EdgekitError
from edgekit.models import ModelSpec, get_spec
from edgekit.quant import CalibrationSet, load_calibration

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """The checked inputs: what the stages use instead of re-reading the options."""

    model_name: str
    size: tuple[int, int]
    train_crop: tuple[int, int]
    checkpoint: Checkpoint | None  # loaded from --checkpoint
    calibration: CalibrationSet | None  # loaded when the build quantizes


def check_inputs(options: BuildOptions, target: Target, choice: PrecisionChoice) -> Inputs:
    """Load the checkpoint and calibration set and check every number; raises EdgekitError on the first problem."""
    if options.checkpoint and options.weights:
        raise EdgekitError("give either --checkpoint or --weights, not both")
    checkpoint = Checkpoint.load(options.checkpoint) if options.checkpoint else None
    if checkpoint is not None and options.model and options.model != checkpoint.model_name:
        raise EdgekitError(f"--model {options.model} but {options.checkpoint} holds {checkpoint.model_name}")
    model_name = checkpoint.model_name if checkpoint is not None else options.model or DEFAULT_MODEL
    spec = get_spec(model_name)
    size = options.input_size or target.input_size
    spec.check_input_size(size, "--input-size" if options.input_size else f"{target.name}'s input size")
    width, height = size
    crop = options.train_size or (max(32, width // 64 * 32), max(32, height // 64 * 32))
    if options.weights is not None and not options.weights.is_file():
        raise EdgekitError(f"--weights {options.weights} not found")
    if checkpoint is None and options.weights is None:  # the build trains
        _check_training(options, spec, crop)
    if options.eval_scenes < 1:
        raise EdgekitError(f"--eval-scenes must be at least 1, got {options.eval_scenes}")
    if options.dla_core is not None and not 0 <= options.dla_core < target.dla_cores:
        raise EdgekitError(f"--dla-core {options.dla_core}: {target.name} has {target.dla_cores} DLA cores")
    calibration = None
    if choice.chosen == "int8":
        base = checkpoint.preprocessing if checkpoint is not None else spec.default_preprocessing
        spec_name = options.calib or DEFAULT_CALIBRATION
        calibration = load_calibration(spec_name, base.with_size(*size), count=options.calib_count)
        for message in calibration.notes:
            log.warning("calibration: %s", message)
    elif options.calib or options.calib_count:
        log.warning("--calib is not used: the bundle is %s, not int8", choice.chosen)
    return Inputs(model_name, size, crop, checkpoint, calibration)


def _check_training(options: BuildOptions, spec: ModelSpec, crop: tuple[int, int]) -> None:
    spec.check_input_size(crop, "--train-size")
    if options.data is not None and not options.data.is_dir():
        raise EdgekitError(f"--data {options.data} is not a folder")
    if options.train_seconds <= 0:
        raise EdgekitError(f"--train-seconds must be positive, got {options.train_seconds:g}")
