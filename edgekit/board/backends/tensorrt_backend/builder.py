"""Build a TensorRT engine from a bundle's ONNX, with the names valid for each release from 8.2 to 11.x.

One code path serves every release; the API differences are looked up in ``GATED``, a table of the TensorRT
names that exist only in some releases, and every use of such a name sits behind ``has(release, NAME)``.
``tests/test_tensorrt_names.py`` parses this module and checks each TensorRT name it touches against the
per-release binding dump in ``shared/reference/tensorrt-api-by-version.json``, so the table cannot drift.

Precision per release (see shared/reference/tensorrt-api.md §4-5):
- 8.0-8.4: FP16/INT8 builder flags; INT8 from the FP32 ONNX plus the bundle's calibration cache, handed to
  TensorRT by a calibrator that only reads the cache (no calibration images or CUDA buffers on the board).
- 8.5-10.x: FP16 flag; INT8 from the Q/DQ ONNX with INT8+FP16 flags (explicit quantization): it carries the
  layers the host build measured and chose for INT8, where a cache would put every layer with a scale in INT8.
- 11.x: strongly typed networks only: the precision comes from the ONNX (FP16 ONNX, Q/DQ ONNX), no flags.
Imports tensorrt lazily: this module loads (and is type-checked) where TensorRT is absent.
"""

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from edgekit.board.bundle import TIMING_CACHE_FILE
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    import tensorrt as trt

Release = Tuple[int, int]
EXPLICIT_INT8: Release = (8, 5)  # from here INT8 engines come from the Q/DQ ONNX

# TensorRT names this module uses only in some releases: (first release using it, first release not using it).
# A range may be narrower than the name's availability (EXPLICIT_BATCH exists until 11.0 but is ignored from 10.0).
GATED: Dict[str, Tuple[Optional[Release], Optional[Release]]] = {
    "IBuilderConfig.max_workspace_size": (None, (8, 4)),
    "IBuilderConfig.set_memory_pool_limit": ((8, 4), None),
    "MemoryPoolType.WORKSPACE": ((8, 4), None),
    "IBuilderConfig.builder_optimization_level": ((8, 6), None),
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH": (None, (10, 0)),
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED": ((11, 0), None),
    "BuilderFlag.FP16": (None, (11, 0)),
    "BuilderFlag.INT8": (None, (11, 0)),
    "Builder.platform_has_fast_int8": (None, (11, 0)),
    "IInt8EntropyCalibrator2": (None, EXPLICIT_INT8),
    "IBuilderConfig.int8_calibrator": (None, EXPLICIT_INT8),
}
SIDECAR_SUFFIX = ".json"


def has(release: Release, *names: str) -> bool:
    """Whether this module uses the TensorRT names on ``release`` (see ``GATED``)."""
    return all(
        (first is None or release >= first) and (until is None or release < until)
        for first, until in (GATED[name] for name in names)
    )


def parse_release(version: str) -> Release:
    """'8.2.1.8' -> (8, 2)."""
    major, minor, *_ = (int(p) for p in [*version.split(".")[:2], "0"])
    return major, minor


@dataclass(frozen=True)
class EngineRequest:
    """What to build: one ONNX file at one precision with a target's settings."""

    onnx: Path  # the FP32, FP16 or Q/DQ ONNX (see ``onnx_for``)
    precision: str  # fp32 / fp16 / int8
    workspace_mib: int
    calibration_cache: Optional[Path] = None  # TensorRT-format cache for INT8 on 8.x
    dla_core: Optional[int] = None
    optimization_level: Optional[int] = None


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar written beside every engine: an engine only loads on this GPU and TensorRT release."""

    tensorrt_version: str
    gpu: str
    compute_capability: str
    precision: str
    onnx: str
    strongly_typed: bool
    dla_core: Optional[int]
    workspace_mib: int
    optimization_level: Optional[int]
    build_seconds: float
    timing_cache: Optional[str]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def tensorrt_version() -> Optional[str]:
    """The installed TensorRT's version, or None where it does not import."""
    try:
        import tensorrt as trt
    except Exception:  # ImportError, or OSError from a missing libnvinfer
        return None
    return str(trt.__version__)


def current_gpu() -> Tuple[str, str]:
    """(name, 'MAJOR.MINOR') of CUDA device 0, through the runner's CUDA binding."""
    from edgekit.board.backends.tensorrt_backend.runner import _open_cuda

    cuda = _open_cuda("auto")
    try:
        return cuda.gpu()
    finally:
        cuda.close()


def onnx_for(release: Release, precision: str, variants: Dict[str, str]) -> Tuple[str, bool]:
    """(bundle ONNX variant to parse, strongly typed?) for a precision on a release; variants: precision -> file."""
    if release >= (11, 0):
        wanted = {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}[precision]
        if wanted not in variants:
            raise EdgekitError(
                f"TensorRT {release[0]}.{release[1]} builds only strongly typed networks: {precision.upper()} needs "
                f"the {wanted} ONNX variant, which this bundle lacks; rebuild it with `edgekit build --precision "
                f"{precision}`"
            )
        return variants[wanted], True
    if precision == "int8" and release >= EXPLICIT_INT8:
        if "int8" not in variants:
            raise EdgekitError(
                f"INT8 on TensorRT {release[0]}.{release[1]} uses the Q/DQ ONNX, which this bundle lacks; rebuild it"
            )
        return variants["int8"], False
    return variants["fp32"], False


