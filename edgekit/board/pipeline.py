"""The on-device pipeline: capture, preprocessing, inference, post-processing and output overlap in threads.

Each stage is a thread joined to the next by a hand-off, so the slowest stage (inference, on a board) sets the
pace and the others run beside it: numpy, OpenCV, onnxruntime, TensorRT and GStreamer all release the GIL in their
heavy calls, which is why threads and not processes. Files and folders never drop a frame (each hand-off is a
bounded queue of ``queue_size`` frames and a full one blocks the stage before it). Live sources show the newest
frame: the source keeps only its newest frame, and every hand-off holds only the newest item, a newer one
replacing the one waiting (both counted), so no frame queues up behind inference and the end-to-end latency stays
near the inference latency (stats: ``end_to_end_vs_inference``). Ctrl-C / SIGTERM stop the capture, let the
frames in flight finish, finalize every sink and write the stats; a second signal aborts at once (still
finalizing). A source that fails (a truncated file) or delivers nothing for ``stall_timeout`` seconds (a live
stall) ends the run with an error, after the frames already in flight have reached the sinks. On Linux every
stage but inference runs ``stage_niceness`` steps nicer, so that when the CPU is short (a CPU backend uses every
core) inference gets it first and the drawing and encoding fill the gaps instead of stalling it.

``run_pipeline`` is the library entry point (the benchmarks call it for full-pipeline FPS); ``edgekit run`` and
``edgekit demo`` are thin layers over it.
"""

import logging
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from edgekit.board import events
from edgekit.board.backends.base import Backend, to_classmap
from edgekit.board.bundle import Bundle
from edgekit.board.classes import ClassSet
from edgekit.board.preprocess import Preprocessing
from edgekit.board.sinks.base import NullSink, OutputFrame, Sink
from edgekit.board.sources.base import Frame, Source, StallError
from edgekit.board.stats import LatencyRecorder, RateMeter, RunStats, latency_summary
from edgekit.board.visualize import draw_legend, overlay
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

STAGES = ("capture", "preprocess", "inference", "postprocess", "output")
_END = object()  # end-of-stream marker passed down the queues
_POLL = 0.1  # seconds between checks of the abort flag while blocked on a queue
_STALL_SLICE = 0.5  # seconds a source read waits before looking at the stop flag again
_ABORT_GRACE = 2.0  # seconds stages get to notice an abort before the outputs are finalized without them
# Niceness +10 gives a thread about a tenth of the CPU weight of a nice-0 one (CFS weights 110 vs 1024): more than
# drawing and encoding need, and on 2 cores it raised the overlay-video pipeline from 0.92x to 1.01-1.03x its
# inference-only FPS (medians of 25 rounds, benchmarks/README.md)
STAGE_NICENESS = 10


class PipelineError(EdgekitError):
    """The run failed after starting; outputs were finalized and ``stats`` (also written to disk) says how far."""

    def __init__(self, message: str, stats: RunStats) -> None:
        super().__init__(message)
        self.stats = stats


@dataclass
class _Item:
    frame: Frame
    tensor: Optional[np.ndarray] = None
    output: Optional[np.ndarray] = None
    result: Optional[OutputFrame] = None


class _Handoff:
    """The queue from one stage to the next. In order (files, folders): bounded, a full one makes the producer wait,
    nothing is dropped. Newest only (live sources): one slot, a new item replaces the one still waiting there and
    ``dropped`` counts it, so the consumer always takes the newest frame. Each hand-off has one producer thread, so
    a replacement races only with the consumer taking the item, and the end marker is never replaced."""

    def __init__(self, size: int, newest_only: bool) -> None:
        self.newest_only = newest_only
        self.queue: queue.Queue = queue.Queue(maxsize=1 if newest_only else max(size, 1))
        self.dropped = 0

    def put(self, item: Any, abort: threading.Event) -> bool:
        """Hand ``item`` on (blocking while in order and full); False when the run is aborted meanwhile."""
        if self.newest_only and item is not _END:
            self._replace(item)
            return True
        while not abort.is_set():
            try:
                self.queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _replace(self, item: Any) -> None:
        while True:
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:  # the consumer took it meanwhile
                    pass

    def get(self, abort: threading.Event) -> Any:
        """The next item, or _END when the run is aborted meanwhile."""
        while not abort.is_set():
            try:
                return self.queue.get(timeout=_POLL)
            except queue.Empty:
                continue
        return _END


