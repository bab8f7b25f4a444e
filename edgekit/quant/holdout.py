"""Which images score INT8 against FP32, on which calibration ranges, and why: never an image on ranges it calibrated.

Without ``--holdout`` the hold-out comes from the user's own calibration images when they are real. A network
trained on real streets is unsure on synthetic scenes, so a synthetic hold-out makes the mixed-precision search
send layers back to float that real frames do not need (official ESPNet calibrated on the 13 street photos: 61 %
of conv MACs in INT8 with two synthetic hold-out scenes, 98.6 % with the Cityscapes frames as hold-out).

- ``MIN_SPLIT_IMAGES`` or more images: a fixed split. A quarter of them (at most ``MAX_SPLIT_HOLDOUT``), at
  evenly spaced positions of the sorted list, are held out and never calibrated on; the written model is
  calibrated on the rest.
- 2 to ``MIN_SPLIT_IMAGES - 1`` images: k-fold cross-validation, so that every image is scored (a quarter of 13
  photos would be 3, and the worst of them decides how many layers stay in float). Each fold is scored on ranges
  calibrated on the other folds only; the written model is calibrated on every image, and its agreement is the
  cross-validated estimate.
- A synthetic calibration set, or a single image: synthetic scenes (seeds ``HOLDOUT_SEEDS``+), said so.

Photos the user calibrates on need not be in the network's domain: on the 13 street photos the official ESPNet's
mean top-1 probability is 0.68-0.84 (0.93 on the Cityscapes frames), and INT8 with every conv quantized agrees
with FP32 on only 75-95 % of their pixels (96.3 / 99.0 % on the Cityscapes frames). The pixels that flip are
those where FP32 itself is undecided. A hold-out drawn from the calibration images is therefore scored on the
pixels where FP32 is confident (top-1 probability >= ``CONFIDENT_PROBABILITY``); given hold-outs, which the user
chose as evaluation frames, on every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.board.synthetic import synthetic_frames
from edgekit.errors import EdgekitError
from edgekit.quant.calibration import CalibrationSet

HOLDOUT_SEEDS = 1000  # synthetic hold-out scenes start here, far from calibration seeds
SYNTHETIC_HOLDOUT_SCENES = 2
MIN_SPLIT_IMAGES = 16  # from here a quarter can be held out and still leave >= 12 images to calibrate on
HOLDOUT_FRACTION = 0.25
MAX_SPLIT_HOLDOUT = 8  # each mixed-precision step scores every hold-out image
MAX_FOLDS = 4
CONFIDENT_PROBABILITY = 0.9  # see the module docstring: sample6 of the street photos, every conv in INT8, agrees
# on 96.2 % of its confident pixels (fails the 3 % budget), 98.0 % with the one layer the Cityscapes frames keep
# in float; at 0.5 it is 84-85 % either way, so no budget could tell the two apart

CONFIDENT_PIXELS = (
    f"scored on the pixels where FP32's top-1 probability is >= {CONFIDENT_PROBABILITY} (photos outside the "
    "network's domain leave FP32 undecided on many pixels, which flip under any perturbation)"
)


@dataclass
class HoldoutFold:
    """Hold-out inputs scored on ranges from every calibration part except ``uncalibrated_part`` (None: all)."""

    inputs: list[np.ndarray]
    sources: list[str]
    uncalibrated_part: int | None
    confident_only: bool = False  # score only pixels where FP32's top-1 probability >= CONFIDENT_PROBABILITY


@dataclass
class HoldoutPlan:
    scheme: str  # given | definition | split | cross-validated | synthetic
    reason: str
    parts: list[list[int]]  # disjoint indices into the calibration set; together they calibrate the written model
    folds: list[HoldoutFold]

    @property
    def sources(self) -> list[str]:
        return [source for fold in self.folds for source in fold.sources]


def plan_holdout(
    calibration: CalibrationSet,
    holdout: Sequence[np.ndarray] | None,
    names: Sequence[str] | None,
    input_dtype: str,
) -> HoldoutPlan:
    """The hold-out ``quantize_int8`` scores on: the one given, the definition's, or drawn as the module says."""
    everything = [list(range(len(calibration)))]
    if holdout is not None:
        if len(holdout) == 0:
            raise EdgekitError("the hold-out set is empty")
        sources = list(names) if names else [f"hold-out image {i}" for i in range(len(holdout))]
        fold = HoldoutFold(list(holdout), sources, None)
        return HoldoutPlan("given", "the hold-out images passed in, scored on every pixel", everything, [fold])
    if calibration.holdout is not None and len(calibration.holdout):
        fold = HoldoutFold(list(calibration.holdout.inputs(input_dtype)), calibration.holdout.sources, None)
        why = f"the hold-out named in calibration definition {calibration.name}, scored on every pixel"
        return HoldoutPlan("definition", why, everything, [fold])
    count = len(calibration)
    if calibration.synthetic or count < 2:
        why = (
            "the calibration set is synthetic, so is the hold-out (scored on every pixel)"
            if calibration.synthetic
            else "a single calibration image leaves none to hold out; pass --holdout with real frames"
        )
        return HoldoutPlan("synthetic", why, everything, [_synthetic_fold(calibration, input_dtype)])
    if count >= MIN_SPLIT_IMAGES:
        held = _evenly_spaced_interior(count, min(MAX_SPLIT_HOLDOUT, round(count * HOLDOUT_FRACTION)))
        rest = [i for i in range(count) if i not in held]
        reason = (
            f"{len(held)} of the {count} calibration images (a quarter, at most {MAX_SPLIT_HOLDOUT}, evenly spaced in "
            f"sorted order) held out and never calibrated on; the model is calibrated on the other {len(rest)}"
            f"; {CONFIDENT_PIXELS}"
        )
        fold = _fold(calibration.subset(held), input_dtype, None)
        return HoldoutPlan("split", reason, [rest], [fold])
    folds = min(count, MAX_FOLDS)
    parts = [list(range(start, count, folds)) for start in range(folds)]
    reason = (
        f"{folds}-fold cross-validation over the {count} calibration images (fewer than {MIN_SPLIT_IMAGES}, so "
        "every image is scored): each image is scored on ranges calibrated on the other folds only; the model is "
        f"calibrated on all {count}; {CONFIDENT_PIXELS}"
    )
    return HoldoutPlan(
        "cross-validated",
        reason,
        parts,
        [_fold(calibration.subset(part), input_dtype, index) for index, part in enumerate(parts)],
    )


def _evenly_spaced_interior(count: int, wanted: int) -> list[int]:
    """``wanted`` distinct indices of ``range(count)`` spread evenly, not crowding either end."""
    return sorted({int(i) for i in np.linspace(0, count - 1, wanted + 2)[1:-1].round()})


def _fold(images: CalibrationSet, input_dtype: str, uncalibrated_part: int | None) -> HoldoutFold:
    """Calibration images held out: scored on the pixels where FP32 is confident (see the module docstring)."""
    return HoldoutFold(list(images.inputs(input_dtype)), images.sources, uncalibrated_part, confident_only=True)


def _synthetic_fold(calibration: CalibrationSet, input_dtype: str) -> HoldoutFold:
    pp = calibration.preprocessing
    frames = synthetic_frames(SYNTHETIC_HOLDOUT_SCENES, pp.input_size, HOLDOUT_SEEDS)
    inputs = [pp.to_uint8_chw(f) if input_dtype == "uint8" else pp(f) for f in frames]
    sources = [f"synthetic scene seed {HOLDOUT_SEEDS + i}" for i in range(SYNTHETIC_HOLDOUT_SCENES)]
    return HoldoutFold(inputs, sources, None)
