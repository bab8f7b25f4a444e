"""Build a TensorRT engine from a bundle's ONNX, with the names valid for each release from 8.2 to 11.x.

One code path serves every release; the names that exist only in some releases sit behind ``has(release, NAME)``
(see :mod:`.releases`, whose table ``tests/board/backends/test_tensorrt_names.py`` checks against each release's
bindings).

Precision per release (see shared/reference/tensorrt-api.md §4-5):
- 8.2-8.4: FP16/INT8 builder flags; INT8 from the FP32 ONNX plus the bundle's calibration cache, handed to
  TensorRT by a calibrator that only reads the cache (no calibration images or CUDA buffers on the board).
- 8.5-10.x: FP16 flag; INT8 from the Q/DQ ONNX with INT8+FP16 flags (explicit quantization): it carries the
  layers the host build measured and chose for INT8, where a cache would put every layer with a scale in INT8.
  Two exceptions keep the cache route (implicit INT8): the DLA runs only calibrated INT8 (NVIDIA/TensorRT#2222;
  from a Q/DQ ONNX every layer would fall back to the GPU), and Pascal (sm_6x) INT8 from Q/DQ is reported failing
  on 8.6 (NVIDIA/TensorRT#3157, "You need Turing+").
- 11.x: strongly typed networks only: the precision comes from the ONNX (FP16 ONNX, Q/DQ ONNX), no flags.
Every build records where each layer runs (the engine inspector), so "DLA" in the manifest is measured.
Imports tensorrt lazily: this module loads (and is type-checked) where TensorRT is absent.
"""

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Type

from edgekit.board.backends.tensorrt_backend.cache import cache_header, calibrator_for, retarget_cache
from edgekit.board.backends.tensorrt_backend.cuda_binding import current_gpu
from edgekit.board.backends.tensorrt_backend.releases import (
    EXPLICIT_INT8,
    STRONGLY_TYPED_ONLY,
    Release,
    has,
    supported_release,
)
from edgekit.board.backends.tensorrt_backend.sidecar import sidecar_path
from edgekit.board.bundle import timing_cache_file
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineRequest:
    """What to build: one ONNX file at one precision with a target's settings."""

    onnx: Path  # the FP32, FP16 or Q/DQ ONNX (see ``onnx_for``)
    precision: str  # fp32 / fp16 / int8
    workspace_mib: int
    calibration_cache: Optional[Path] = None  # TensorRT-format cache for implicit INT8 (see ``int8_route``)
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
    int8: Optional[Dict[str, Any]]  # route, calibrator class and cache header of an INT8 build
    layers: Dict[str, Any]  # where each layer runs, from the engine inspector (see ``layer_placement``)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def tensorrt_version() -> Optional[str]:
    """The installed TensorRT's version, or None where it does not import."""
    try:
        import tensorrt as trt
    except Exception:  # ImportError, or OSError from a missing libnvinfer
        return None
    return str(trt.__version__)


def int8_route(release: Release, precision: str, dla: bool, compute_capability: str) -> Optional[str]:
    """How an INT8 engine gets its precision on ``release``: 'typed' (11.x, the Q/DQ ONNX's types), 'explicit'
    (the Q/DQ ONNX with INT8 flags) or 'implicit' (the FP32 ONNX plus the calibration cache); None if not INT8."""
    if precision != "int8":
        return None
    if release >= STRONGLY_TYPED_ONLY:
        return "typed"
    pascal = compute_capability.replace("sm_", "").startswith("6")
    if release < EXPLICIT_INT8 or dla or pascal:
        return "implicit"
    return "explicit"


def onnx_for(
    release: Release, precision: str, variants: Dict[str, str], dla: bool = False, compute_capability: str = ""
) -> Tuple[str, bool]:
    """(bundle ONNX variant to parse, strongly typed?) for a precision on a release; variants: precision -> file."""
    route = int8_route(release, precision, dla, compute_capability)
    if release >= STRONGLY_TYPED_ONLY:
        if precision not in variants:
            raise EdgekitError(
                f"TensorRT {release[0]}.{release[1]} builds only strongly typed networks: {precision.upper()} needs "
                f"the {precision} ONNX variant, which this bundle lacks; rebuild it with `edgekit build --precision "
                f"{precision}`"
            )
        return variants[precision], True
    if route == "explicit":
        if "int8" not in variants:
            raise EdgekitError(
                f"INT8 on TensorRT {release[0]}.{release[1]} uses the Q/DQ ONNX, which this bundle lacks; rebuild it"
            )
        return variants["int8"], False
    return variants["fp32"], False


