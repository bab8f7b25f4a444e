"""Segmentation metrics: a confusion matrix accumulated over a split, and IoU per class from it.

Torch-free (numpy), so the runner and the benchmarks on a board score predictions with the same code as training.
"""

import numpy as np

from edgekit.errors import EdgekitError


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """num_classes x num_classes int64 counts, rows = ground truth, columns = prediction; ignored pixels skipped."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise EdgekitError(f"prediction shape {pred.shape} differs from ground-truth shape {target.shape}")
    target = target.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    valid = target != ignore_index
    target, pred = target[valid], pred[valid]
    for what, values in (("ground-truth", target), ("predicted", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise EdgekitError(
                f"{what} class ids range over [{values.min()}, {values.max()}] but only {num_classes} classes are "
                f"scored; label ids must be < {num_classes} or {ignore_index} (ignored)"
            )
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class; NaN where a class is neither in the ground truth nor predicted."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def present_classes(confusion: np.ndarray) -> np.ndarray:
    """Boolean mask of the classes that occur in the ground truth."""
    return np.asarray(confusion).sum(1) > 0


def mean_iou(confusion: np.ndarray) -> float:
    """mIoU over the classes present in the ground truth (absent classes would only add noise or NaNs)."""
    present = present_classes(confusion)
    if not present.any():
        raise EdgekitError("no labelled pixels to score: every ground-truth pixel is ignored")
    return float(iou_per_class(confusion)[present].mean())


def pixel_accuracy(confusion: np.ndarray) -> float:
    confusion = np.asarray(confusion)
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")
