"""PyTorch backend: measures GPUs that have no TensorRT, and reproduces the ESPNet authors' naive timing.

Built from an ``nn.Module`` and a fixed NCHW input shape. On CUDA it offers FP16 (``.half()`` or autocast),
channels-last memory format, ``cudnn.benchmark`` and CUDA graphs (one capture on a static input buffer, then
replays), which together are what a well-tuned PyTorch deployment looks like; ``naive=True`` turns all of that
off to get the eager FP32 baseline the published 112 / 9 FPS figures were timed with.
"""

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from typing_extensions import Literal  # typing.Literal is 3.8+; JetPack 4.6 has 3.6

from edgekit.board.backends.base import Backend
from edgekit.errors import EdgekitError

Precision = Literal["fp32", "fp16"]
HalfMode = Literal["half", "autocast"]


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; an explicit 'cuda' without a GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EdgekitError("device 'cuda' requested but PyTorch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(device)


class TorchBackend(Backend):
    """One nn.Module on CPU or CUDA with the optimisations a PyTorch deployment can switch on."""

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        input_shape: Tuple[int, int, int, int],
        device: str = "auto",
        precision: Precision = "fp32",
        half_mode: HalfMode = "half",
        channels_last: bool = False,
        cuda_graphs: bool = False,
        cudnn_benchmark: bool = True,
        naive: bool = False,
    ) -> None:
        if precision not in ("fp32", "fp16"):
            raise EdgekitError(
                f"the torch backend runs fp32 or fp16, not {precision!r}; INT8 needs onnxruntime/TensorRT"
            )
        self.device = resolve_device(device)
        on_cuda = self.device.type == "cuda"
        if naive and (precision != "fp32" or channels_last or cuda_graphs):
            raise EdgekitError("naive mode is eager FP32 by definition; drop --precision fp16/channels-last/graphs")
        if cuda_graphs and not on_cuda:
            raise EdgekitError("CUDA graphs need a CUDA device; drop cuda_graphs or run on a GPU")
        if precision == "fp16" and not on_cuda:
            raise EdgekitError("FP16 in the torch backend needs CUDA (CPU half convolutions are slow emulation)")
        self.input_shape = tuple(input_shape)
        self.input_dtype = np.dtype(np.float32)
        self.output_kind = "logits"
        self.precision: Precision = precision
        self.half_mode: HalfMode = half_mode
        self.channels_last = channels_last
        self.naive = naive
        self.cudnn_benchmark = cudnn_benchmark and not naive and on_cuda
        if on_cuda:
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._tensor_dtype = torch.float16 if precision == "fp16" and half_mode == "half" else torch.float32
        model = model.eval().to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = model.half() if self._tensor_dtype == torch.float16 else model
        self.capturing = cuda_graphs
        self._graph: Optional[torch.cuda.CUDAGraph] = None
        self._static_input: Optional[torch.Tensor] = None
        self._static_output: Optional[torch.Tensor] = None
        if cuda_graphs:
            self._capture_graph()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.precision == "fp16" and self.half_mode == "autocast":
                # Autocast's weight-cast cache must be off while a CUDA graph is captured (PyTorch CUDA graphs docs).
                with torch.autocast(
                    device_type=self.device.type, dtype=torch.float16, cache_enabled=not self.capturing
                ):
                    return self.model(x)
            return self.model(x)

    def _capture_graph(self) -> None:
        """Warm up on a side stream (required before capture), then record one forward on a static buffer."""
        static = torch.zeros(self.input_shape, device=self.device, dtype=self._tensor_dtype)
        static = static.contiguous(memory_format=self.memory_format)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._forward(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static_output = self._forward(static)
        self._graph, self._static_input = graph, static

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        """Host NCHW float32 -> device tensor in this backend's dtype and memory format."""
        if tuple(batch.shape) != self.input_shape:
            raise EdgekitError(f"torch backend was built for input {self.input_shape}, got {tuple(batch.shape)}")
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
        return tensor.to(self._tensor_dtype).contiguous(memory_format=self.memory_format)

    def run_on_device(self, x: torch.Tensor) -> torch.Tensor:
        """Forward a device-resident input (replaying the CUDA graph when captured); no host copies."""
        if self._graph is not None:
            assert self._static_input is not None and self._static_output is not None
            self._static_input.copy_(x)
            self._graph.replay()
            return self._static_output
        return self._forward(x)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        output = self.run_on_device(self.to_device(batch))
        return output.float().cpu().numpy()

    def describe(self) -> str:
        mode = "naive eager fp32" if self.naive else self.precision
        return f"torch {torch.__version__} {mode} on {self.device}"

    def details(self) -> Dict[str, Any]:
        info: Dict[str, Any] = {
            "backend": self.name,
            "mode": "naive eager fp32 (ESPNet authors' loop)" if self.naive else "optimised",
            "device": str(self.device),
            "precision": self.precision,
            "half_mode": self.half_mode if self.precision == "fp16" else None,
            "channels_last": self.channels_last,
            "cuda_graphs": self._graph is not None,
            "cudnn_benchmark": self.cudnn_benchmark,
            "torch_version": torch.__version__,
        }
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info

    def close(self) -> None:
        self._graph = self._static_input = self._static_output = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def authors_timing_loop(
    model: nn.Module, input_size: Tuple[int, int], device: str = "auto", iterations: int = 100
) -> List[float]:
    """The ESPNet authors' loop (sacmehta/ESPNet#57), kept literally: random 1x3xHxW FP32 input already on the
    device, eager forward under no_grad, ``time.time()`` around each iteration with a per-iteration CUDA sync,
    the first iteration discarded. Returns the per-iteration seconds; the authors report their mean.
    """
    torch_device = resolve_device(device)
    width, height = input_size
    inputs = torch.randn(1, 3, height, width, device=torch_device)
    model = model.to(torch_device).eval()
    time_spent: List[float] = []
    for i in range(iterations):
        start_time = time.time()
        with torch.no_grad():
            _ = model(inputs)
        if torch_device.type == "cuda":
            torch.cuda.synchronize()
        if i != 0:
            time_spent.append(time.time() - start_time)
    return time_spent
