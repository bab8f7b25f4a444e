"""The TensorRT releases edgekit runs on, and the TensorRT names it uses only on some of them.

Every module that touches ``tensorrt`` puts a name that exists only in some releases behind ``has(release, NAME)``
in the branch that uses it; ``tests/board/backends/test_tensorrt_names.py`` parses those modules and checks every
TensorRT name against the per-release binding dump in ``shared/reference/tensorrt-api-by-version.json``, so ``GATED``
cannot drift.
"""

from typing import Dict, Optional, Tuple

from edgekit.errors import EdgekitError

Release = Tuple[int, int]
# 8.0.1 (JetPack 4.6) lacks ProfilingVerbosity.DETAILED and the engine inspector (both 8.2+), which every build
# uses to record where each layer runs; JetPack 4.6.1 ships 8.2.1 for the same boards.
OLDEST_SUPPORTED: Release = (8, 2)
NAMED_IO: Release = (8, 5)  # tensor-name I/O and execute_async_v3; binding indices before
EXPLICIT_INT8: Release = (8, 5)  # from here GPU INT8 engines come from the Q/DQ ONNX
STRONGLY_TYPED_ONLY: Release = (11, 0)  # no precision flags, no calibrators: the ONNX carries the types

_CALIBRATORS: Tuple[Optional[Release], Optional[Release]] = (None, STRONGLY_TYPED_ONLY)
_BINDINGS: Tuple[Optional[Release], Optional[Release]] = (None, NAMED_IO)
_TENSOR_NAMES: Tuple[Optional[Release], Optional[Release]] = (NAMED_IO, None)

# TensorRT names used only in some releases: (first release using it, first release not using it). A range may be
# narrower than the name's availability (EXPLICIT_BATCH exists until 11.0 but is ignored from 10.0; the binding
# API exists until 10.0 but the runner uses tensor names from 8.5).
GATED: Dict[str, Tuple[Optional[Release], Optional[Release]]] = {
    "IBuilderConfig.max_workspace_size": (None, (8, 4)),
    "IBuilderConfig.set_memory_pool_limit": ((8, 4), None),
    "MemoryPoolType.WORKSPACE": ((8, 4), None),
    "IBuilderConfig.builder_optimization_level": ((8, 6), None),
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH": (None, (10, 0)),
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED": (STRONGLY_TYPED_ONLY, None),
    "BuilderFlag.FP16": (None, STRONGLY_TYPED_ONLY),
    "BuilderFlag.INT8": (None, STRONGLY_TYPED_ONLY),
    "Builder.platform_has_fast_int8": (None, STRONGLY_TYPED_ONLY),
    # implicit INT8 from a calibration cache: every INT8 build before 8.5, DLA and sm_6x INT8 up to 10.x
    "IInt8Calibrator": _CALIBRATORS,
    "IInt8EntropyCalibrator2": _CALIBRATORS,
    "IInt8EntropyCalibrator": _CALIBRATORS,
    "IInt8MinMaxCalibrator": _CALIBRATORS,
    "IBuilderConfig.int8_calibrator": _CALIBRATORS,
    # the runner's I/O: binding indices before 8.5, tensor names from 8.5
    "ICudaEngine.num_bindings": _BINDINGS,
    "ICudaEngine.binding_is_input": _BINDINGS,
    "ICudaEngine.get_binding_shape": _BINDINGS,
    "ICudaEngine.get_binding_dtype": _BINDINGS,
    "ICudaEngine.get_binding_name": _BINDINGS,
    "ICudaEngine.get_profile_shape": _BINDINGS,
    "IExecutionContext.set_binding_shape": _BINDINGS,
    "IExecutionContext.get_binding_shape": _BINDINGS,
    "IExecutionContext.execute_async_v2": _BINDINGS,
    "ICudaEngine.num_io_tensors": _TENSOR_NAMES,
    "ICudaEngine.get_tensor_name": _TENSOR_NAMES,
    "ICudaEngine.get_tensor_mode": _TENSOR_NAMES,
    "ICudaEngine.get_tensor_shape": _TENSOR_NAMES,
    "ICudaEngine.get_tensor_dtype": _TENSOR_NAMES,
    "ICudaEngine.get_tensor_profile_shape": _TENSOR_NAMES,
    "TensorIOMode.INPUT": _TENSOR_NAMES,
    "IExecutionContext.set_input_shape": _TENSOR_NAMES,
    "IExecutionContext.get_tensor_shape": _TENSOR_NAMES,
    "IExecutionContext.set_tensor_address": _TENSOR_NAMES,
    "IExecutionContext.execute_async_v3": _TENSOR_NAMES,
}


def has(release: Release, *names: str) -> bool:
    """Whether edgekit uses the TensorRT names on ``release`` (see ``GATED``)."""
    return all(
        (first is None or release >= first) and (until is None or release < until)
        for first, until in (GATED[name] for name in names)
    )


def parse_release(version: str) -> Release:
    """'8.2.1.8' -> (8, 2)."""
    major, minor, *_ = (int(p) for p in [*version.split(".")[:2], "0"])
    return major, minor


def supported_release(version: str) -> Release:
    """The release of an installed TensorRT ``version``, refused below 8.2 with the JetPack that fixes it."""
    release = parse_release(version)
    if release < OLDEST_SUPPORTED:
        raise EdgekitError(
            f"TensorRT {version} is older than 8.2, which edgekit needs (8.0 has no engine inspector or "
            "ProfilingVerbosity.DETAILED); on a Jetson, upgrade to JetPack 4.6.1 or later (TensorRT 8.2.1)"
        )
    return release
