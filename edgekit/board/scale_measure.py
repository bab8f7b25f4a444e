"""The board's half of ``edgekit scale``: time every candidate ONNX of a kit, as ``edgekit bench`` times a model.

``edgekit scale`` grows LPS-Net by measured latency. When the target is not the machine that trains, each step
writes a kit (``kit.json`` plus one ONNX file per candidate); this module measures the kit on the board with the
board's own backends and writes ``latencies.json``, which ``edgekit scale --resume --latencies`` reads. The same
``measure_group`` times candidates on the host when the host is the target, so both ways measure alike.
No torch, no onnx: only the board layer.
"""

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from edgekit.board import events
from edgekit.board.backends import Backend, open_backend
from edgekit.board.measure.fingerprint import device_fingerprint
from edgekit.board.measure.timing import StopRule, latency_stats, median_ci, relative_ci, time_until_stable
from edgekit.errors import EdgekitError

KIT_SCHEMA = "edgekit-scale-kit/1"
LATENCIES_SCHEMA = "edgekit-scale-latencies/1"
KIT_FILE = "kit.json"
MEASURE_BACKENDS = ("onnxruntime", "tensorrt")
WORKSPACE_MIB = 1024  # TensorRT builder workspace for a candidate; the kit's target may say otherwise
SLICE_RUNS = 5  # timed runs per turn when candidates take turns
GROUP_SIZE = 12  # candidates timed in turns together, then written (an interruption loses one group at most)


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
    from edgekit.board.backends.tensorrt_backend.builder import EngineRequest, build_engine

    engine = onnx.with_name(onnx.stem + "-" + precision + ".engine")
    if not engine.is_file():
        build_engine(EngineRequest(onnx, precision, workspace_mib), engine)
    return engine


def open_candidate(
    onnx: Path, backend: str, precision: str, threads: int = 0, workspace_mib: int = WORKSPACE_MIB
) -> Backend:
    """The candidate on the board's backend: onnxruntime's CPU provider, or a TensorRT engine built here."""
    if backend == "onnxruntime":
        return open_backend(onnx, backend="onnxruntime", device="cpu", intra_op_threads=threads)
    if backend == "tensorrt":
        return open_backend(_tensorrt_engine(onnx, precision, workspace_mib), backend="tensorrt")
    raise EdgekitError(f"scale-measure runs onnxruntime or tensorrt, not {backend!r}")


def time_interleaved(backends: Dict[str, Backend], rule: StopRule) -> Dict[str, Dict[str, Any]]:
    """Time several open backends in turns of ``SLICE_RUNS`` runs until each median is stable (``rule``).

    Each turn is ``time_until_stable`` with a fixed run count, so every run is timed as ``edgekit bench`` times
    it; taking turns spreads a load that other processes put on a shared CPU over all candidates alike instead
    of over whichever one is being timed (on this shared 2-core machine a network timed alone measured 5 to 22 ms
    a few minutes apart). The budget is ``rule.budget_s`` per network.
    """
    inputs = {
        key: np.zeros([d if d > 0 else 1 for d in b.input_shape], dtype=b.input_dtype) for key, b in backends.items()
    }
    for key, backend in backends.items():
        for _ in range(rule.warmup):
            backend.infer(inputs[key])
    samples: Dict[str, List[float]] = {key: [] for key in backends}
    reasons: Dict[str, str] = {}
    turn = StopRule(warmup=0, min_runs=SLICE_RUNS, max_runs=SLICE_RUNS, budget_s=rule.budget_s, target_rel_ci=0.0)
    deadline = time.perf_counter() + rule.budget_s * len(backends)
    while len(reasons) < len(backends):
        for key, backend in backends.items():
            if key in reasons:
                continue
            batch = inputs[key]
            samples[key] += time_until_stable(lambda: backend.infer(batch), turn).samples_s  # noqa: B023
            if len(samples[key]) >= rule.min_runs and relative_ci(np.asarray(samples[key])) <= rule.target_rel_ci:
                reasons[key] = f"median 95% CI within ±{rule.target_rel_ci:.0%}"
            elif len(samples[key]) >= rule.max_runs:
                reasons[key] = f"stopped at max_runs={rule.max_runs}"
        if time.perf_counter() >= deadline:
            for key in backends:
                reasons.setdefault(key, f"time budget {rule.budget_s:g}s per network spent")
    results = {}
    for key, backend in backends.items():
        low, high = median_ci(np.asarray(samples[key]))
        results[key] = {
            "latency_ms": latency_stats(samples[key]),
            "p50_ci95_ms": [round(low * 1e3, 3), round(high * 1e3, 3)],
            "stable": reasons[key].startswith("median"),
            "stop_reason": reasons[key] + f", interleaved with {len(backends) - 1} other networks",
            "backend": backend.details(),
        }
    return results


def measure_group(
    onnx_files: Dict[str, Path],
    backend: str,
    precision: str,
    rule: StopRule,
    threads: int = 0,
    workspace_mib: int = WORKSPACE_MIB,
) -> Dict[str, Dict[str, Any]]:
    """Open every candidate of a group, time them interleaved, close them."""
    opened: Dict[str, Backend] = {}
    try:
        for key, onnx in onnx_files.items():
            opened[key] = open_candidate(onnx, backend, precision, threads, workspace_mib)
        return time_interleaved(opened, rule)
    finally:
        for candidate in opened.values():
            candidate.close()


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
) -> Dict[str, Any]:
    """Measure every candidate of ``kit`` not yet in ``output`` in groups, rewriting ``output`` after each group.

    An interrupted run therefore loses at most the group in progress, and running the same command again
    continues it. ``threads`` overrides the kit's onnxruntime thread count. Progress: an events task over all the
    kit's candidates (those an earlier run measured count as done), the group being measured as its status.
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
    todo = [c for c in document["candidates"] if c["key"] not in results["measured"]]
    total = len(document["candidates"])
    with events.task("measuring candidates", total=total) as work:
        work.advance(total - len(todo))
        for first in range(0, len(todo), GROUP_SIZE):
            group = todo[first : first + GROUP_SIZE]
            work.update(status=", ".join(c["key"] for c in group))
            results["measured"].update(
                measure_group(
                    {c["key"]: kit / c["onnx"] for c in group},
                    document["backend"],
                    document["precision"],
                    rule,
                    chosen_threads,
                    int(document.get("workspace_mib") or WORKSPACE_MIB),
                )
            )
            write_json_atomic(output, results)
            work.advance(len(group))
    write_json_atomic(output, results)
    return results
