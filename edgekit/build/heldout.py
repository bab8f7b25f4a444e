"""The checks a build makes on labelled held-out synthetic scenes: mIoU of every ONNX variant (on its logits),
then the class-map head appended to every variant and checked against the argmax it replaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.board.metrics import confusion_matrix, mean_iou
from edgekit.board.preprocess import Preprocessing
from edgekit.board.synthetic import generate_scene
from edgekit.errors import EdgekitError
from edgekit.export import append_classmap_head, ort_session, read_metadata

EVAL_FIRST_SEED = 50_000  # synthetic scenes from here on are never used for training or calibration


def evaluate_variants(
    root: Path, variants: dict[str, str], preprocessing: Preprocessing, scenes: int
) -> dict[str, Any]:
    """mIoU against the labels of held-out synthetic scenes and pixel agreement with FP32, per ONNX variant."""
    frames = [generate_scene(EVAL_FIRST_SEED + i, preprocessing.input_size) for i in range(scenes)]
    num_classes = len(read_metadata(root / variants["fp32"]).classes)
    predictions: dict[str, list[np.ndarray]] = {}
    results: dict[str, dict[str, float]] = {}
    for precision, file in variants.items():
        session = ort_session(root / file)
        input_name = session.get_inputs()[0].name
        confusion = np.zeros((num_classes, num_classes), np.int64)
        predictions[precision] = []
        for image, label in frames:
            (logits,) = session.run(None, {input_name: preprocessing(image)})
            predicted = logits.argmax(1)[0].astype(np.uint8)
            predictions[precision].append(predicted)
            confusion += confusion_matrix(predicted, np.where(label < num_classes, label, 255), num_classes)
        agreement = np.mean([(a == b).mean() for a, b in zip(predictions[precision], predictions["fp32"], strict=True)])
        results[precision] = {"miou": round(mean_iou(confusion), 4), "agreement_with_fp32": round(float(agreement), 4)}
    return {
        "data": f"{scenes} synthetic street scenes (seeds {EVAL_FIRST_SEED}+, never trained or calibrated on)",
        "runtime": "onnxruntime CPU",
        "variants": results,
    }


def end_in_classmap(
    root: Path, variants: dict[str, str], preprocessing: Preprocessing, formulation: str
) -> dict[str, Any]:
    """Append the class-map head to every variant in place (after the accuracy stage, which reads logits),
    checking on a held-out scene that each class map is exactly the argmax of the logits it replaces."""
    image, _ = generate_scene(EVAL_FIRST_SEED, preprocessing.input_size)
    feed = preprocessing(image)
    for precision, file in variants.items():
        session = ort_session(root / file)
        (logits,) = session.run(None, {session.get_inputs()[0].name: feed})
        append_classmap_head(root / file, formulation)
        session = ort_session(root / file)
        (classmap,) = session.run(None, {session.get_inputs()[0].name: feed})
        if not np.array_equal(classmap, logits.argmax(1)):
            raise EdgekitError(f"the class-map head of {file} differs from the argmax of its logits ({precision})")
    return {
        "output": f"NxHxW int32 class map ({formulation} over the classes, then Cast)",
        "checked": f"{len(variants)} variants give exactly the argmax of their logits on a held-out scene",
    }