def trtexec_command(
    release: Release,
    precision: str,
    onnx: str,
    workspace_mib: int,
    calibration_cache: Optional[str] = None,
    dla_core: Optional[int] = None,
    optimization_level: Optional[int] = None,
    trtexec: str = "/usr/src/tensorrt/bin/trtexec",
) -> str:
    """The trtexec line that builds the engine ``build_engine`` builds on ``release``, to build it without Python.

    Options per release from samples/common/sampleOptions.cpp at the tags: ``--workspace`` (MiB) until 8.4,
    then ``--memPoolSize=workspace:<MiB>``; ``--builderOptimizationLevel`` from 8.6; no ``--fp16``/``--int8``/
    ``--calib`` in 11.x, whose networks are strongly typed. ``calibration_cache`` is given for implicit INT8 only.
    """
    parts = [trtexec, f"--onnx={onnx}", "--saveEngine=model.engine"]
    parts.append(f"--memPoolSize=workspace:{workspace_mib}" if release >= (8, 4) else f"--workspace={workspace_mib}")
    if precision != "fp32" and release < STRONGLY_TYPED_ONLY:
        parts.append("--fp16")
        if precision == "int8":
            parts.append("--int8")
            if calibration_cache:
                parts.append(f"--calib={calibration_cache}")
    if dla_core is not None:
        parts += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
    if optimization_level is not None and release >= (8, 6):
        parts.append(f"--builderOptimizationLevel={optimization_level}")
    parts += ["--profilingVerbosity=detailed", "--exportLayerInfo=layers.json"]
    return " ".join(parts)


def timing_cache_seed(path: Path) -> bytes:
    """The timing cache a build starts from: the one this GPU and TensorRT wrote before (``path`` is keyed by both),
    else empty."""
    if path.is_file():
        log.info("timing cache: reusing %s", path.name)
        return path.read_bytes()
    log.info("timing cache: none for this GPU and TensorRT yet (%s); the build starts from an empty one", path.name)
    return b""


def install_timing_cache(install: Callable[[bytes], Optional[str]], seed: bytes, name: str) -> bool:
    """Hand TensorRT ``seed`` through ``install`` (None when accepted, else why not); if refused, an empty cache.

    ``set_timing_cache(cache, ignore_mismatch=False)`` returns False for a cache another GPU or TensorRT wrote,
    and the build must not go on without one: ``get_timing_cache()`` is then None after a multi-minute build.
    Returns whether the seed was taken.
    """
    refused = install(seed)
    if refused is None:
        return True
    log.warning("timing cache: TensorRT refused %s (%s); building with an empty timing cache instead", name, refused)
    refused_empty = install(b"")
    if refused_empty is not None:
        raise EdgekitError(f"TensorRT refused even an empty timing cache ({refused_empty}); see its log above")
    return False


def serialized_timing_cache(cache: "Optional[trt.ITimingCache]") -> Optional[bytes]:
    """The timing cache to write after a build, or None (said in the log) where TensorRT hands none back."""
    if cache is None:
        log.warning("timing cache: TensorRT returned none after the build; no timing cache is written")
        return None
    return bytes(cache.serialize())


def layer_placement(engine_information: str, dla: bool) -> Dict[str, Any]:
    """Where each layer of an engine runs, from the engine inspector's JSON (``LayerInformationFormat.JSON``).

    A DLA subgraph appears as one ``{ForeignNode[first...last]}`` layer between ``to nvm``/``from nvm`` copies
    (NVIDIA/TensorRT#3143); in a DLA build such layers, and any whose type names the DLA, run on the DLA.
    """
    layers = json.loads(engine_information).get("Layers", [])
    placed = []
    for layer in layers:
        name = layer if isinstance(layer, str) else str(layer.get("Name", ""))
        kind = "" if isinstance(layer, str) else str(layer.get("LayerType", ""))
        on_dla = dla and (name.startswith("{ForeignNode[") or "DLA" in kind.upper())
        placed.append({"name": name, "type": kind, "device": "DLA" if on_dla else "GPU"})
    return {
        "source": "TensorRT engine inspector (ProfilingVerbosity.DETAILED)",
        "dla": sum(1 for layer in placed if layer["device"] == "DLA"),
        "gpu": sum(1 for layer in placed if layer["device"] == "GPU"),
        "per_layer": placed,
    }