@dataclass
class _Control:
    """Shared run state: graceful stop (finish frames in flight) versus abort (drop them), and the first error."""

    stop: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    stopped_by: str = "end of stream"
    error: Optional[BaseException] = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, error: BaseException, drain: bool = False) -> None:
        """Record the run's first error; ``drain``: stop taking frames but let those in flight reach the sinks
        (the source failed, the stages did not), else abort."""
        with self.lock:
            if self.error is None:
                self.error = error
                self.stopped_by = "stalled" if isinstance(error, StallError) else "error"
        (self.stop if drain else self.abort).set()

    def request_stop(self, why: str) -> None:
        with self.lock:
            if self.stop.is_set():
                if self.error is None:
                    self.stopped_by = f"{why}, aborted"
                self.abort.set()
                return
            self.stopped_by = why
        self.stop.set()


def input_preparer(backend: Backend, preprocessing: Preprocessing) -> Callable[[np.ndarray], np.ndarray]:
    """Frame -> model input: uint8 CHW straight in when the model normalises in-graph, else the float path.

    A model with a fixed input size different from the preprocessing's wins (it cannot take anything else).
    """
    shape = backend.input_shape
    if len(shape) == 4 and shape[2] > 0 and shape[3] > 0 and (shape[3], shape[2]) != preprocessing.input_size:
        log.warning(
            "model input is %dx%d but the preprocessing says %dx%d; resizing to the model's", shape[3], shape[2],
            *preprocessing.input_size,
        )  # fmt: skip
        preprocessing = preprocessing.with_size(shape[3], shape[2])
    if backend.input_dtype == np.uint8:
        return preprocessing.to_uint8_chw
    dtype = backend.input_dtype

    def prepare(image: np.ndarray) -> np.ndarray:
        return preprocessing(image).astype(dtype, copy=False)

    return prepare


def render(
    frame: Frame, output: np.ndarray, backend: Backend, classes: ClassSet, alpha: float, legend: bool
) -> Tuple[np.ndarray, np.ndarray]:
    """(overlay image with legend, class map) for one frame's model output."""
    classmap = to_classmap(output, backend.output_kind)[0]
    image = overlay(frame.image, classmap, classes, alpha)
    if legend:
        present = np.flatnonzero(np.bincount(classmap.ravel(), minlength=len(classes)))
        draw_legend(image, classes, present)
    return image, classmap


def time_inference(backend: Backend, tensor: np.ndarray, iterations: int) -> List[float]:
    """Seconds of each of ``iterations`` back-to-back backend.infer calls on one real input."""
    durations = []
    for _ in range(iterations):
        began = time.perf_counter()
        backend.infer(tensor)
        durations.append(time.perf_counter() - began)
    return durations


@dataclass
class _InferenceOnly:
    """Inference alone on the first frame, timed before and after the stream: the rate the pipeline is measured
    against. Timing both sides of the stream cancels slow drifts (thermal throttling, other load) from the ratio."""

    tensor: np.ndarray
    iterations: int
    warmup: int
    before: List[float] = field(default_factory=list)
    after: List[float] = field(default_factory=list)

    def summary(self, in_pipeline: List[float]) -> Dict[str, Any]:
        both = self.before + self.after
        return {
            "iterations_before": len(self.before),
            "iterations_after": len(self.after),
            "warmup": self.warmup,
            "fps": round(len(both) / sum(both), 3),
            "fps_before": round(len(self.before) / sum(self.before), 3),
            "fps_after": round(len(self.after) / sum(self.after), 3) if self.after else None,
            "latency": latency_summary(both),
            "in_pipeline_fps": round(len(in_pipeline) / sum(in_pipeline), 3) if in_pipeline else None,
        }


