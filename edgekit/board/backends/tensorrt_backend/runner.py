"""TensorRT engine backend for TensorRT 8.x (binding indices) and 8.5+/10.x/11.x (tensor names, execute_async_v3).

Host buffers are page-locked and copies are asynchronous on one CUDA stream, through pycuda or cuda-python,
whichever is installed (JetPack images usually carry pycuda, TensorRT 10.14+ samples moved to cuda-python).
An engine only runs on the GPU model and TensorRT version it was built with; that is checked against the bundle
manifest before deserialising, so the user gets a message naming both sides instead of a deserialisation error.
All imports are lazy: this module loads on machines without TensorRT and the runner picks onnxruntime there.
"""

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import numpy as np

from edgekit.board.backends.base import Backend, OutputKind
from edgekit.board.backends.tensorrt_backend.cuda_binding import open_cuda
from edgekit.board.backends.tensorrt_backend.releases import has, supported_release
from edgekit.board.backends.tensorrt_backend.sidecar import read_sidecar, sidecar_path
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


def tensorrt_unavailable_reason() -> Optional[str]:
    """None when tensorrt and a CUDA binding import, else why not (for logs and test skips)."""
    try:
        importlib.import_module("tensorrt")
    except Exception as exc:  # ImportError, or OSError from a missing libnvinfer
        return f"tensorrt does not import ({exc.__class__.__name__}: {exc})"
    for module in ("pycuda.driver", "cuda.bindings.runtime", "cuda.cudart"):
        try:
            importlib.import_module(module)
            return None
        except Exception:  # a missing or broken binding: try the next one
            continue
    return "neither pycuda nor cuda-python imports (pip install pycuda, or cuda-python)"


def _version_key(version: str) -> Tuple[str, ...]:
    """TensorRT engines are tied to major.minor.patch (the build number does not matter)."""
    return tuple(version.split(".")[:3])


def _sm(compute_capability: str) -> str:
    """'8.7', 'sm_87' and '87' all name the same GPU generation."""
    return compute_capability.replace("sm_", "").replace(".", "")


def check_engine_compatibility(
    engine_path: Path, built: Optional[Dict[str, Any]], trt_version: str, gpu: str, compute_capability: str
) -> None:
    """Refuse an engine built for another GPU or TensorRT, naming both sides and the fix."""
    if not built:
        return
    built_version = str(built.get("tensorrt_version", "?"))
    built_gpu = str(built.get("gpu", "?"))
    built_cc = str(built.get("compute_capability", "?"))
    same_version = built_version == "?" or _version_key(built_version) == _version_key(trt_version)
    same_gpu = built_cc == "?" or _sm(built_cc) == _sm(compute_capability)
    if not (same_version and same_gpu):
        raise EdgekitError(
            f"engine {engine_path} was built for {built_gpu} (compute {built_cc}) with TensorRT {built_version}, "
            f"but this machine has {gpu} (compute {compute_capability}) with TensorRT {trt_version}; "
            f"run `edgekit compile --bundle {engine_path.parent}` here to build an engine for this GPU"
        )


# TensorRT DataType name -> numpy dtype: our own table, since trt.nptype on 8.2/8.4 maps BOOL to np.bool, which
# numpy 1.24 removed. Names, not enum members, so the table reads the same on every release.
NUMPY_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    """The numpy dtype of a TensorRT tensor type (``trt.DataType.HALF`` -> float16); one line for any other."""
    name = str(trt_dtype).rsplit(".", 1)[-1]
    if name not in NUMPY_DTYPES:
        raise EdgekitError(f"engine tensor type {name} has no numpy equivalent this runner handles")
    return np.dtype(NUMPY_DTYPES[name])


def _sidecar_of(engine_path: Path) -> Optional[Dict[str, Any]]:
    """What an engine file given alone was built for, from its sidecar; without one the check cannot run (said)."""
    built_for = read_sidecar(engine_path)
    if built_for is None:
        log.warning(
            "%s has no sidecar %s (not built by edgekit): its GPU and TensorRT version cannot be checked before "
            "deserialising",
            engine_path,
            sidecar_path(engine_path).name,
        )
    return built_for