def build_engine(request: EngineRequest, engine_path: Path, log: Any = print) -> EngineInfo:
    """Parse, configure and build; write the engine, its sidecar and the timing cache atomically beside it."""
    import tensorrt as trt

    version = str(trt.__version__)
    release = parse_release(version)
    started = time.perf_counter()
    logger: trt.Logger = trt.Logger()
    builder: trt.Builder = trt.Builder(logger)
    onnx_strongly_typed = release >= (11, 0)
    flags = 0
    if has(release, "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if has(release, "NetworkDefinitionCreationFlag.STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network: trt.INetworkDefinition = builder.create_network(flags)
    parser: trt.OnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(request.onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgekitError(f"TensorRT {version} cannot parse {request.onnx.name}: {errors}")

    config: trt.IBuilderConfig = builder.create_builder_config()
    workspace = request.workspace_mib << 20
    if has(release, "IBuilderConfig.set_memory_pool_limit", "MemoryPoolType.WORKSPACE"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if has(release, "IBuilderConfig.max_workspace_size"):
        config.max_workspace_size = workspace  # type: ignore[attr-defined]  # removed in 10.0
    if request.optimization_level is not None and has(release, "IBuilderConfig.builder_optimization_level"):
        config.builder_optimization_level = request.optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    _set_precision(builder, config, request, release, log)
    if request.dla_core is not None:
        _use_dla(builder, config, request.dla_core, request.precision)

    timing_path = engine_path.with_name(TIMING_CACHE_FILE)
    timing: trt.ITimingCache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)

    log(f"building the TensorRT {version} engine ({request.precision}, {request.onnx.name}); this takes minutes")
    plan: Optional[trt.IHostMemory] = builder.build_serialized_network(network, config)
    if plan is None:
        raise EdgekitError(f"TensorRT {version} failed to build an engine from {request.onnx.name}; see its log above")
    gpu, capability = current_gpu()
    info = EngineInfo(
        tensorrt_version=version,
        gpu=gpu,
        compute_capability=capability,
        precision=request.precision,
        onnx=request.onnx.name,
        strongly_typed=onnx_strongly_typed,
        dla_core=request.dla_core,
        workspace_mib=request.workspace_mib,
        optimization_level=request.optimization_level,
        build_seconds=round(time.perf_counter() - started, 1),
        timing_cache=timing_path.name,
    )
    timing_out: trt.ITimingCache = config.get_timing_cache()
    serialized_cache: trt.IHostMemory = timing_out.serialize()
    _write_atomic(timing_path, bytes(serialized_cache))
    _write_atomic(engine_path, bytes(plan))
    _write_atomic(sidecar_path(engine_path), (json.dumps(info.to_dict(), indent=2) + "\n").encode())
    return info


def _set_precision(
    builder: "trt.Builder", config: "trt.IBuilderConfig", request: EngineRequest, release: Release, log: Any
) -> None:
    """Builder flags (8.x-10.x) and the 8.x calibration cache; nothing on 11.x, where the ONNX carries the types."""
    import tensorrt as trt

    if request.precision == "fp32" or release >= (11, 0):
        return
    if has(release, "BuilderFlag.FP16"):
        config.set_flag(trt.BuilderFlag.FP16)  # also for INT8: layers without INT8 kernels run in FP16
    if request.precision != "int8" or not has(release, "BuilderFlag.INT8"):
        return
    if has(release, "Builder.platform_has_fast_int8") and not builder.platform_has_fast_int8:
        raise EdgekitError("this GPU has no fast INT8 (platform_has_fast_int8 is False); build the bundle for FP16")
    config.set_flag(trt.BuilderFlag.INT8)
    if has(release, "IBuilderConfig.int8_calibrator"):
        if request.calibration_cache is None:
            raise EdgekitError("INT8 before TensorRT 8.5 needs the bundle's calibration cache, which is missing")
        log(f"INT8 scales from {request.calibration_cache.name} (no calibration pass on the device)")
        config.int8_calibrator = _cache_calibrator(request.calibration_cache.read_bytes(), release)


def _cache_calibrator(cache: bytes, release: Release) -> Any:
    """An IInt8EntropyCalibrator2 that hands TensorRT the host-computed cache and never asks for images."""
    if not has(release, "IInt8EntropyCalibrator2"):
        raise EdgekitError(f"TensorRT {release} has no implicit calibrators; use the Q/DQ ONNX")
    import tensorrt as trt

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # required, or the binding segfaults

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: List[str]) -> List[int]:
            return []  # no data: the cache covers every tensor

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, cache: memoryview) -> None:
            """The cache came from the host build; TensorRT's re-serialisation adds nothing."""

    return CacheCalibrator()


def _use_dla(builder: "trt.Builder", config: "trt.IBuilderConfig", core: int, precision: str) -> None:
    """Run what the DLA supports on core ``core`` and the rest on the GPU."""
    import tensorrt as trt

    if precision == "fp32":
        raise EdgekitError("the DLA runs FP16 or INT8 only; build the bundle for fp16 or int8 to use --dla-core")
    if core >= builder.num_DLA_cores:
        raise EdgekitError(f"DLA core {core} requested but this device has {builder.num_DLA_cores} DLA core(s)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def sidecar_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    partial.replace(path)
