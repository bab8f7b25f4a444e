"""On-device INT8 calibration for TensorRT 8.x-10.x (implicit quantization): an ``IInt8EntropyCalibrator2``.

For users who prefer calibrating on the board to the cache written by ``edgekit quantize``. The batches are network
inputs made with the bundle's own preprocessing (``CalibrationSet.inputs`` on a host), the cache is read back when
present (TensorRT then skips calibration) and written after calibrating. The device buffers live on the device's
primary context, the one TensorRT and the runner use, through the runner's CUDA binding (pycuda, else
cuda-python); ``pycuda.autoinit`` would make a second, non-primary context. tensorrt and the CUDA binding are
imported only when a calibrator is made. TensorRT 11 removed implicit calibration; use the Q/DQ model there.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Sequence

import numpy as np

from edgekit.board.backends.tensorrt_backend.releases import has, supported_release
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    pass


def _batches(inputs: Sequence[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(inputs) - batch_size + 1, batch_size):
        yield np.ascontiguousarray(np.concatenate(inputs[start : start + batch_size]))


def entropy_calibrator(inputs: Sequence[np.ndarray], cache_file: Path, batch_size: int = 1) -> Any:
    """A ready ``trt.IInt8EntropyCalibrator2`` for ``config.int8_calibrator`` over 1xCxHxW ``inputs``; keep a
    reference while building and call its ``close()`` afterwards (it frees the device buffers)."""
    from edgekit.board.backends.tensorrt_backend.cuda_binding import open_cuda

    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EdgekitError(
            "on-device calibration needs TensorRT 8.x-10.x (JetPack); on a host, use the cache from "
            "`edgekit quantize` instead"
        ) from exc
    release = supported_release(trt.__version__)
    if not has(release, "IInt8EntropyCalibrator2"):
        raise EdgekitError(f"TensorRT {trt.__version__} has no implicit INT8 calibration; build from the Q/DQ model")
    if len(inputs) < batch_size:
        raise EdgekitError(f"{len(inputs)} calibration images cannot fill a batch of {batch_size}")
    cuda = open_cuda("auto")  # pycuda: the primary context, pushed on this thread; cuda-python: the runtime API

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # required: the binding segfaults without it
            self.batches = _batches(inputs, batch_size)
            self.device: List[Any] = []  # one buffer per input name, alive until close()

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: List[str]) -> List[int]:
            batch = next(self.batches, None)
            if batch is None:
                return []  # end of data ([] rather than None: the stubs type the return as list[int])
            while len(self.device) < len(names):
                self.device.append(cuda.alloc(batch.nbytes))
            for buffer in self.device[: len(names)]:
                cuda.h2d(buffer, batch)
            cuda.synchronize()  # the host batch must outlive the copy
            return [int(buffer) for buffer in self.device[: len(names)]]

        def read_calibration_cache(self) -> Optional[bytes]:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: memoryview) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

        def close(self) -> None:
            self.device.clear()
            cuda.close()

    calibrator: trt.IInt8EntropyCalibrator2 = EntropyCalibrator()
    return calibrator
