"""``edgekit build``: from a checkpoint (or official weights, or nothing) to a deployable bundle for one target.

Stages (:mod:`~edgekit.build.stages`): choose the precision the target runs -> check every input
(:mod:`~edgekit.build.inputs`) -> get a model (:mod:`~edgekit.build.model`: load a checkpoint, import official
weights, or train briefly on synthetic street scenes) -> export + simplify + verify the FP32 ONNX -> FP16 ONNX ->
INT8 (:mod:`~edgekit.build.int8`: calibration, Q/DQ ONNX and TensorRT calibration cache) -> accuracy of every
variant on labelled held-out scenes, then a class-map head appended to every variant (:mod:`~edgekit.build.heldout`)
-> TensorRT engine where TensorRT and a GPU of the target's architecture are present (:mod:`~edgekit.build.engine`)
-> manifest and report (:mod:`~edgekit.build.record`). Everything is staged by
:class:`~edgekit.board.bundle.BundleWriter`, so a failed or interrupted build leaves no bundle that looks valid.
Each stage is delegated to the module that owns it (train, export, calibration, quantize, board.compile); this
package only orchestrates and records.
"""

from edgekit.build.int8 import real_data_source, synthetic_calibration_warning
from edgekit.build.options import DEFAULT_MODEL, BuildOptions, BuildResult, StageRecord, default_output
from edgekit.build.stages import build

__all__ = [
    "DEFAULT_MODEL",
    "BuildOptions",
    "BuildResult",
    "StageRecord",
    "build",
    "default_output",
    "real_data_source",
    "synthetic_calibration_warning",
]
