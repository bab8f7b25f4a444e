"""The INT8 stage: calibration sets, activation ranges, hold-out plan, sensitivity, mixed precision, Q/DQ model.

``quantize_int8`` (:mod:`edgekit.quant.quantize`) runs the phases; the options' defaults are those of
``edgekit quantize``. The API is imported on first use: the CLI reads :class:`QuantizeOptions` when it lists its
commands, on a board too (Python 3.6, no onnx), so this module and :mod:`edgekit.quant.options` stay light.
"""

import importlib
from typing import TYPE_CHECKING, Any

from edgekit.quant.options import DEFAULT_MAX_DROP as DEFAULT_MAX_DROP
from edgekit.quant.options import DEFAULT_TRT_VERSION as DEFAULT_TRT_VERSION
from edgekit.quant.options import METHODS as METHODS
from edgekit.quant.options import QuantizeOptions as QuantizeOptions

if TYPE_CHECKING:  # the names below, for type checkers; at run time __getattr__ imports them
    from edgekit.quant.calibration import RECOMMENDED_IMAGES as RECOMMENDED_IMAGES
    from edgekit.quant.calibration import CalibrationSet as CalibrationSet
    from edgekit.quant.calibration import load_calibration as load_calibration
    from edgekit.quant.outputs import check_outputs as check_outputs
    from edgekit.quant.qdq import FP16_QDQ_OPSET as FP16_QDQ_OPSET
    from edgekit.quant.qdq import qdq_to_fp16 as qdq_to_fp16
    from edgekit.quant.quantize import quantize_int8 as quantize_int8
    from edgekit.quant.report import LayerSensitivity as LayerSensitivity
    from edgekit.quant.report import QuantizeReport as QuantizeReport

_LAZY = {  # public name -> the module of this package that defines it
    "RECOMMENDED_IMAGES": "calibration",
    "CalibrationSet": "calibration",
    "load_calibration": "calibration",
    "check_outputs": "outputs",
    "FP16_QDQ_OPSET": "qdq",
    "qdq_to_fp16": "qdq",
    "quantize_int8": "quantize",
    "LayerSensitivity": "report",
    "QuantizeReport": "report",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
