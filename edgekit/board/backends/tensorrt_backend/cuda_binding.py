"""The CUDA side of TensorRT work: pinned host buffers, device memory, one stream and the GPU's name, through
pycuda or cuda-python, whichever is installed (JetPack images usually carry pycuda, TensorRT 10.14+ samples moved
to cuda-python). Used by the runner, the builder (which GPU the engine is for) and the calibrator; imports its
binding lazily, so it loads where neither is installed. Board code: runs on Python 3.6.
"""

import ctypes
from typing import Any, List, Tuple, Union

import numpy as np

from edgekit.errors import EdgekitError


class PyCuda:
    """pycuda on the device's primary context, the one TensorRT's runtime API uses too."""

    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.driver as cuda

        cuda.init()
        self.cuda = cuda
        self.device = cuda.Device(0)
        self.context = self.device.retain_primary_context()
        self.context.push()
        self.stream = cuda.Stream()

    def pinned(self, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def alloc(self, nbytes: int) -> Any:
        return self.cuda.mem_alloc(max(nbytes, 1))

    def h2d(self, device_ptr: Any, host: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(device_ptr, host, self.stream)

    def d2h(self, host: np.ndarray, device_ptr: Any) -> None:
        self.cuda.memcpy_dtoh_async(host, device_ptr, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def enter(self) -> None:
        """Make the context current in the calling thread (the runner infers from its own thread)."""
        self.context.push()

    def leave(self) -> None:
        self.cuda.Context.pop()

    def gpu(self) -> Tuple[str, str]:
        major, minor = self.device.compute_capability()
        return str(self.device.name()), f"{major}.{minor}"

    def close(self) -> None:
        self.cuda.Context.pop()


class CudaPython:
    """cuda-python's runtime API (``cuda.bindings.runtime`` from 12.6.1, ``cuda.cudart`` before)."""

    name = "cuda-python"

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self.cudart = cudart
        self.stream = self._check(cudart.cudaStreamCreate())
        self._pinned: List[int] = []
        self._device: List[int] = []

    def _check(self, result: Tuple[Any, ...]) -> Any:
        err, *rest = result
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise EdgekitError(f"CUDA error {self.cudart.cudaGetErrorName(err)[1].decode()}")
        return rest[0] if len(rest) == 1 else rest

    def pinned(self, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
        pointer = self._check(self.cudart.cudaMallocHost(nbytes))
        self._pinned.append(pointer)
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(pointer))
        return raw.view(dtype)[: int(np.prod(shape))].reshape(shape)

    def alloc(self, nbytes: int) -> Any:
        pointer = self._check(self.cudart.cudaMalloc(max(nbytes, 1)))
        self._device.append(pointer)
        return pointer

    def h2d(self, device_ptr: Any, host: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes, kind, self.stream))

    def d2h(self, host: np.ndarray, device_ptr: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(host.ctypes.data, device_ptr, host.nbytes, kind, self.stream))

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self.stream))

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def enter(self) -> None:
        """The runtime API uses the primary context from any thread; nothing to push."""

    def leave(self) -> None:
        """See ``enter``."""

    def gpu(self) -> Tuple[str, str]:
        props = self._check(self.cudart.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00"), f"{props.major}.{props.minor}"

    def close(self) -> None:
        for pointer in self._pinned:
            self.cudart.cudaFreeHost(pointer)
        for pointer in self._device:
            self.cudart.cudaFree(pointer)
        self._pinned.clear()
        self._device.clear()
        self.cudart.cudaStreamDestroy(self.stream)


def open_cuda(binding: str) -> Union[PyCuda, CudaPython]:
    if binding in ("auto", "pycuda"):
        try:
            return PyCuda()
        except ImportError:
            if binding == "pycuda":
                raise EdgekitError("pycuda is not installed: pip install pycuda (or use cuda-python)") from None
    try:
        return CudaPython()
    except ImportError:
        raise EdgekitError("TensorRT inference needs pycuda or cuda-python: pip install pycuda") from None


def current_gpu() -> Tuple[str, str]:
    """(name, 'MAJOR.MINOR') of CUDA device 0."""
    cuda = open_cuda("auto")
    try:
        return cuda.gpu()
    finally:
        cuda.close()
