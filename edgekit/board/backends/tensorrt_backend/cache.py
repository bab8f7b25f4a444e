"""TensorRT INT8 calibration cache files (implicit quantization, TensorRT 8.x-10.x), written without a GPU.

Format (see ../shared/reference/tensorrt-api.md §7): a ``TRT-<version>-<Algorithm>`` header, then one
``tensor: hex`` line per tensor, ``hex`` being the big-endian IEEE-754 bits of ``scale = amax / 127``. TensorRT
treats the header as a compatibility key (same TensorRT version and calibrator algorithm) and silently
recalibrates or ignores a cache whose header does not match, so the version is explicit here, and ``edgekit
compile`` rewrites it to the installed TensorRT (``retarget_cache``): the scales do not depend on the release,
but a JetPack 5.0.2 board (TensorRT 8.4.1) would ignore an 8.5.2 header and calibrate on no data
(NVIDIA/TensorRT#1378). The calibrator class must match the header's algorithm too (``calibrator_for``).
"""

import math
import re
import struct
from pathlib import Path
from typing import Dict, Optional, Tuple

from edgekit.errors import EdgekitError

ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
# The TensorRT calibrator class whose ``get_algorithm`` matches each header algorithm. Legacy calibration needs
# quantile and regression parameters a cache does not carry, so a Legacy cache is refused.
CALIBRATOR_CLASSES = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "EntropyCalibration": "IInt8EntropyCalibrator",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
}
DLA_ALGORITHM = "EntropyCalibration2"  # the only implicit calibration the DLA takes (tensorrt-api.md §5.2)


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


def cache_header(data: bytes, where: str) -> Tuple[int, str]:
    """(version int, algorithm) of a cache's first line."""
    first = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
    match = _HEADER.match(first)
    if match is None:
        raise EdgekitError(f"{where} is not a TensorRT calibration cache (bad header {first[:40]!r})")
    return int(match.group(1)), match.group(2)


def retarget_cache(data: bytes, trt_version: str, algorithm: Optional[str] = None, where: str = "cache") -> bytes:
    """The cache with its header rewritten for ``trt_version`` (and ``algorithm``); the scale lines are kept."""
    _, old_algorithm = cache_header(data, where)
    header = f"TRT-{trt_version_int(trt_version)}-{algorithm or old_algorithm}"
    return header.encode() + b"\n" + (data.split(b"\n", 1)[1] if b"\n" in data else b"")


def retarget_cache_file(path: Path, trt_version: str) -> Optional[Tuple[str, str]]:
    """Rewrite the header of the cache file at ``path`` for ``trt_version``; (old, new) header if it changed."""
    data = path.read_bytes()
    retargeted = retarget_cache(data, trt_version, where=str(path))
    if retargeted == data:
        return None
    path.write_bytes(retargeted)
    old, new = (data.split(b"\n", 1)[0].decode().strip() for data in (data, retargeted))
    return old, new


def calibrator_for(algorithm: str, dla: bool) -> Tuple[str, str, Optional[str]]:
    """(TensorRT calibrator class, header algorithm to hand it, why the algorithm changed or None).

    The header's algorithm picks the class (``quantize --method minmax`` writes MinMaxCalibration); on the DLA,
    which takes only EntropyCalibration2, the same scales are handed over under that header, said in the log.
    """
    if algorithm not in CALIBRATOR_CLASSES:
        raise EdgekitError(
            f"a {algorithm} calibration cache cannot be used (edgekit builds from {', '.join(CALIBRATOR_CLASSES)}); "
            "rerun `edgekit quantize` with --method entropy, percentile or minmax"
        )
    if dla and algorithm != DLA_ALGORITHM:
        why = f"the DLA takes only {DLA_ALGORITHM}: the {algorithm} scales are handed over under that header"
        return CALIBRATOR_CLASSES[DLA_ALGORITHM], DLA_ALGORITHM, why
    return CALIBRATOR_CLASSES[algorithm], algorithm, None


def read_cache(path: Path) -> Tuple[int, str, Dict[str, float]]:
    """(version int, algorithm, tensor -> scale); splits each line at the last ': ' (names may contain ':')."""
    data = Path(path).read_bytes()
    version, algorithm = cache_header(data, str(path))
    scales = {}
    for line in data.decode().splitlines()[1:]:
        if not line.strip():
            continue
        name, sep, value = line.rpartition(": ")
        if not sep:
            raise EdgekitError(f"{path}: malformed cache line {line!r}")
        scales[name] = hex_to_scale(value.strip())
    return version, algorithm, scales
