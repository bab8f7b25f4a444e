"""The small interface every inference backend implements (onnxruntime, TensorRT, PyTorch).

The runner and the benchmarks talk only to this interface, so a backend is chosen once, by name, and the
rest of the pipeline never branches on it.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import numpy as np

OutputKind = Literal["logits", "classmap"]


class Backend(abc.ABC):
    """One loaded model on one device, ready to run batches."""

    name: str  # "onnxruntime", "tensorrt", "torch"
    input_shape: tuple[int, ...]  # NCHW; N may be -1 for a dynamic batch
    input_dtype: np.dtype  # float32, or uint8 when the model normalises in-graph
    output_kind: OutputKind  # NCHW float logits, or an NHW class map from in-graph ArgMax
    chosen_because: str = ""  # why open_backend picked this backend; the runner records it in its stats

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (NCHW, ``input_dtype``) and return logits (NCHW float) or a class map (NHW int)."""

    def describe(self) -> dict[str, Any]:
        """What actually runs: provider/device/precision, for logs and benchmark fingerprints."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - most backends hold nothing that needs releasing
        """Release device memory and handles."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_classmap(output: np.ndarray, kind: OutputKind) -> np.ndarray:
    """NHW uint8 class ids from either output kind (argmax over channels for logits)."""
    if kind == "classmap":
        return output.astype(np.uint8, copy=False)
    return output.argmax(axis=1).astype(np.uint8)