@contextmanager
def _signals_request_stop(control: _Control, enabled: bool) -> Iterator[None]:
    """SIGINT/SIGTERM -> graceful stop, a second one -> abort; only from the main thread, restored after."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Optional[FrameType]) -> None:
        control.request_stop(f"interrupted ({signal.Signals(signum).name})")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Run:
    """One run's shared state and its stages: capture (reads the source), the four stage workers, and the stats.

    Each stage is a method so it reads (and can be tested) on its own; the threads only call them.
    """

    def __init__(
        self,
        backend: Backend,
        source: Source,
        sinks: Sequence[Sink],
        preprocessing: Preprocessing,
        classes: ClassSet,
        queue_size: int,
        stall_timeout: float,
        max_frames: Optional[int],
        alpha: float,
        legend: bool,
    ) -> None:
        self.backend, self.source, self.sinks, self.classes = backend, source, sinks, classes
        self.stall_timeout, self.max_frames, self.alpha, self.legend = stall_timeout, max_frames, alpha, legend
        self.control = _Control()
        self.latencies = LatencyRecorder()
        self.rate = RateMeter()
        self.prepare = input_preparer(backend, preprocessing)
        self.stats = RunStats(
            source=source.describe(), backend={**backend.details(), "chosen_because": backend.chosen_because}
        )
        self.stats.sinks = [sink.describe() for sink in sinks]
        self.queues = [_Handoff(queue_size, newest_only=source.live) for _ in STAGES[1:]]
        self.times: Dict[str, float] = {}
        self.draw = not all(isinstance(sink, NullSink) for sink in sinks)  # nobody sees an overlay drawn for no sink
        self.progress: Optional[events.Task] = None

    def read(self) -> Optional[Frame]:
        """The next frame; waits in short slices so a stop request is seen while a live source is silent."""
        began = time.perf_counter()
        while True:
            remaining = self.stall_timeout - (time.perf_counter() - began)
            try:
                frame = self.source.read(timeout=max(min(_STALL_SLICE, remaining), 0.01))
                break
            except StallError:
                if self.control.stop.is_set() or self.control.abort.is_set():
                    return None
                if time.perf_counter() - began >= self.stall_timeout:
                    raise StallError(
                        f"{self.source.uri} delivered no frame for {self.stall_timeout:.1f} s: the stream stalled"
                    ) from None
        if frame is not None:
            self.latencies.add("capture", time.perf_counter() - began)
        return frame

    def capture(self, first: Optional[Frame]) -> None:
        control, stats = self.control, self.stats
        frame = first
        try:
            while frame is not None and not control.stop.is_set() and not control.abort.is_set():
                self.times.setdefault("first_in", time.perf_counter())
                stats.frames_in += 1
                if not self.queues[0].put(_Item(frame), control.abort):
                    return
                if self.max_frames is not None and stats.frames_in >= self.max_frames:
                    control.stopped_by = f"max_frames ({self.max_frames}) reached"
                    break
                frame = self.read()
        except Exception as exc:  # the source failed (truncated file, stall): the frames in flight still count
            control.fail(exc, drain=True)
        self.times["dropped"] = self.source.dropped  # the grabber keeps replacing frames until the source is closed
        self.queues[0].put(_END, control.abort)

    def preprocess(self, item: _Item) -> None:
        item.tensor = self.prepare(item.frame.image)

    def infer(self, item: _Item) -> None:
        assert item.tensor is not None
        item.output = self.backend.infer(item.tensor)

    def postprocess(self, item: _Item) -> None:
        assert item.output is not None
        if self.draw:
            image, classmap = render(item.frame, item.output, self.backend, self.classes, self.alpha, self.legend)
        else:
            image, classmap = item.frame.image, to_classmap(item.output, self.backend.output_kind)[0]
        item.result = OutputFrame(image, item.frame, classmap, self.rate.fps(), self.rate.latency_ms())

    def output(self, item: _Item) -> None:
        assert item.result is not None
        for sink in self.sinks:
            sink.write(item.result)
        now = time.perf_counter()
        end_to_end = time.monotonic() - item.frame.timestamp
        self.latencies.add("end_to_end", end_to_end)
        self.rate.tick(now, end_to_end)
        self.times.setdefault("first_out", now)
        self.times["last_out"] = now
        self.stats.frames_out += 1
        if self.progress is not None:
            self.progress.update(status=f"{self.rate.fps():.1f} FPS")
            self.progress.advance()
        if any(sink.stop_requested for sink in self.sinks):
            self.control.request_stop("stopped from a sink (window closed)")

    def stage(self, name: str, work: Callable[[_Item], None], inbox: _Handoff, outbox: Optional[_Handoff]) -> None:
        """Take items from ``inbox``, do ``work`` on each (timed as ``name``), hand them to ``outbox``."""
        abort = self.control.abort
        while True:
            item = inbox.get(abort)
            if item is _END:
                break
            began = time.perf_counter()
            work(item)
            self.latencies.add(name, time.perf_counter() - began)
            if outbox is not None and not outbox.put(item, abort):
                return
        if outbox is not None:
            outbox.put(_END, abort)

    def start(self, first: Optional[Frame], niceness: int) -> List[threading.Thread]:
        """One thread per stage, started: capture from ``first`` on, then each stage between its hand-offs; every
        stage but inference ``niceness`` steps nicer."""
        stages = [("preprocess", self.preprocess), ("inference", self.infer), ("postprocess", self.postprocess),
                  ("output", self.output)]  # fmt: skip
        workers = [self._guarded(niceness, self.capture, first)]
        for i, (name, work) in enumerate(stages):
            outbox = self.queues[i + 1] if i + 1 < len(self.queues) else None
            workers.append(
                self._guarded(0 if name == "inference" else niceness, self.stage, name, work, self.queues[i], outbox)
            )
        threads = [
            threading.Thread(target=work, name=f"edgekit {name}", daemon=True) for work, name in zip(workers, STAGES)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _guarded(self, niceness: int, target: Callable[..., None], *args: Any) -> Callable[[], None]:
        """``target(*args)`` at ``niceness``, any error recorded as the run's (which aborts it)."""

        def run() -> None:
            try:
                if niceness:
                    _renice_this_thread(niceness)
                target(*args)
            except BaseException as exc:
                self.control.fail(exc)

        return run

    def finish(self, started: float, timing: Optional[_InferenceOnly], stats_path: Optional[Union[str, Path]]) -> None:
        """Abort what still runs, close the source and every sink, complete the stats and write them."""
        stats = self.stats
        self.control.abort.set()
        _close_all(self.source, self.sinks, self.control)
        _finish(stats, self.control, self.source, self.latencies, self.times, started)
        stats.frames_dropped_between_stages = sum(handoff.dropped for handoff in self.queues)
        if timing is not None:
            stats.inference_only = timing.summary(self.latencies.samples("inference"))
            if stats.fps:
                stats.fps_vs_inference_only = round(stats.fps / stats.inference_only["fps"], 4)
        if stats_path is not None:
            _write_stats(stats, stats_path, self.control)