def build_engine(request: EngineRequest, engine_path: Path) -> EngineInfo:
    """Parse, configure and build; write the engine, its sidecar and the timing cache atomically beside it."""
    import tensorrt as trt

    version = str(trt.__version__)
    release = supported_release(version)
    started = time.perf_counter()
    gpu, capability = current_gpu()
    logger: trt.Logger = trt.Logger()
    builder: trt.Builder = trt.Builder(logger)
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
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # 8.2+ (supported_release)
    int8, calibrator = _set_precision(builder, config, request, release, version, capability)
    if request.dla_core is not None:
        _use_dla(builder, config, request.dla_core, request.precision)

    timing_name = timing_cache_file(version, capability)
    timing_path = engine_path.with_name(timing_name)

    def install(blob: bytes) -> Optional[str]:
        timing: Optional[trt.ITimingCache] = config.create_timing_cache(blob)
        if timing is None:
            return "create_timing_cache returned None"
        return None if config.set_timing_cache(timing, ignore_mismatch=False) else "set_timing_cache returned False"

    install_timing_cache(install, timing_cache_seed(timing_path), timing_name)

    log.info(
        "building the TensorRT %s engine (%s, %s); this takes minutes", version, request.precision, request.onnx.name
    )
    plan: Optional[trt.IHostMemory] = builder.build_serialized_network(network, config)
    if calibrator is not None and calibrator.rejected:
        raise EdgekitError(
            f"TensorRT {version} rejected the calibration cache {(int8 or {}).get('cache_header')} (cache rejected: "
            "it asked for calibration images); rebuild the bundle with `edgekit build` for this TensorRT"
        )
    if plan is None:
        raise EdgekitError(f"TensorRT {version} failed to build an engine from {request.onnx.name}; see its log above")
    layers = _inspect(logger, plan, request.dla_core)
    if request.dla_core is not None and not layers["dla"]:
        log.warning(
            "no layer of this engine runs on DLA core %d; all %d run on the GPU", request.dla_core, layers["gpu"]
        )
    saved_timing = serialized_timing_cache(config.get_timing_cache())
    info = EngineInfo(
        tensorrt_version=version,
        gpu=gpu,
        compute_capability=capability,
        precision=request.precision,
        onnx=request.onnx.name,
        strongly_typed=release >= STRONGLY_TYPED_ONLY,
        dla_core=request.dla_core,
        workspace_mib=request.workspace_mib,
        optimization_level=request.optimization_level,
        build_seconds=round(time.perf_counter() - started, 1),
        timing_cache=timing_name if saved_timing is not None else None,
        int8=int8,
        layers=layers,
    )
    if saved_timing is not None:
        _write_atomic(timing_path, saved_timing)
    _write_atomic(engine_path, bytes(plan))
    _write_atomic(sidecar_path(engine_path), (json.dumps(info.to_dict(), indent=2) + "\n").encode())
    return info


def _inspect(logger: "trt.Logger", plan: "trt.IHostMemory", dla_core: Optional[int]) -> Dict[str, Any]:
    """Per-layer placement of the built engine, read back through the engine inspector (8.2+)."""
    import tensorrt as trt

    runtime: trt.Runtime = trt.Runtime(logger)
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine: Optional[trt.ICudaEngine] = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EdgekitError("TensorRT built an engine it cannot deserialize; see its log above")
    inspector: trt.EngineInspector = engine.create_engine_inspector()
    return layer_placement(str(inspector.get_engine_information(trt.LayerInformationFormat.JSON)), dla_core is not None)


