"""Open a model on the best backend this machine has, and say which one and why.

``open_backend`` takes a bundle (folder or loaded), a plain ONNX file, a TensorRT engine file or an edgekit
checkpoint. ``auto`` picks the bundle's TensorRT engine when TensorRT and a CUDA binding import, otherwise
onnxruntime; a checkpoint runs on the PyTorch backend. The choice and its reason are logged and recorded in
``backend.chosen_because`` (and the run's stats).
"""

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from edgekit.board.backends.base import Backend, OutputKind, to_classmap
from edgekit.board.bundle import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, MANIFEST, Bundle
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")

__all__ = ["BACKENDS", "Backend", "OutputKind", "choose_backend", "open_backend", "resolve_model", "to_classmap"]


def resolve_model(model: Union[Union[str, Path], Bundle]) -> Union[Bundle, Path]:
    """A loaded (sha256-verified) bundle for a bundle folder, else the model file itself."""
    if isinstance(model, Bundle):
        return model
    path = Path(model)
    if path.is_dir() or path.name == MANIFEST:
        return Bundle.load(path if path.is_dir() else path.parent)
    if not path.is_file():
        raise EdgekitError(f"model not found: {path} (give a bundle folder, an .onnx file or a checkpoint)")
    return path


def _bundle_output_kind(bundle: Bundle) -> Optional[OutputKind]:
    kind = bundle.manifest.output.kind
    return kind if kind in ("logits", "classmap") else None  # type: ignore[return-value]


def choose_backend(model: Union[Bundle, Path], backend: str = "auto") -> Tuple[str, str]:
    """(backend, why): 'auto' resolved for this model on this machine; other names pass through."""
    from edgekit.board.backends.tensorrt_backend.runner import tensorrt_unavailable_reason

    if backend not in BACKENDS:
        raise EdgekitError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend, f"--backend {backend} requested"

    if isinstance(model, Path):
        if model.suffix in CHECKPOINT_SUFFIXES:
            return "torch", "a checkpoint runs on PyTorch"
        if model.suffix in ENGINE_SUFFIXES:
            return "tensorrt", "a TensorRT engine file was given"
        return "onnxruntime", "a plain ONNX file was given"
    if model.engine is None:
        return "onnxruntime", f"bundle {model.root} has no TensorRT engine (build one with `edgekit compile`)"
    reason = tensorrt_unavailable_reason()
    if reason:
        return "onnxruntime", f"bundle has a TensorRT engine but {reason}"
    return "tensorrt", f"bundle has a TensorRT engine ({model.engine.name}) and TensorRT imports"


def open_backend(model: Union[Union[str, Path], Bundle], backend: str = "auto", **options: Any) -> Backend:
    """Load ``model`` on ``backend`` (auto/onnxruntime/tensorrt/torch); ``options`` go to the backend class."""
    resolved = resolve_model(model)
    backend, why = choose_backend(resolved, backend)
    log.info("backend: %s (%s)", backend, why)
    opened = _open(resolved, backend, options)
    opened.chosen_because = why
    return opened


def _open(model: Union[Bundle, Path], backend: str, options: Dict[str, Any]) -> Backend:
    bundle = model if isinstance(model, Bundle) else None
    if backend == "onnxruntime":
        from edgekit.board.backends.onnxruntime import OnnxRuntimeBackend

        path = bundle.runtime_onnx if bundle else model
        assert isinstance(path, Path)
        if path.suffix != ".onnx":
            raise EdgekitError(f"onnxruntime runs .onnx models, not {path.name}")
        kind = _bundle_output_kind(bundle) if bundle else None
        return OnnxRuntimeBackend(path, output_kind=kind, **options)
    if backend == "tensorrt":
        from edgekit.board.backends.tensorrt_backend.runner import TensorRTBackend

        if bundle is None:
            assert isinstance(model, Path)
            return TensorRTBackend(model, **options)
        if bundle.engine is None:
            raise EdgekitError(
                f"bundle {bundle.root} has no TensorRT engine; run `edgekit compile --bundle {bundle.root}`"
            )
        return TensorRTBackend(
            bundle.engine, built_for=bundle.manifest.engine, output_kind=_bundle_output_kind(bundle), **options
        )
    # torch: an edgekit checkpoint, at its preprocessing's input size unless input_shape is given
    if not isinstance(model, Path) or model.suffix not in CHECKPOINT_SUFFIXES:
        raise EdgekitError("the torch backend runs an edgekit checkpoint (.pt); bundles run on onnxruntime/tensorrt")
    from edgekit.board.backends.torch_backend import TorchBackend
    from edgekit.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(model)
    checkpoint.check_input_size(f"{model} was saved for input")
    width, height = checkpoint.preprocessing.input_size
    options.setdefault("input_shape", (1, 3, height, width))
    return TorchBackend(checkpoint.build(), **options)