def run_pipeline(
    backend: Backend,
    source: Source,
    sinks: Sequence[Sink],
    preprocessing: Preprocessing,
    classes: ClassSet,
    *,
    queue_size: int = 2,
    stall_timeout: float = 10.0,
    warmup: int = 2,
    inference_only_iterations: int = 0,
    max_frames: Optional[int] = None,
    alpha: float = 0.5,
    legend: bool = True,
    stats_path: Optional[Union[str, Path]] = None,
    handle_signals: bool = True,
    stage_niceness: int = STAGE_NICENESS,
) -> RunStats:
    """Stream ``source`` through ``backend`` into every sink; returns (and writes) the run's statistics.

    Takes ownership of ``source`` and ``sinks``: both are closed on every exit path, so a video sink is always
    finalized. ``queue_size``: frames each hand-off holds for files and folders (live sources hold only the
    newest). ``inference_only_iterations`` > 0 times backend.infer alone on the first frame before and after
    streaming (same process, same input) and reports the pipeline's FPS relative to it. ``stage_niceness`` (Linux)
    lowers the CPU priority of every stage but inference; 0 keeps them equal. Progress is an
    :func:`edgekit.board.events.task` (frames out of the source's count, FPS as its status). Raises PipelineError
    (with the stats attached and written) when a stage or the source fails or the source stalls.
    """
    run = _Run(backend, source, sinks, preprocessing, classes, queue_size, stall_timeout, max_frames, alpha, legend)
    log.info("running %s -> %s on %s", run.stats.source, ", ".join(run.stats.sinks), backend.describe())
    started = time.perf_counter()
    timing: Optional[_InferenceOnly] = None
    try:
        run.stats.stage_niceness = _applicable_niceness(stage_niceness)  # in here: a bad value still closes the sinks
        total = source.frame_count if max_frames is None else min(source.frame_count or max_frames, max_frames)
        work = events.task("live frames" if source.live else "frames", total=total)
        signals = _signals_request_stop(run.control, handle_signals)
        with work as run.progress, signals, _opencv_single_threaded():
            first, timing = _first_frame(run.read, run.prepare, backend, warmup, inference_only_iterations, run.control)
            _wait(run.start(first, run.stats.stage_niceness), run.control)
            if timing is not None and run.control.error is None and not run.control.stop.is_set():
                timing.after = time_inference(backend, timing.tensor, timing.iterations)
    finally:
        run.finish(started, timing, stats_path)
    error = run.control.error
    if error is not None:
        if isinstance(error, EdgekitError):
            raise PipelineError(str(error), run.stats) from error
        raise error
    return run.stats