def _dims(dims: Any) -> Tuple[int, ...]:
    """A TensorRT Dims (or profile shape) as a tuple of ints."""
    return tuple(int(d) for d in dims)


class TensorRTBackend(Backend):
    """A serialized TensorRT engine with pinned host buffers and async copies on one stream."""

    name = "tensorrt"

    def __init__(
        self,
        engine_path: Union[str, Path],
        built_for: Optional[Dict[str, Any]] = None,
        cuda_binding: str = "auto",
        output_kind: Optional[OutputKind] = None,
    ) -> None:
        """``built_for`` is the bundle manifest's ``engine`` entry (tensorrt_version, gpu, compute_capability);
        for an engine file given alone it is read from the sidecar ``build_engine`` wrote beside it."""
        reason = tensorrt_unavailable_reason()
        if reason:
            raise EdgekitError(f"the TensorRT backend cannot run here: {reason}; use --backend onnxruntime")
        import tensorrt as trt

        self.trt = trt
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise EdgekitError(f"TensorRT engine not found: {self.engine_path}")
        if built_for is None:
            built_for = _sidecar_of(self.engine_path)
        self.cuda = open_cuda(cuda_binding)
        try:
            self._load(built_for, output_kind)
        finally:
            self.cuda.leave()

    def _load(self, built_for: Optional[Dict[str, Any]], output_kind: Optional[OutputKind]) -> None:
        import tensorrt as trt

        self.release = supported_release(trt.__version__)
        self.gpu_name, self.compute_capability = self.cuda.gpu()
        check_engine_compatibility(self.engine_path, built_for, trt.__version__, self.gpu_name, self.compute_capability)
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime: trt.Runtime = trt.Runtime(self.logger)
        dla_core = (built_for or {}).get("dla_core")
        if dla_core is not None:  # a DLA engine deserializes onto the core it was built for
            runtime.DLA_core = int(dla_core)
        engine: Optional[trt.ICudaEngine] = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            raise EdgekitError(
                f"TensorRT {trt.__version__} could not deserialize {self.engine_path} on {self.gpu_name}: it was "
                f"built for another GPU or TensorRT version, or is corrupt; run `edgekit compile` on this machine"
            )
        context: trt.IExecutionContext = engine.create_execution_context()
        self.runtime = runtime
        self.engine: Any = engine  # None after close()
        self.context: Any = context
        self.named_io = has(self.release, "IExecutionContext.execute_async_v3")
        self._allocate()
        self.output_kind = output_kind or ("logits" if self.output_host.dtype.kind == "f" else "classmap")

    def _io(self) -> List[Tuple[str, bool, Tuple[int, ...], np.dtype]]:
        """(name, is_input, shape, dtype) of every engine I/O tensor, through whichever API this TensorRT has."""
        import tensorrt as trt

        release = self.release
        engine: trt.ICudaEngine = self.engine
        context: trt.IExecutionContext = self.context
        io = []
        if has(release, "ICudaEngine.num_io_tensors"):
            for index in range(engine.num_io_tensors):
                name: str = engine.get_tensor_name(index)
                is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                if is_input and -1 in _dims(engine.get_tensor_shape(name)):
                    opt_shape = engine.get_tensor_profile_shape(name, 0)[1]
                    context.set_input_shape(name, _dims(opt_shape))
                shape = _dims(context.get_tensor_shape(name))
                io.append((name, is_input, shape, numpy_dtype(engine.get_tensor_dtype(name))))
        else:  # before 8.5: binding indices (gone from the 10.x stubs mypy reads, hence the ignores)
            for index in range(engine.num_bindings):  # type: ignore[attr-defined]
                is_input = bool(engine.binding_is_input(index))  # type: ignore[attr-defined]
                if is_input and -1 in _dims(engine.get_binding_shape(index)):  # type: ignore[attr-defined]
                    opt_shape = engine.get_profile_shape(0, index)[1]  # type: ignore[attr-defined]
                    context.set_binding_shape(index, _dims(opt_shape))  # type: ignore[attr-defined]
                shape = _dims(context.get_binding_shape(index))  # type: ignore[attr-defined]
                dtype = numpy_dtype(engine.get_binding_dtype(index))  # type: ignore[attr-defined]
                io.append((engine.get_binding_name(index), is_input, shape, dtype))  # type: ignore[attr-defined]
        return io

    def _allocate(self) -> None:
        io = self._io()
        inputs = [t for t in io if t[1]]
        outputs = [t for t in io if not t[1]]
        if len(inputs) != 1 or not outputs:
            raise EdgekitError(f"{self.engine_path}: expected one input and an output, found {[t[0] for t in io]}")
        self.device_buffers = []
        self.bindings: List[int] = []
        context: trt.IExecutionContext = self.context
        for name, _, shape, dtype in io:
            buffer = self.cuda.alloc(int(np.prod(shape)) * dtype.itemsize)
            self.device_buffers.append(buffer)
            self.bindings.append(int(buffer))
            if has(self.release, "IExecutionContext.set_tensor_address"):
                context.set_tensor_address(name, int(buffer))
        in_name, _, in_shape, in_dtype = inputs[0]
        out_name, _, out_shape, out_dtype = outputs[0]
        self.input_name, self.output_name = in_name, out_name
        self.input_shape, self.input_dtype = in_shape, in_dtype
        self.input_host = self.cuda.pinned(in_shape, in_dtype)
        self.output_host = self.cuda.pinned(out_shape, out_dtype)
        names = [t[0] for t in io]
        self.input_device = self.device_buffers[names.index(in_name)]
        self.output_device = self.device_buffers[names.index(out_name)]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if tuple(batch.shape) != self.input_shape:
            raise EdgekitError(f"engine {self.engine_path} takes input {self.input_shape}, got {tuple(batch.shape)}")
        self.cuda.enter()
        try:
            np.copyto(self.input_host, batch, casting="same_kind")
            self.cuda.h2d(self.input_device, self.input_host)
            context: trt.IExecutionContext = self.context
            ok: bool
            if has(self.release, "IExecutionContext.execute_async_v3"):
                ok = context.execute_async_v3(stream_handle=self.cuda.stream_handle)
            else:  # before 8.5
                ok = context.execute_async_v2(  # type: ignore[attr-defined]  # removed in 10.0
                    bindings=self.bindings, stream_handle=self.cuda.stream_handle
                )
            if not ok:
                raise EdgekitError(f"TensorRT failed to run {self.engine_path} (see the TensorRT log above)")
            self.cuda.d2h(self.output_host, self.output_device)
            self.cuda.synchronize()
        finally:
            self.cuda.leave()
        output = self.output_host.copy()
        if self.output_kind == "classmap" and output.ndim == 4:
            output = output[:, 0]
        return output

    def describe(self) -> str:
        return f"tensorrt {self.trt.__version__} on {self.gpu_name} ({self.engine_path.name}, {self.cuda.name})"

    def details(self) -> Dict[str, Any]:
        return {
            "backend": self.name,
            "engine": str(self.engine_path),
            "tensorrt_version": self.trt.__version__,
            "gpu": self.gpu_name,
            "compute_capability": self.compute_capability,
            "cuda_binding": self.cuda.name,
            "io_api": "tensor names + execute_async_v3" if self.named_io else "bindings + execute_async_v2",
            "input": {"shape": list(self.input_shape), "dtype": str(self.input_dtype)},
            "output_kind": self.output_kind,
        }

    def close(self) -> None:
        self.cuda.enter()
        self.device_buffers.clear()
        self.context = None
        self.engine = None
        self.cuda.close()  # pops the context entered above
