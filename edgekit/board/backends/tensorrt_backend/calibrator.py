"""On-device INT8 calibration for TensorRT 8.x-10.x (implicit quantization): an ``IInt8EntropyCalibrator2``.

For users who prefer calibrating on the board to the cache written by ``edgekit quantize``. The batches come
from the same :class:`~edgekit.calibration.CalibrationSet` (so the same preprocessing as the runner), the
cache is read back when present (TensorRT then skips calibration) and written after calibrating. tensorrt and
pycuda are imported only when a calibrator is made: neither exists on a host without an NVIDIA GPU.
TensorRT 11 removed implicit calibration; use the Q/DQ model there.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

import numpy as np

from edgekit.errors import EdgekitError

if TYPE_CHECKING:  # made on the host (edgekit.calibration); the board only iterates its network inputs
    from edgekit.calibration import CalibrationSet


def _batches(calibration: "CalibrationSet", input_dtype: str, batch_size: int) -> Iterator[np.ndarray]:
    inputs = list(calibration.inputs(input_dtype))
    for start in range(0, len(inputs) - batch_size + 1, batch_size):
        yield np.ascontiguousarray(np.concatenate(inputs[start : start + batch_size]))


def entropy_calibrator(
    calibration: "CalibrationSet", cache_file: Path, *, input_dtype: str = "float32", batch_size: int = 1
) -> Any:
    """A ready ``trt.IInt8EntropyCalibrator2`` for ``config.int8_calibrator`` (keep a reference while building)."""
    try:
        import pycuda.autoinit  # noqa: F401  (creates the CUDA context the allocations below live in)
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise EdgekitError(
            "on-device calibration needs TensorRT 8.x-10.x and pycuda (JetPack); on a host, use the cache from "
            "`edgekit quantize` instead"
        ) from exc
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EdgekitError(f"TensorRT {trt.__version__} has no implicit INT8 calibration; build from the Q/DQ model")
    if len(calibration) < batch_size:
        raise EdgekitError(f"{len(calibration)} calibration images cannot fill a batch of {batch_size}")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # required: the binding segfaults without it
            self.batches = _batches(calibration, input_dtype, batch_size)
            self.device: Dict[str, Any] = {}  # name -> DeviceAllocation, alive until calibration ends

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: List[str]) -> List[int]:
            batch = next(self.batches, None)
            if batch is None:
                return []  # end of data ([] rather than None: the stubs type the return as list[int])
            pointers = []
            for name in names:
                if name not in self.device:
                    self.device[name] = cuda.mem_alloc(batch.nbytes)
                cuda.memcpy_htod(self.device[name], batch)
                pointers.append(int(self.device[name]))
            return pointers

        def read_calibration_cache(self) -> Optional[bytes]:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: memoryview) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()