def _set_precision(
    builder: "trt.Builder",
    config: "trt.IBuilderConfig",
    request: EngineRequest,
    release: Release,
    version: str,
    compute_capability: str,
) -> Tuple[Optional[Dict[str, Any]], Any]:
    """Builder flags (8.x-10.x) and, for implicit INT8, the cache calibrator; nothing on 11.x, where the ONNX
    carries the types. Returns (the INT8 record for the sidecar, the calibrator to check after the build)."""
    import tensorrt as trt

    route = int8_route(release, request.precision, request.dla_core is not None, compute_capability)
    int8 = {"route": route} if route else None
    if request.precision == "fp32" or not has(release, "BuilderFlag.FP16"):
        return int8, None
    config.set_flag(trt.BuilderFlag.FP16)  # also for INT8: layers without INT8 kernels run in FP16
    if request.precision != "int8" or not has(release, "BuilderFlag.INT8"):
        return int8, None
    if has(release, "Builder.platform_has_fast_int8") and not builder.platform_has_fast_int8:
        raise EdgekitError("this GPU has no fast INT8 (platform_has_fast_int8 is False); build the bundle for FP16")
    config.set_flag(trt.BuilderFlag.INT8)
    if route != "implicit" or not has(release, "IBuilderConfig.int8_calibrator"):
        return int8, None
    if request.calibration_cache is None:
        raise EdgekitError(
            f"implicit INT8 on TensorRT {version} needs the bundle's calibration cache, which is missing"
        )
    data = request.calibration_cache.read_bytes()
    _, algorithm = cache_header(data, request.calibration_cache.name)
    class_name, header_algorithm, why = calibrator_for(algorithm, request.dla_core is not None)
    if why:
        log.info("calibration: %s", why)
    data = retarget_cache(data, version, header_algorithm, request.calibration_cache.name)
    header = data.split(b"\n", 1)[0].decode()
    log.info(
        "INT8 scales from %s (%s, %s; no calibration pass here)", request.calibration_cache.name, header, class_name
    )
    calibrator = _cache_calibrator(data, class_name, release)
    config.int8_calibrator = calibrator
    return {"route": route, "calibrator": class_name, "cache_header": header}, calibrator


def _cache_calibrator(cache: bytes, class_name: str, release: Release) -> Any:
    """A calibrator of ``class_name`` that hands TensorRT the host-computed cache and never has images to give.

    TensorRT asks for a batch only when it rejected the cache (wrong header or algorithm). ``get_batch`` is
    ``noexcept`` in the bindings (pyInt8.cpp): a Python exception there aborts the process, so the rejection is
    recorded and logged there, and ``build_engine`` raises it once TensorRT returns.
    """
    if not has(
        release, "IInt8Calibrator", "IInt8EntropyCalibrator2", "IInt8EntropyCalibrator", "IInt8MinMaxCalibrator"
    ):
        raise EdgekitError(f"TensorRT {release[0]}.{release[1]} has no implicit calibrators; use the Q/DQ ONNX")
    import tensorrt as trt

    classes = {
        "IInt8EntropyCalibrator2": trt.IInt8EntropyCalibrator2,
        "IInt8EntropyCalibrator": trt.IInt8EntropyCalibrator,
        "IInt8MinMaxCalibrator": trt.IInt8MinMaxCalibrator,
    }
    base: Type[trt.IInt8Calibrator] = classes[class_name]

    class CacheCalibrator(base):  # type: ignore[valid-type,misc]  # pyright: ignore[reportGeneralTypeIssues]
        def __init__(self) -> None:
            base.__init__(self)  # required, or the binding segfaults
            self.rejected = False

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: List[str]) -> List[int]:
            self.rejected = True
            log.error("calibration cache rejected by TensorRT %d.%d: it asks for images, there are none", *release)
            return []  # ends calibration; build_engine raises

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, cache: memoryview) -> None:
            """The cache came from the host build; TensorRT's re-serialisation adds nothing."""

    return CacheCalibrator()


def _use_dla(builder: "trt.Builder", config: "trt.IBuilderConfig", core: int, precision: str) -> None:
    """Run what the DLA supports on core ``core`` and the rest on the GPU (where each layer runs is recorded)."""
    import tensorrt as trt

    if precision == "fp32":
        raise EdgekitError("the DLA runs FP16 or INT8 only; build the bundle for fp16 or int8 to use --dla-core")
    if core >= builder.num_DLA_cores:
        raise EdgekitError(f"DLA core {core} requested but this device has {builder.num_DLA_cores} DLA core(s)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    partial.replace(path)
