"""TensorRT INT8 calibration cache files (implicit quantization, TensorRT 8.x-10.x), written without a GPU.

Format (see ../shared/reference/tensorrt-api.md §7): a ``TRT-<version>-<Algorithm>`` header, then one
``tensor: hex`` line per tensor, ``hex`` being the big-endian IEEE-754 bits of ``scale = amax / 127``. TensorRT
treats the header as a compatibility key (same TensorRT version and calibrator algorithm) and silently
recalibrates or ignores a cache whose header does not match, so the version is explicit here.
"""

import math
import re
import struct
from pathlib import Path
from typing import Dict, Tuple

from edgekit.errors import EdgekitError

ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


def trt_version_int(version: str) -> int:
    """'8.6.2' -> 8602, '10.3.0' -> 100300 (NV_TENSORRT_VERSION as the cache header spells it)."""
    try:
        major, minor, patch = (int(p) for p in [*version.split("."), "0", "0"][:3])
    except ValueError:
        raise EdgekitError(f"TensorRT version must look like 8.6.2 or 10.3.0, got {version!r}") from None
    return major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch


def scale_to_hex(scale: float) -> str:
    return f"{struct.unpack('>I', struct.pack('>f', float(scale)))[0]:x}"


def hex_to_scale(text: str) -> float:
    return float(struct.unpack(">f", struct.pack(">I", int(text, 16)))[0])


def write_cache(path: Path, amax: Dict[str, float], trt_version: str, algorithm: str = "EntropyCalibration2") -> Path:
    """Write ``tensor: hex(amax / 127)`` lines under the header for ``trt_version``."""
    if algorithm not in ALGORITHMS:
        raise EdgekitError(f"unknown calibration algorithm {algorithm!r}; one of {', '.join(ALGORITHMS)}")
    lines = [f"TRT-{trt_version_int(trt_version)}-{algorithm}"]
    for name, value in amax.items():
        if not math.isfinite(value) or value < 0:
            raise EdgekitError(
                f"activation range of {name} is {value}; the calibration data produced non-finite values"
            )
        lines.append(f"{name}: {scale_to_hex(value / 127.0)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_cache(path: Path) -> Tuple[int, str, Dict[str, float]]:
    """(version int, algorithm, tensor -> scale); splits each line at the last ': ' (names may contain ':')."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    match = _HEADER.match(lines[0].strip()) if lines else None
    if match is None:
        raise EdgekitError(f"{path} is not a TensorRT calibration cache (bad header {lines[:1]})")
    scales = {}
    for line in lines[1:]:
        name, sep, value = line.rpartition(": ")
        if not sep:
            raise EdgekitError(f"{path}: malformed cache line {line!r}")
        scales[name] = hex_to_scale(value.strip())
    return int(match.group(1)), match.group(2), scales
