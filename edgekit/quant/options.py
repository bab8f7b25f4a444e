"""What ``quantize_int8`` takes besides its data: the one owner of ``edgekit quantize``'s defaults.

Imported by the CLI when it lists its commands, on a board too: Python 3.6, standard library only.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

METHODS = ("entropy", "percentile", "minmax")  # activation-range methods (edgekit.quant.ranges)
DEFAULT_MAX_DROP = 0.03  # at least 97 % of pixels must agree with FP32 unless the user says otherwise
DEFAULT_TRT_VERSION = "8.6.2"  # JetPack 6.0; pass the target's version (the header is a compatibility key)


@dataclass(frozen=True)
class QuantizeOptions:
    """How to quantize: the range method, the accuracy budget, layers kept in float, the cache's release."""

    method: str = "percentile"  # measured best for ESPNet and ESPNetv2 (README, "Export and INT8")
    # Largest share of scored hold-out pixels whose class may differ from FP32; None: every conv in INT8, report only.
    max_drop: Optional[float] = DEFAULT_MAX_DROP
    exclude: Tuple[str, ...] = ()  # conv node names kept in float whatever their sensitivity
    trt_version: str = DEFAULT_TRT_VERSION  # TensorRT release written in the calibration cache header