def _applicable_niceness(requested: int) -> int:
    """The niceness the stages will get, said in the log: per-thread niceness exists on Linux only."""
    if requested < 0:
        raise EdgekitError(f"stage niceness {requested}: only a lower priority (0 to 19) needs no privileges")
    if requested == 0:
        return 0
    if sys.platform != "linux":
        log.info("stages run at equal CPU priority: lowering one thread's priority needs Linux (%s)", sys.platform)
        return 0
    refused = _renice_refused(requested)
    if refused:
        log.warning("stages run at equal CPU priority: this system refuses a lower thread priority (%s)", refused)
        return 0
    log.info("stages other than inference run %d steps nicer, so inference gets the CPU first", requested)
    return requested


def _renice_refused(niceness: int) -> Optional[str]:
    """Why a thread may not lower its own priority here (a sandbox forbidding setpriority), tried on a throwaway one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgekit niceness probe") as probe:
        error = probe.submit(_renice_this_thread, niceness).exception()
    return None if error is None else str(error)


def _renice_this_thread(niceness: int) -> None:
    """Make the calling thread ``niceness`` steps nicer (capped at 19).

    On Linux a nice value is per thread, and ``who`` 0 names the calling thread (threading.get_native_id is 3.8+).
    """
    current = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, min(19, current + niceness))


@contextmanager
def _opencv_single_threaded() -> Iterator[None]:
    """OpenCV without its own worker threads while the stages run, restored after.

    The stages already run in parallel; OpenCV splitting each small resize and blend across every core as well
    only adds contention with inference: it halves the CPU time of drawing the overlay (2.2 -> 1.1 ms at 640x360).
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _wait(threads: List[threading.Thread], control: _Control) -> None:
    """Join the stages; once aborted, give them a short grace and move on to finalizing the outputs even if one
    is stuck in a driver call (the threads are daemons and end with the process)."""
    deadline: Optional[float] = None
    while any(thread.is_alive() for thread in threads):
        if control.abort.is_set():
            deadline = deadline or time.monotonic() + _ABORT_GRACE
            if time.monotonic() > deadline:
                stuck = ", ".join(t.name for t in threads if t.is_alive())
                log.warning("%s still blocked after the abort; finalizing the outputs without waiting", stuck)
                return
        time.sleep(_POLL)


