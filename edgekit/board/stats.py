"""Latency percentiles and per-run statistics, shared by the runner and the benchmarks.

Percentiles use numpy's default (linear interpolation), so a p99 from 100 samples is an honest interpolation
between the two slowest frames rather than simply the slowest one.
"""

import json
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, Iterable, List, Optional, Union

import numpy as np

from edgekit.board.files import write_text_atomically

PERCENTILES = (50, 90, 99)


def latency_summary(seconds: Iterable[float]) -> Dict[str, Optional[Union[float, int]]]:
    """{count, mean_ms, p50_ms, p90_ms, p99_ms, max_ms} of durations given in seconds (None when empty)."""
    samples = np.asarray(list(seconds), dtype=np.float64) * 1000.0
    summary: Dict[str, Optional[Union[float, int]]] = {"count": int(samples.size)}
    if samples.size == 0:
        summary.update({"mean_ms": None, **{f"p{q}_ms": None for q in PERCENTILES}, "max_ms": None})
        return summary
    summary["mean_ms"] = round(float(samples.mean()), 3)
    for q, value in zip(PERCENTILES, np.percentile(samples, PERCENTILES)):
        summary[f"p{q}_ms"] = round(float(value), 3)
    summary["max_ms"] = round(float(samples.max()), 3)
    return summary


class LatencyRecorder:
    """Thread-safe collection of durations per named stage."""

    def __init__(self) -> None:
        self._samples: Dict[str, List[float]] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._samples.setdefault(stage, []).append(seconds)

    def samples(self, stage: str) -> List[float]:
        with self._lock:
            return list(self._samples.get(stage, []))

    def summary(self) -> Dict[str, Dict[str, Optional[Union[float, int]]]]:
        with self._lock:
            return {stage: latency_summary(values) for stage, values in self._samples.items()}


class RateMeter:
    """Frames per second and latency over the last ``window`` events, for live displays (HUD, browser page)."""

    def __init__(self, window: int = 30) -> None:
        self._times: Deque[float] = deque(maxlen=window)
        self._latencies: Deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def tick(self, now: float, latency: float) -> None:
        with self._lock:
            self._times.append(now)
            self._latencies.append(latency)

    def fps(self) -> float:
        with self._lock:
            if len(self._times) < 2 or self._times[-1] <= self._times[0]:
                return 0.0
            return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def latency_ms(self) -> float:
        with self._lock:
            return 1000.0 * float(np.mean(self._latencies)) if self._latencies else 0.0


@dataclass
class RunStats:
    """What one run of the pipeline did; ``to_json`` is the file ``--stats`` writes."""

    source: str
    backend: Dict[str, Any]  # backend.details() and why it was chosen
    sinks: List[str] = field(default_factory=list)
    frames_in: int = 0  # frames taken from the source into the pipeline
    frames_out: int = 0  # frames that reached every sink
    frames_dropped: int = 0  # stale live frames replaced by newer ones before the pipeline took them
    frames_dropped_between_stages: int = 0  # live frames replaced by newer ones while waiting for the next stage
    frames_skipped: int = 0  # unreadable frames (a corrupt image in a folder) skipped and counted
    skipped: List[str] = field(default_factory=list)  # what was skipped and why
    duration_s: float = 0.0  # wall time from the first frame taken to the last frame written
    # steady-state end-to-end throughput: (frames_out - 1) / (last output - first output); None below 2 frames,
    # where there is no interval to divide by (not 0.0, which reads as a measured stall)
    fps: Optional[float] = None
    # end_to_end (capture to written) and per stage; "capture" is the wait for the next frame (for a live source,
    # the time until a newer one arrives), the others are the stage's own work
    latency: Dict[str, Dict[str, Optional[Union[float, int]]]] = field(default_factory=dict)
    inference_only: Optional[Dict[str, Any]] = None  # backend.infer alone, same input, same run
    fps_vs_inference_only: Optional[float] = None  # fps / inference_only fps: how well the pipeline hides the rest
    # p50 end-to-end / p50 inference latency: what a frame spends besides inference; for a live source, where no
    # frame waits behind inference, about 1 to 2
    end_to_end_vs_inference: Optional[float] = None
    stage_niceness: int = 0  # how much nicer than inference the other stages ran (Linux; 0 = equal priority)
    stopped_by: str = "end of stream"
    error: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def write_json(self, path: Union[str, Path]) -> Path:
        """Write atomically, so an interrupted run never leaves half a stats file; EdgekitError when it fails."""
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n", "run statistics")
