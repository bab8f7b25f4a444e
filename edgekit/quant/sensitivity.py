"""Per-layer sensitivity: which conv layers cost the prediction most in INT8, most sensitive first.

Every layer's local error comes from one probe pass per fold (:func:`edgekit.quant.qdq.probe_model`); the
``MEASURED_CANDIDATES`` with the largest are then measured by their effect on the class map, each alone in INT8,
on the simulation graph (:func:`edgekit.quant.qdq.mask_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.board import events
from edgekit.export import ort_session
from edgekit.quant.calibrate import Ranges
from edgekit.quant.fp32 import Fp32Model
from edgekit.quant.holdout import HoldoutPlan
from edgekit.quant.qdq import mask_model, probe_model
from edgekit.quant.report import LayerSensitivity
from edgekit.quant.scoring import Reference

MEASURED_CANDIDATES = 8  # layers with the largest local error whose effect on the prediction is measured


class Simulator:
    """Any set of conv layers in INT8 and the others in float, in one onnxruntime session per fold: the scalar
    inputs ``qmask_<i>`` of the simulation graph switch layer ``i`` between the two."""

    def __init__(self, fp32: Fp32Model, ranges: Ranges, reference: Reference) -> None:
        self.sessions = [
            ort_session(mask_model(fp32.folded, fp32.layers, a).SerializeToString()) for a in ranges.per_fold
        ]
        self.input_name = fp32.input_name
        self.layer_count = len(fp32.layers)
        self.reference = reference

    def predict(self, enabled: set[int]) -> list[np.ndarray]:
        """Class maps of every scored hold-out input with the layers ``enabled`` in INT8, each on its fold's ranges."""
        switches = {f"qmask_{i}": np.array(1.0 if i in enabled else 0.0, np.float32) for i in range(self.layer_count)}
        return [
            self.sessions[f].run(None, {self.input_name: x, **switches})[0].argmax(1) for f, x in self.reference.inputs
        ]

    def agreement(self, enabled: set[int]) -> float:
        """The budget's measure: the worst hold-out image, on the pixels its fold scores."""
        return min(self.reference.per_image(self.predict(enabled)))

    def agreement_every_pixel(self, enabled: set[int]) -> float:
        """The ranking's measure: mean over the hold-out images of every pixel, undecided ones included, since
        they are the first to flip. Official ESPNet, 13 street photos: ranked on the first image's scored pixels
        alone, 6 layers went to float and the Cityscapes frames agreed on 96.74 %; ranked so, 4 and 97.36 %."""
        return float(np.mean(self.reference.every_pixel(self.predict(enabled))))


@dataclass
class Ranking:
    sensitivity: list[LayerSensitivity]  # per conv layer, in graph order
    order: list[int]  # layer indices, most sensitive first: the measured ones by agreement, then by local error


def rank_layers(fp32: Fp32Model, plan: HoldoutPlan, ranges: Ranges, simulator: Simulator, forced: set[int]) -> Ranking:
    """Local error of every layer; agreement alone of the worst ``MEASURED_CANDIDATES`` not ``forced`` to float."""
    local_error = local_errors(fp32, plan, ranges)
    sensitivity = [
        LayerSensitivity(layer.name, layer.op_type, layer.macs / fp32.total_macs, float(local_error[i]))
        for i, layer in enumerate(fp32.layers)
    ]
    by_error = sorted(range(len(fp32.layers)), key=lambda i: -local_error[i])
    candidates = [i for i in by_error if i not in forced][:MEASURED_CANDIDATES]
    with events.task("per-layer sensitivity", total=len(candidates)) as work:
        for index in candidates:
            sensitivity[index].agreement_alone = simulator.agreement_every_pixel({index})
            work.advance()
    order = sorted(candidates, key=lambda i: sensitivity[i].agreement_alone or 0.0)
    order += [i for i in by_error if i not in candidates]
    return Ranking(sensitivity, order)


def local_errors(fp32: Fp32Model, plan: HoldoutPlan, ranges: Ranges) -> np.ndarray:
    """``|y_int8 - y|^2 / |y|^2`` per conv layer over the hold-out, each fold on its own ranges."""
    noise = np.zeros(len(fp32.layers))
    signal = np.zeros(len(fp32.layers))
    for fold, fold_ranges in zip(plan.folds, ranges.per_fold, strict=True):
        probe, probe_outputs = probe_model(fp32.folded, fp32.layers, fold_ranges)
        session = ort_session(probe.SerializeToString())
        for x in fold.inputs:
            values = session.run(probe_outputs, {fp32.input_name: x})
            noise += np.array(values[0::2], np.float64)
            signal += np.array(values[1::2], np.float64)
    return noise / np.maximum(signal, 1e-20)