def _first_frame(
    read: Callable[[], Optional[Frame]],
    prepare: Callable[[np.ndarray], np.ndarray],
    backend: Backend,
    warmup: int,
    iterations: int,
    control: _Control,
) -> Tuple[Optional[Frame], Optional[_InferenceOnly]]:
    """Read the first frame, warm the backend up on it and time inference alone, before the stages start.

    The frame then enters the pipeline re-stamped, so the deliberate hold does not count as latency; live
    frames that arrive meanwhile are replaced by newer ones and counted as dropped, as they were.
    """
    try:
        frame = read()
        if frame is None:
            return None, None
        tensor = prepare(frame.image)
        time_inference(backend, tensor, warmup)
        timing = None
        if iterations > 0:
            timing = _InferenceOnly(tensor, iterations, warmup, before=time_inference(backend, tensor, iterations))
        frame.timestamp = time.monotonic()
        return frame, timing
    except BaseException as exc:
        control.fail(exc)
        return None, None


def _close_all(source: Source, sinks: Sequence[Sink], control: _Control) -> None:
    """Close everything even when one close fails (a full disk while finalizing the video), keeping the error."""
    closables: List[Union[Source, Sink]] = [source, *sinks]
    for closable in closables:
        try:
            closable.close()
        except Exception as exc:
            control.fail(exc)


def _finish(
    stats: RunStats,
    control: _Control,
    source: Source,
    latencies: LatencyRecorder,
    times: Dict[str, float],
    started: float,
) -> None:
    stats.stopped_by = control.stopped_by
    stats.error = None if control.error is None else f"{control.error.__class__.__name__}: {control.error}"
    stats.frames_dropped = int(times.get("dropped", source.dropped))
    stats.frames_skipped = len(source.skipped)
    stats.skipped = list(source.skipped)
    stats.duration_s = round(times.get("last_out", time.perf_counter()) - times.get("first_in", started), 4)
    if stats.frames_out >= 2:
        stats.fps = round((stats.frames_out - 1) / (times["last_out"] - times["first_out"]), 3)
    stats.latency = latencies.summary()
    end_to_end, inference = (stats.latency.get(name, {}).get("p50_ms") for name in ("end_to_end", "inference"))
    if end_to_end is not None and inference:
        stats.end_to_end_vs_inference = round(end_to_end / inference, 3)


def _write_stats(stats: RunStats, path: Union[str, Path], control: _Control) -> None:
    """Write the stats; a failed write (a full disk) fails the run, and is the stats' error when it is the first."""
    try:
        stats.write_json(path)
    except EdgekitError as exc:
        if control.error is None:
            stats.stopped_by, stats.error = "error", f"{exc.__class__.__name__}: {exc}"
        else:
            log.error("%s", exc)  # the run failed already: say that the stats are lost too
        control.fail(exc)
        return
    log.info("stats written to %s", path)


def model_inputs(model: Union[Bundle, Path]) -> Tuple[Preprocessing, ClassSet]:
    """The preprocessing and classes a model was trained with: from a bundle's manifest, an exported ONNX's
    metadata (read through onnxruntime, so no onnx package is needed on a board) or a checkpoint."""
    if isinstance(model, Bundle):
        return model.preprocessing, model.classes
    if model.suffix == ".onnx":
        import json

        import onnxruntime as ort

        from edgekit.board.bundle import META_CLASSES, META_PREPROCESSING

        # Only the metadata is wanted here (the backend loads the model for inference): skip graph optimisation.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's InvalidProtobuf/Fail/... for text or truncated files
            raise EdgekitError(f"{model} is not a loadable ONNX model (truncated, or not ONNX): {exc}") from None
        meta = session.get_modelmeta().custom_metadata_map
        if META_PREPROCESSING not in meta or META_CLASSES not in meta:
            raise EdgekitError(
                f"{model} carries no edgekit preprocessing/classes metadata (not made by `edgekit export`); "
                "run it from a bundle (--bundle) or re-export it with `edgekit export`"
            )
        return (
            Preprocessing.from_dict(json.loads(meta[META_PREPROCESSING])),
            ClassSet.from_dict(json.loads(meta[META_CLASSES])),
        )
    from edgekit.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(model)
    return checkpoint.preprocessing, checkpoint.classes
