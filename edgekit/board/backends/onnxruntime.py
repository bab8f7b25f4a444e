"""onnxruntime backend: the default everywhere, CPU and, when the installed build has them, CUDA or TensorRT.

onnxruntime quietly falls back to the CPU when a GPU provider cannot load (missing CUDA/TensorRT libraries); this
backend compares what was requested with what the session really registered and says so, so a benchmark never
reports a CPU number as a GPU one.
"""

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import onnxruntime as ort
from typing_extensions import Literal  # typing.Literal is 3.8+; JetPack 4.6 has 3.6

from edgekit.board.backends.base import Backend, OutputKind
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda", "tensorrt"]
PROVIDERS: Dict[str, List[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
NUMPY_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def requested_providers(device: Device) -> List[str]:
    """The provider list for a device; 'auto' takes the fastest the installed onnxruntime build offers."""
    available = ort.get_available_providers()
    if device == "auto":
        return [p for p in PROVIDERS["tensorrt"] if p in available]
    if device not in PROVIDERS:
        raise EdgekitError(f"unknown onnxruntime device {device!r}; use auto, cpu, cuda or tensorrt")
    wanted = PROVIDERS[device][0]
    if wanted not in available:
        raise EdgekitError(
            f"onnxruntime here offers {', '.join(available)}, not {wanted}; install onnxruntime-gpu with matching "
            "CUDA/TensorRT libraries, or use --device cpu"
        )
    return PROVIDERS[device]


class OnnxRuntimeBackend(Backend):
    """One ONNX model in an onnxruntime session; uint8 input goes straight in for in-graph-normalised models."""

    name = "onnxruntime"

    def __init__(
        self,
        path: Union[str, Path],
        device: Device = "auto",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        spin_wait: bool = True,
        output_kind: Optional[OutputKind] = None,
    ) -> None:
        """``intra_op_threads`` 0 lets onnxruntime use every core; ``spin_wait`` False stops idle worker threads
        from busy-waiting, which leaves the CPU to capture and overlay threads running beside inference."""
        self.path = Path(path)
        if not self.path.is_file():
            raise EdgekitError(f"ONNX model not found: {self.path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        if not spin_wait:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = requested_providers(device)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise EdgekitError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        self.requested = providers
        self.provider = self.session.get_providers()[0]
        if self.provider != providers[0]:
            log.warning("onnxruntime: %s was requested but %s runs the model", providers[0], self.provider)
        (model_input,) = self.session.get_inputs()
        self.input_name = model_input.name
        self.input_dtype = np.dtype(NUMPY_DTYPES.get(model_input.type, np.float32))
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in model_input.shape)
        first_output = self.session.get_outputs()[0]
        self.output_name = first_output.name
        self.output_kind = output_kind or ("logits" if "float" in first_output.type else "classmap")
        self.threads = (intra_op_threads, inter_op_threads)
        self.spin_wait = spin_wait

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != self.input_dtype:
            batch = batch.astype(self.input_dtype)
        output = np.asarray(self.session.run([self.output_name], {self.input_name: batch})[0])
        if self.output_kind == "classmap" and output.ndim == 4:  # ArgMax with keepdims: N1HW -> NHW
            output = output[:, 0]
        return output

    def describe(self) -> str:
        threads = f"{self.threads[0]} intra-op threads" if self.threads[0] else "intra-op threads on all cores"
        return f"onnxruntime {ort.__version__} {self.provider} ({self.path.name}, {threads})"

    def details(self) -> Dict[str, Any]:
        return {
            "backend": self.name,
            "model": str(self.path),
            "provider": self.provider,
            "requested_providers": self.requested,
            "intra_op_threads": self.threads[0] or "all cores",
            "inter_op_threads": self.threads[1] or "default",
            "spin_wait": self.spin_wait,
            "input": {"shape": list(self.input_shape), "dtype": str(self.input_dtype)},
            "output_kind": self.output_kind,
            "onnxruntime_version": ort.__version__,
        }
