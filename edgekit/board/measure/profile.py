"""Per-layer profiles summarised as the top layers by time, so a report shows where the milliseconds go.

onnxruntime writes a Chrome-trace JSON when profiling is enabled (one ``<node>_kernel_time`` event per node
execution); TensorRT calls an ``IProfiler`` attached to the execution context with each (fused) layer's time.
"""

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import numpy as np


def summarise_layers(timings_us: Dict[Tuple[str, str], List[float]], runs: int, top: int = 10) -> List[Dict[str, Any]]:
    """(layer, op type) -> per-run microseconds, as the ``top`` layers by mean time with their share of the total."""
    total = sum(sum(values) for values in timings_us.values()) or 1.0
    rows: List[Dict[str, Any]] = [
        {
            "layer": layer,
            "op": op,
            "mean_ms": sum(values) / runs / 1e3,
            "share": sum(values) / total,
        }
        for (layer, op), values in timings_us.items()
    ]
    rows.sort(key=lambda row: float(row["mean_ms"]), reverse=True)
    return rows[:top]


def read_onnxruntime_profile(path: Union[str, Path]) -> Dict[Tuple[str, str], List[float]]:
    """Kernel times (µs) per node from an onnxruntime profile file."""
    events = json.loads(Path(path).read_text())
    timings: Dict[Tuple[str, str], List[float]] = defaultdict(list)
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            op = str(event.get("args", {}).get("op_name", "?"))
            timings[(name[: -len("_kernel_time")], op)].append(float(event["dur"]))
    return timings


def profile_onnxruntime(
    onnx_path: Union[str, Path], batch: np.ndarray, providers: List[str], runs: int = 10, top: int = 10
) -> List[Dict[str, Any]]:
    """Run the model ``runs`` times in a profiling session and return the top layers by time.

    A separate session, because profiling adds per-node overhead that must not leak into the timed runs.
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekit-profile-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        feed = {session.get_inputs()[0].name: batch}
        for _ in range(runs + 1):
            session.run(None, feed)
        timings = read_onnxruntime_profile(session.end_profiling())
    # The first run of each node includes allocation and kernel selection: not representative.
    steady = {key: values[1:] for key, values in timings.items() if len(values) > 1}
    return summarise_layers(steady, runs, top)


def profile_tensorrt(backend: Any, batch: np.ndarray, runs: int = 10, top: int = 10) -> List[Dict[str, Any]]:
    """Per-layer times of a TensorRT backend through ``IProfiler``; the profiler stays attached, so call this last.

    ``backend`` is edgekit's TensorRTBackend (its ``context`` is the IExecutionContext); its ``infer``
    synchronises the stream, after which TensorRT has reported every layer of that execution.
    """
    import tensorrt as trt

    timings: Dict[Tuple[str, str], List[float]] = defaultdict(list)

    class LayerTimes(trt.IProfiler):  # type: ignore[misc,unused-ignore]
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            timings[(layer_name, "TensorRT layer")].append(ms * 1e3)

    context: trt.IExecutionContext = backend.context
    context.profiler = LayerTimes()
    backend.infer(batch)  # the first profiled execution includes the profiler's own set-up
    timings.clear()
    for _ in range(runs):
        backend.infer(batch)
    return summarise_layers(timings, runs, top)
