"""How INT8 is scored against FP32 on the hold-out: FP32's class maps, the pixels each image is scored on, the
pixel agreement the mixed-precision budget reads, and per-class IoU against FP32 and against labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.board.metrics import confusion_matrix, iou_per_class, mean_iou, present_classes
from edgekit.errors import EdgekitError
from edgekit.export import ort_session
from edgekit.quant.fp32 import Fp32Model
from edgekit.quant.holdout import CONFIDENT_PROBABILITY, HoldoutPlan

MIN_CONFIDENT_SHARE = 0.05  # an image FP32 is confident on almost nowhere is scored on every pixel instead
CLASS_IOU_FLOOR = 0.8  # a class whose INT8 mask overlaps FP32's by less loses more than its boundary pixels
CLASS_MIN_SHARE = 0.001  # classes on fewer hold-out pixels than this have IoUs set by a handful of pixels


@dataclass
class Reference:
    """FP32 on the hold-out: each scored input with the fold whose ranges score it, FP32's class map of it, and
    the pixels it is scored on (None: every pixel)."""

    inputs: list[tuple[int, np.ndarray]]  # (fold index, network input)
    class_maps: list[np.ndarray]
    masks: list[np.ndarray | None]
    num_classes: int
    undecided: int  # images of confident-only folds that FP32 is confident on almost nowhere

    def per_image(self, predictions: Sequence[np.ndarray]) -> list[float]:
        """Pixel agreement of each image's predicted class map with FP32's, on the pixels it is scored on."""
        agreement = []
        for predicted, reference, mask in zip(predictions, self.class_maps, self.masks, strict=True):
            equal = predicted == reference
            agreement.append(float(equal.mean() if mask is None else equal[mask].mean()))
        return agreement

    def every_pixel(self, predictions: Sequence[np.ndarray]) -> list[float]:
        """Pixel agreement of each image on every pixel, undecided ones included."""
        return [float((p == r).mean()) for p, r in zip(predictions, self.class_maps, strict=True)]

    def scored_maps(self) -> list[np.ndarray]:
        """FP32's class maps with the pixels not scored set to 255 (ignored by the confusion matrix)."""
        return [r if m is None else np.where(m, r, 255) for r, m in zip(self.class_maps, self.masks, strict=True)]

    @property
    def undecided_note(self) -> str | None:
        if not self.undecided:
            return None
        return (
            f"FP32 is confident on under {MIN_CONFIDENT_SHARE:.0%} of the pixels of {self.undecided} of the "
            f"{len(self.inputs)} hold-out images; those are scored on every pixel"
        )


def fp32_reference(fp32: Fp32Model, plan: HoldoutPlan) -> Reference:
    """FP32's class maps of every hold-out input of ``plan`` (the folded graph: BatchNorm folding is exact)."""
    inputs = [(f, x) for f, fold in enumerate(plan.folds) for x in fold.inputs]
    session = ort_session(fp32.folded.SerializeToString())
    class_maps: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    undecided = 0
    for f, x in inputs:
        logits = session.run(None, {fp32.input_name: x})[0]
        class_maps.append(logits.argmax(1))
        mask = confident_pixels(logits) if plan.folds[f].confident_only else None
        if mask is not None and mask.mean() < MIN_CONFIDENT_SHARE:
            mask, undecided = None, undecided + 1
        masks.append(mask)
    return Reference(inputs, class_maps, masks, int(logits.shape[1]), undecided)


def confident_pixels(logits: np.ndarray) -> np.ndarray:
    """Pixels (1xHxW) where the softmax of ``logits`` (1xCxHxW) puts >= CONFIDENT_PROBABILITY on the top class."""
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return np.asarray(1.0 / shifted.sum(1) >= CONFIDENT_PROBABILITY)


def confusion(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Confusion matrix of ``predictions`` against ``references`` (labels or FP32 class maps; 255 = ignore)."""
    return np.asarray(
        sum(
            confusion_matrix(p.reshape(r.shape), np.where(r < num_classes, r, 255), num_classes)
            for p, r in zip(predictions, references, strict=True)
        )
    )


@dataclass
class ClassAgreement:
    iou: dict[str, float]  # every class FP32 predicts on the hold-out: IoU of the INT8 class map against FP32's
    below_floor: list[str]  # those under CLASS_IOU_FLOOR that cover at least CLASS_MIN_SHARE of the pixels


def class_iou(vs_fp32: np.ndarray, names: Sequence[str]) -> ClassAgreement:
    iou = iou_per_class(vs_fp32)
    share = vs_fp32.sum(1) / max(int(vs_fp32.sum()), 1)
    present = [int(c) for c in np.flatnonzero(present_classes(vs_fp32))]
    return ClassAgreement(
        iou={names[c]: round(float(iou[c]), 4) for c in present},
        below_floor=[names[c] for c in present if iou[c] < CLASS_IOU_FLOOR and share[c] >= CLASS_MIN_SHARE],
    )


@dataclass
class Evaluation:
    """The written model's hold-out predictions against FP32's (on the scored pixels) and against labels."""

    miou_vs_fp32: float
    classes: ClassAgreement
    miou_labels_fp32: float | None
    miou_labels_int8: float | None


def evaluate(
    predictions: list[np.ndarray],
    reference: Reference,
    class_names: Sequence[str],
    labels: Sequence[np.ndarray] | None,
) -> Evaluation:
    vs_fp32 = confusion(predictions, reference.scored_maps(), reference.num_classes)
    miou_labels_fp32 = miou_labels_int8 = None
    if labels is not None:
        if len(labels) != len(reference.inputs):
            raise EdgekitError(f"{len(labels)} label maps for {len(reference.inputs)} hold-out images")
        miou_labels_fp32 = mean_iou(confusion(reference.class_maps, labels, reference.num_classes))
        miou_labels_int8 = mean_iou(confusion(predictions, labels, reference.num_classes))
    return Evaluation(mean_iou(vs_fp32), class_iou(vs_fp32, class_names), miou_labels_fp32, miou_labels_int8)
