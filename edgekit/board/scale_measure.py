"""The board's half of ``edgekit scale``: time every candidate ONNX of a kit, as ``edgekit bench`` times a model.

``edgekit scale`` grows LPS-Net by measured latency. When the target is not the machine that trains, each step
writes a kit (``kit.json`` plus one ONNX file per candidate); this module measures the kit on the board with the
board's own backends and writes ``latencies.json``, which ``edgekit scale --resume --latencies`` reads. The same
``measure_candidate`` times candidates on the host when the host is the target, so both ways measure alike.
No torch, no onnx: only the board layer.
"""

# ruff: noqa: UP006, UP035, UP045 - runs on the board's Python 3.6: typing spellings, not 3.9+/3.10+ ones
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

from edgekit.board.backends import Backend, open_backend
from edgekit.board.measure.fingerprint import device_fingerprint
from edgekit.board.measure.timing import StopRule, latency_stats, median_ci, time_until_stable
from edgekit.errors import EdgekitError

KIT_SCHEMA = "edgekit-scale-kit/1"
LATENCIES_SCHEMA = "edgekit-scale-latencies/1"
KIT_FILE = "kit.json"
MEASURE_BACKENDS = ("onnxruntime", "tensorrt")
WORKSPACE_MIB = 1024  # TensorRT builder workspace for a candidate; the kit's target may say otherwise


def write_json_atomic(path: Path, document: Dict[str, Any]) -> None:
    """Write through a temporary file in the same folder: an interruption never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=str(path.parent))
    with os.fdopen(handle, "w") as stream:
        json.dump(document, stream, indent=2)
        stream.write("\n")
    os.replace(tmp, str(path))


def _tensorrt_engine(onnx: Path, precision: str, workspace_mib: int) -> Path:
    """An engine of the kit's precision built beside the ONNX (reused when already there)."""
    from edgekit.board.backends.tensorrt.builder import EngineRequest, build_engine

    engine = onnx.with_name(onnx.stem + "-" + precision + ".engine")
    if not engine.is_file():
        build_engine(EngineRequest(onnx, precision, workspace_mib), engine, log=lambda *_: None)
    return engine


def measure_candidate(
    onnx: Path,
    backend: str,
    precision: str,
    rule: StopRule,
    threads: int = 0,
    workspace_mib: int = WORKSPACE_MIB,
) -> Dict[str, Any]:
    """p50 latency with the median's 95% CI and the rest of the bench's latency summary, for one candidate."""
    if backend == "onnxruntime":
        opened = open_backend(onnx, backend="onnxruntime", device="cpu", intra_op_threads=threads)
    elif backend == "tensorrt":
        opened = open_backend(_tensorrt_engine(onnx, precision, workspace_mib), backend="tensorrt")
    else:
        raise EdgekitError(f"scale-measure runs onnxruntime or tensorrt, not {backend!r}")
    with opened:
        return time_backend(opened, rule)


def time_backend(backend: Backend, rule: StopRule) -> Dict[str, Any]:
    """Time an open backend on a zero batch of its input shape (latency does not depend on pixel values)."""
    shape = [d if d > 0 else 1 for d in backend.input_shape]
    batch = np.zeros(shape, dtype=backend.input_dtype)
    timing = time_until_stable(lambda: backend.infer(batch), rule)
    low, high = median_ci(np.asarray(timing.samples_s))
    return {
        "latency_ms": latency_stats(timing.samples_s),
        "p50_ci95_ms": [round(low * 1e3, 3), round(high * 1e3, 3)],
        "stable": timing.stable,
        "stop_reason": timing.stop_reason,
        "backend": backend.describe(),
    }


def read_kit(kit: Path) -> Dict[str, Any]:
    path = kit / KIT_FILE
    if not path.is_file():
        raise EdgekitError(f"{kit} is not a scale kit: it has no {KIT_FILE} (write one with `edgekit scale`)")
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise EdgekitError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("schema") != KIT_SCHEMA:
        raise EdgekitError(f"{path} is not a {KIT_SCHEMA} file")
    if document.get("backend") not in MEASURE_BACKENDS:
        raise EdgekitError("{}: backend must be one of {}".format(path, ", ".join(MEASURE_BACKENDS)))
    return document


def measure_kit(
    kit: Path,
    output: Path,
    threads: Optional[int] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> Dict[str, Any]:
    """Measure every candidate of ``kit`` not yet in ``output``, rewriting ``output`` after each one.

    An interrupted run therefore loses at most the candidate in progress, and running the same command again
    continues it. ``threads`` overrides the kit's onnxruntime thread count.
    """
    document = read_kit(kit)
    rule = StopRule(**document["stop_rule"])
    chosen_threads = int(document.get("threads", 0)) if threads is None else threads
    if output.is_file():
        results = json.loads(output.read_text())
        if results.get("schema") != LATENCIES_SCHEMA or results.get("kit_id") != document["kit_id"]:
            raise EdgekitError(f"{output} holds latencies of another kit; give a new -o file for {kit}")
    else:
        results = {
            "schema": LATENCIES_SCHEMA,
            "kit_id": document["kit_id"],
            "target": document["target"],
            "precision": document["precision"],
            "input_size": document["input_size"],
            "threads": chosen_threads,
            "stop_rule": document["stop_rule"],
            "device": device_fingerprint(),
            "measured": {},
        }
    candidates = document["candidates"]
    for index, candidate in enumerate(candidates):
        key = candidate["key"]
        if progress:
            progress(index, len(candidates), key)
        if key in results["measured"]:
            continue
        onnx = kit / candidate["onnx"]
        results["measured"][key] = measure_candidate(
            onnx,
            document["backend"],
            document["precision"],
            rule,
            chosen_threads,
            int(document.get("workspace_mib") or WORKSPACE_MIB),
        )
        write_json_atomic(output, results)
    write_json_atomic(output, results)
    return results
