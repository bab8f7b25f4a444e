"""``edgekit compile`` on the board: build a bundle's TensorRT engine where it will run, atomically.

Needs only the board layer plus TensorRT (and pycuda or cuda-python): no torch, no onnx tooling. ``edgekit build``
calls the same code when the host itself has TensorRT and a GPU of the target's architecture.
"""

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from edgekit.board.backends.tensorrt_backend.releases import Release, parse_release, supported_release
from edgekit.board.bundle import ENGINE_FILE, REPORT_JSON, REPORT_MD, Bundle, BundleWriter, Manifest
from edgekit.board.report import render_report
from edgekit.board.targets import Target, parse_target
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """Whether this machine can build the target's engine, and why (``other_gpu``: only the GPU differs)."""

    ready: bool
    why: str
    other_gpu: bool = False


def compile_readiness(target: Target) -> Readiness:
    if target.backend != "tensorrt":
        return Readiness(False, f"{target.name} runs onnxruntime; no TensorRT engine is needed")
    from edgekit.board.backends.tensorrt_backend.cuda_binding import current_gpu
    from edgekit.board.backends.tensorrt_backend.runner import tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason:
        return Readiness(False, f"no engine built here: {reason}")
    gpu, capability = current_gpu()
    wanted = ".".join(map(str, target.compute_capability or ()))
    if capability != wanted:
        why = (
            f"no engine built here: this GPU is {gpu} (compute {capability}) but {target.name} is compute {wanted}, "
            "and an engine only runs on the GPU architecture it was built on"
        )
        return Readiness(False, why, other_gpu=True)
    return Readiness(True, f"TensorRT and a compute {capability} GPU ({gpu}) are present")


def board_command(output: Path) -> str:
    """What to run on the board after copying the bundle folder there."""
    return f"edgekit compile --bundle {output.name}"


def trtexec_for(
    root: Path, manifest: Manifest, release: Release, dla_core: Optional[int], compute_capability: str
) -> str:
    """The trtexec line that builds the engine of the bundle in ``root`` on ``release`` (run in the bundle folder).

    trtexec reads ``--calib`` through an IInt8EntropyCalibrator2 (``RndInt8Calibrator`` in
    samples/common/sampleEngines.cpp, 8.2 to 10.x): a cache under another algorithm's header is ignored and random
    data calibrated, which the line then says.
    """
    from edgekit.board.backends.tensorrt_backend.builder import int8_route, onnx_for, trtexec_command
    from edgekit.board.backends.tensorrt_backend.cache import DLA_ALGORITHM, cache_header

    profile = manifest.target_profile
    dla = dla_core is not None
    onnx_file, _ = onnx_for(release, manifest.precision, manifest.artifacts.onnx, dla, compute_capability)
    cache = manifest.artifacts.calibration_cache
    cache = cache if cache and int8_route(release, manifest.precision, dla, compute_capability) == "implicit" else None
    command = trtexec_command(
        release,
        manifest.precision,
        onnx_file,
        int(profile.get("workspace_mib") or 1024),
        calibration_cache=cache,
        dla_core=dla_core,
        optimization_level=profile.get("builder_optimization_level"),
        trtexec="/usr/src/tensorrt/bin/trtexec" if str(profile.get("kind")) == "jetson" else "trtexec",
    )
    algorithm = cache_header((root / cache).read_bytes(), cache)[1] if cache else DLA_ALGORITHM
    if algorithm != DLA_ALGORITHM:
        command += f"  # trtexec takes only {DLA_ALGORITHM} caches: it would ignore this {algorithm} one"
    return command


def target_compute_capability(manifest: Manifest) -> str:
    """'7.2' from the recorded profile's gpu.compute_capability (empty where the profile names none)."""
    return str((manifest.target_profile.get("gpu") or {}).get("compute_capability") or "")


def compile_engine(root: Path, manifest: Manifest, dla_core: Optional[int] = None) -> Dict[str, Any]:
    """Build the engine of a bundle folder ``root`` (staging or unpacked) into ``root``; returns the engine entry.

    The calibration cache's header is rewritten in ``root`` for the installed TensorRT first: the host wrote the
    profile's release, and a board on another one (JetPack 5.0.2 ships 8.4.1, the profile 8.5.2) would ignore it.
    """
    from edgekit.board.backends.tensorrt_backend.builder import (
        EngineRequest,
        build_engine,
        int8_route,
        onnx_for,
        tensorrt_version,
    )
    from edgekit.board.backends.tensorrt_backend.cache import retarget_cache_file
    from edgekit.board.backends.tensorrt_backend.cuda_binding import current_gpu

    version = tensorrt_version()
    if version is None:
        raise EdgekitError("TensorRT does not import here; install it (JetPack ships it) to compile the bundle")
    release = supported_release(version)
    _, capability = current_gpu()
    profile = manifest.target_profile
    precision = manifest.precision
    onnx_file, _ = onnx_for(release, precision, manifest.artifacts.onnx, dla_core is not None, capability)
    cache = manifest.artifacts.calibration_cache
    if cache and int8_route(release, precision, dla_core is not None, capability) == "implicit":
        rewritten = retarget_cache_file(root / cache, version)
        if rewritten:
            log.info("calibration cache: header %s rewritten to %s for the installed TensorRT", *rewritten)
    request = EngineRequest(
        onnx=root / onnx_file,
        precision=precision,
        workspace_mib=int(profile.get("workspace_mib") or 1024),
        calibration_cache=root / cache if cache else None,
        dla_core=dla_core,
        optimization_level=profile.get("builder_optimization_level"),
    )
    expected = profile.get("software", {}).get("tensorrt")
    if expected and parse_release(expected) != release:
        log.warning("%s lists TensorRT %s; building with the installed %s", profile["name"], expected, version)
    info = build_engine(request, root / ENGINE_FILE)
    engine = info.to_dict()
    engine["trtexec"] = trtexec_for(root, manifest, release, dla_core, capability)
    return engine


def compile_bundle(bundle_dir: Path, dla_core: Optional[int] = None, any_gpu: bool = False) -> Bundle:
    """Build the engine into a verified bundle, atomically, and re-hash it."""
    bundle = Bundle.load(bundle_dir)
    manifest = bundle.manifest
    # the profile recorded at build time: the board needs no copy of targets/
    target = parse_target(dict(manifest.target_profile), Path(f"{manifest.target}.yaml"))
    readiness = compile_readiness(target)
    if readiness.other_gpu and not any_gpu:
        raise EdgekitError(f"{readiness.why}; pass --any-gpu to build for this GPU anyway")
    if not readiness.ready and not readiness.other_gpu:
        raise EdgekitError(readiness.why)
    with BundleWriter(bundle.root) as writer:
        for relative in bundle.files:
            shutil.copy2(bundle.root / relative, writer.path(relative))
        started = time.perf_counter()
        manifest.engine = compile_engine(writer.staging, manifest, dla_core=dla_core)
        manifest.artifacts.engine = ENGINE_FILE
        log.info("engine built in %.1f s", time.perf_counter() - started)
        report = json.loads((bundle.root / REPORT_JSON).read_text())
        report["engine"] = manifest.engine
        report["compile"] = f"engine built on this device ({manifest.engine['gpu']})"
        report["trtexec"] = manifest.engine["trtexec"]
        writer.path(REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
        writer.path(REPORT_MD).write_text(render_report(report))
        return writer.commit(manifest)
