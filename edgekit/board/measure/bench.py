"""``edgekit bench``: every (model, size, batch, precision) combination on one device, into one JSON file.

Each combination is warmed up and timed until the median latency is stable (see ``timing``), with memory, power,
accuracy, graph MACs, fraction of the target's peak and a per-layer profile beside it. A combination the device or
the installed tools cannot run is kept in the results as ``skipped`` with the reason, so a report shows the gap
instead of silently dropping it.

This half measures; a bundle's workload is made here, a zoo network's by the host side (``edgekit.bench.zoo``
exports it with torch and onnx and hands its ONNX files over as a ``Workload``), so a board imports no host code.
"""

import datetime as dt
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from edgekit.board.backends import BACKENDS, choose_backend
from edgekit.board.backends.base import Backend, to_classmap
from edgekit.board.bundle import Bundle
from edgekit.board.classes import ClassSet
from edgekit.board.files import write_text_atomically
from edgekit.board.measure.fingerprint import NOT_AVAILABLE, device_fingerprint, device_tier
from edgekit.board.measure.monitor import PowerMonitor, peak_rss_mb, reset_peak_rss
from edgekit.board.measure.profile import profile_onnxruntime, profile_tensorrt
from edgekit.board.measure.timing import StopRule, TimingResult, latency_stats, time_until_stable
from edgekit.board.metrics import confusion_matrix, mean_iou
from edgekit.board.preprocess import Preprocessing, read_bgr
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

SCHEMA = "edgekit-bench/1"
PRECISIONS = ("fp32", "fp16", "int8")
MAX_SAMPLES_KEPT = 500  # per combination, for the latency-distribution plots
PIPELINE_VIDEO_SIZE = (1024, 512)  # a camera-like frame: the pipeline resizes it like a real one


@dataclass
class BenchConfig:
    """What to measure. Either ``models`` (zoo names, exported by the host side) or ``bundle`` (a built bundle)."""

    models: List[str] = field(default_factory=list)
    bundle: Optional[Path] = None
    precisions: List[str] = field(default_factory=lambda: ["fp32"])
    sizes: List[Tuple[int, int]] = field(default_factory=lambda: [(1024, 512)])
    batches: List[int] = field(default_factory=lambda: [1])
    backend: str = "auto"
    device: str = "auto"  # onnxruntime: auto/cpu/cuda/tensorrt; torch: auto/cpu/cuda
    threads: int = (
        0  # CPU threads for inference (onnxruntime intra-op, torch.set_num_threads); 0: the runtime's default
    )
    num_classes: int = 20
    images: List[Path] = field(default_factory=list)  # real frames: timed input, accuracy and the pipeline video
    labels: Optional[Path] = None  # folder of label PNGs named like the images (train ids, 255 ignored)
    video: Optional[Path] = None  # full-pipeline FPS source; made from ``images`` when not given
    target: Optional[str] = None  # target profile whose peak_gmacs gives the fraction of peak
    rule: StopRule = field(default_factory=StopRule)
    profile_runs: int = 10
    torch_baseline: bool = True  # with --backend torch, also time the ESPNet authors' naive eager FP32 loop
    baseline_iterations: int = 100  # the authors' count (the first is discarded)
    channels_last: bool = True  # torch backend optimisations (CUDA graphs only on CUDA)
    cuda_graphs: bool = True
    workdir: Optional[Path] = None  # exported ONNX files; a temporary folder when None
    pipeline_frames: int = 60  # frames of the synthetic pipeline video (when no --video); 0 skips the pipeline


@dataclass
class Workload:
    """One network at one size: where its ONNX files come from, how its input is made and how it is counted."""

    model: str
    size: Tuple[int, int]
    preprocessing: Preprocessing
    onnx_for: Callable[[str, int], Path]  # (precision, batch) -> ONNX path; raises Skip when not available
    module: Optional[Callable[[], Any]]  # the nn.Module, for the torch backend (zoo models only)
    classes: ClassSet
    # (backend, batch) -> (params, MACs per image, what they were counted on)
    count: Callable[[str, int], Tuple[int, int, str]]
    bundle: Optional[Bundle] = None  # a bundle's workload: opened through the backends' chooser and opener


class Skip(Exception):
    """A combination this device or install cannot run; the message says why and lands in the results."""


def _bundle_workloads(config: BenchConfig) -> Iterator[Workload]:
    assert config.bundle is not None
    bundle = Bundle.load(config.bundle)
    shape = bundle.manifest.input.shape
    size = (int(shape[3]), int(shape[2]))
    onnx_files = bundle.manifest.artifacts.onnx

    def onnx_for(precision: str, batch: int) -> Path:
        if precision not in onnx_files:
            raise Skip(f"bundle {bundle.root} has no {precision} ONNX (it has {', '.join(onnx_files) or 'none'})")
        if shape[0] not in (-1, batch) and not isinstance(shape[0], str):
            raise Skip(f"bundle {bundle.root} was exported for batch {shape[0]}, not {batch}")
        return bundle.root / onnx_files[precision]

    checkpoint = bundle.artifact(bundle.manifest.artifacts.checkpoint)
    model = bundle.manifest.model

    def count(backend: str, batch: int) -> Tuple[int, int, str]:
        """From the manifest: counted on the PyTorch module at build, so a board needs no onnx package."""
        return model.params, model.macs, "bundle manifest (PyTorch module at build time)"

    def module() -> Any:
        from edgekit.checkpoint import Checkpoint

        assert checkpoint is not None
        return Checkpoint.load(checkpoint).build()

    yield Workload(bundle.model_name, size, bundle.preprocessing, onnx_for, module if checkpoint else None,
                   bundle.classes, count, bundle)  # fmt: skip


def resolve_backend(requested: str, workload: Workload) -> Tuple[str, str]:
    """(backend, why): a bundle's through the runner's own chooser (TensorRT only for an engine built for this
    GPU and release); a zoo network's ONNX runs on onnxruntime unless another backend is requested."""
    if workload.bundle is not None:
        return choose_backend(workload.bundle, requested)
    if requested != "auto":
        return requested, "requested"
    return "onnxruntime", "auto: a zoo network is exported to ONNX here; onnxruntime runs it"


def _frames(config: BenchConfig, preprocessing: Preprocessing) -> List[np.ndarray]:
    """The real images resized to the network (BGR uint8), or one fixed synthetic frame when none were given."""
    if config.images:
        return [preprocessing.resize_bgr(read_bgr(path)) for path in config.images]
    shape = (preprocessing.height, preprocessing.width, 3)
    return [np.random.RandomState(0).randint(0, 256, size=shape).astype(np.uint8)]  # numpy 1.13 API (JetPack 4.6)


def _model_input(backend: Backend, preprocessing: Preprocessing, frame: np.ndarray, batch: int) -> np.ndarray:
    one = preprocessing.to_uint8_chw(frame) if backend.input_dtype == np.uint8 else preprocessing(frame)
    return np.ascontiguousarray(np.repeat(one, batch, axis=0))


def _class_maps(backend: Backend, preprocessing: Preprocessing, frames: List[np.ndarray], batch: int) -> np.ndarray:
    maps = [to_classmap(backend.infer(_model_input(backend, preprocessing, f, batch)), backend.output_kind)[0]
            for f in frames]  # fmt: skip
    return np.stack(maps)


def _accuracy(config: BenchConfig, maps: np.ndarray, reference: Optional[np.ndarray], precision: str) -> Dict[str, Any]:
    """Pixel agreement with the FP32 prediction of the same network, and mIoU where labels were given."""
    result: Dict[str, Any] = {}
    if precision == "fp32":
        result["agreement_with_fp32"] = "reference"
    elif reference is not None:
        result["agreement_with_fp32"] = float((maps == reference).mean())
    else:
        result["agreement_with_fp32"] = f"{NOT_AVAILABLE} (fp32 not in this run)"
    if config.labels is None or not config.images:
        result["miou"] = f"{NOT_AVAILABLE} (no --labels given)"
        return result
    import cv2

    matrix = np.zeros((config.num_classes, config.num_classes), np.int64)
    for path, prediction in zip(config.images, maps):
        label_path = config.labels / f"{path.stem}.png"
        label = cv2.imread(str(label_path), cv2.IMREAD_GRAYSCALE)
        if label is None:
            raise EdgekitError(f"no readable label {label_path} for {path}; --labels needs <image stem>.png files")
        label = cv2.resize(label, prediction.shape[::-1], interpolation=cv2.INTER_NEAREST)
        matrix += confusion_matrix(prediction, label, config.num_classes)
    result["miou"] = mean_iou(matrix)
    return result


def _open(backend: str, workload: Workload, precision: str, batch: int, config: BenchConfig) -> Backend:
    """The runner's own backends (``open_backend``), so the bench measures exactly what the runner runs."""
    from edgekit.board.backends import open_backend

    if backend == "torch":
        from edgekit.board.backends.torch_backend import TorchBackend, resolve_device

        if workload.module is None:
            raise Skip("the torch backend needs a zoo model (--models) or a bundle with its checkpoint")
        if precision == "int8":
            raise Skip("the torch backend runs fp32/fp16; INT8 runs through onnxruntime or TensorRT")
        on_cuda = resolve_device(config.device).type == "cuda"
        if config.threads > 0:
            import torch

            torch.set_num_threads(config.threads)
        if precision == "fp16" and not on_cuda:
            raise Skip("torch FP16 needs a CUDA GPU; this machine has none")
        width, height = workload.size
        return TorchBackend(
            workload.module(),
            (batch, 3, height, width),
            device=config.device,
            precision=precision,  # type: ignore[arg-type]
            channels_last=config.channels_last,
            cuda_graphs=config.cuda_graphs and on_cuda,
        )
    if backend == "tensorrt":
        if workload.bundle is None or workload.bundle.engine is None:
            raise Skip("no TensorRT engine: build one on this device with `edgekit compile --bundle DIR`")
        return open_backend(workload.bundle, backend="tensorrt")
    if backend == "onnxruntime":
        path = workload.onnx_for(precision, batch)
        return open_backend(path, backend="onnxruntime", device=config.device, intra_op_threads=config.threads)
    raise EdgekitError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")


def _samples_kept(timing: TimingResult) -> List[float]:
    ms = np.asarray(timing.samples_s) * 1e3
    if ms.size > MAX_SAMPLES_KEPT:
        ms = ms[np.linspace(0, ms.size - 1, MAX_SAMPLES_KEPT).astype(int)]
    return [round(float(v), 3) for v in ms]


ModelWorkloads = Callable[[BenchConfig, Path], Iterable[Workload]]  # (config, workdir for ONNX files) -> workloads


class Bench:
    """Runs the combinations of a config; ``run()`` returns the results document.

    ``model_workloads`` makes the workloads of ``config.models`` (``edgekit.bench.zoo.zoo_workloads``: host code,
    passed in so that the board side never imports it).
    """

    def __init__(self, config: BenchConfig, model_workloads: Optional[ModelWorkloads] = None) -> None:
        if not config.models and config.bundle is None:
            raise EdgekitError("nothing to benchmark: give --models NAME[,NAME...] or --bundle DIR")
        if config.models and config.bundle is not None:
            raise EdgekitError("give either --models or --bundle, not both")
        if config.models and model_workloads is None:
            raise EdgekitError("zoo models are exported on the host: Bench(config, edgekit.bench.zoo.zoo_workloads)")
        for precision in config.precisions:
            if precision not in PRECISIONS:
                raise EdgekitError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
        if config.backend not in BACKENDS:
            raise EdgekitError(f"unknown backend {config.backend!r}; use {', '.join(BACKENDS)}")
        self.config = config
        self.model_workloads = model_workloads
        self.peak: Dict[str, Optional[float]] = {}
        self.target_name: Optional[str] = None
        self.target_kind: Optional[str] = None
        if config.target:
            from edgekit.board.targets import load_target

            target = load_target(config.target)
            self.peak, self.target_name, self.target_kind = dict(target.peak_gmacs), target.name, target.kind

    def combinations(self, workdir: Path) -> List[Tuple[Workload, int, str]]:
        if self.config.bundle is not None:
            workloads = list(_bundle_workloads(self.config))
        else:
            assert self.model_workloads is not None
            workloads = list(self.model_workloads(self.config, workdir))
        return [(w, b, p) for w in workloads for b in self.config.batches for p in self.config.precisions]

    def run(self, progress: Optional[Callable[[str], None]] = None, command: Optional[str] = None) -> Dict[str, Any]:
        fingerprint = device_fingerprint()
        results: List[Dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
            workdir = self.config.workdir or Path(tmp)
            references: Dict[Tuple[str, Tuple[int, int]], np.ndarray] = {}
            for workload, batch, precision in self.combinations(workdir):
                label = f"{workload.model} {workload.size[0]}x{workload.size[1]} b{batch} {precision}"
                if progress:
                    progress(label)
                backend, why = resolve_backend(self.config.backend, workload)
                results.append(self.measure(workload, batch, precision, backend, why, references, workdir))
                if backend == "torch" and self.config.torch_baseline and precision == "fp32" and batch == 1:
                    results.append(self.authors_baseline(workload))
        return {
            "schema": SCHEMA,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "device": fingerprint,
            "tier": device_tier(fingerprint),
            "target": self.target_name,
            "stop_rule": asdict(self.config.rule),
            "results": results,
        }

    def _base(self, workload: Workload, batch: int, precision: str, backend: str) -> Dict[str, Any]:
        return {
            "model": workload.model,
            "size": list(workload.size),
            "batch": batch,
            "precision": precision,
            "backend": backend,
        }

    def measure(
        self,
        workload: Workload,
        batch: int,
        precision: str,
        backend_name: str,
        why: str,
        references: Dict[Tuple[str, Tuple[int, int]], np.ndarray],
        workdir: Path,
    ) -> Dict[str, Any]:
        result = {**self._base(workload, batch, precision, backend_name), "backend_choice": why}
        reset_peak_rss()
        try:
            params, macs, counted_on = workload.count(backend_name, batch)
            graph = {"params": params, "macs_per_image": macs, "gmacs_per_image": macs / 1e9, "counted_on": counted_on}
            backend = _open(backend_name, workload, precision, batch, self.config)
        except Skip as reason:
            return {**result, "status": "skipped", "reason": str(reason)}
        with backend:
            frames = _frames(self.config, workload.preprocessing)
            batch_input = _model_input(backend, workload.preprocessing, frames[0], batch)
            with PowerMonitor() as power:
                timing = time_until_stable(lambda: backend.infer(batch_input), self.config.rule)
            maps = _class_maps(backend, workload.preprocessing, frames, batch)
            key = (workload.model, workload.size)
            if precision == "fp32" and key not in references:
                references[key] = maps
            p50_s = float(np.median(timing.samples_s))
            result.update(
                status="ok",
                backend_info=backend.details(),
                latency_ms=latency_stats(timing.samples_s),
                timing=dict(
                    {k: v for k, v in timing.to_dict().items() if k != "samples_s"}, runs=len(timing.samples_s)
                ),
                samples_ms=_samples_kept(timing),
                fps_inference=batch / p50_s,
                power=power.result(frames=len(timing.samples_s) * batch),
                accuracy=_accuracy(self.config, maps, references.get(key), precision),
                graph=graph,
                gmacs_per_s=macs / 1e9 * batch / p50_s,
                device_resident=self._device_resident(backend, batch_input),
                memory=self._memory(backend, power),  # before the pipeline and profile, which allocate more
                pipeline=self._pipeline(backend, workload, batch, workdir),
                top_layers=self._profile(backend, workload, precision, batch, batch_input),  # last: TRT keeps it
            )
        result["peak_gmacs"], result["fraction_of_peak"] = self._fraction_of_peak(precision, result)
        return result

    def _fraction_of_peak(self, precision: str, result: Dict[str, Any]) -> Tuple[Any, Any]:
        """GMAC/s over the target's peak, refused when the run used the CPU but the profile describes a GPU."""
        peak = self.peak.get(precision)
        if peak is None:
            return f"{NOT_AVAILABLE} (no --target or no {precision} peak in it)", NOT_AVAILABLE
        info = result["backend_info"]
        on_cpu = info.get("provider") == "CPUExecutionProvider" or info.get("device") == "cpu"
        if on_cpu and self.target_kind != "cpu":
            reason = f"{NOT_AVAILABLE} (ran on the CPU; target {self.target_name} describes a {self.target_kind} GPU)"
            return peak, reason
        return peak, result["gmacs_per_s"] / peak

    def _device_resident(self, backend: Backend, batch_input: np.ndarray) -> Dict[str, Any]:
        """Torch only: forward on an input already on the device, no host copies (what the authors' loop and
        trtexec time), beside the host-to-host ``infer`` figure every backend gets."""
        if backend.name != "torch":  # checked by name: importing the torch backend would import torch on a board
            return {"status": "not applicable", "reason": "measured for the torch backend only"}
        from edgekit.board.backends.torch_backend import TorchBackend

        assert isinstance(backend, TorchBackend)
        resident = backend.to_device(batch_input)

        def forward() -> None:
            backend.run_on_device(resident)
            backend.synchronize()

        timing = time_until_stable(forward, self.config.rule)
        return {
            "status": "ok",
            "latency_ms": latency_stats(timing.samples_s),
            "fps": batch_input.shape[0] / float(np.median(timing.samples_s)),
            "stable": timing.stable,
        }

    def _memory(self, backend: Backend, power: PowerMonitor) -> Dict[str, Any]:
        gpu: Union[float, str] = f"{NOT_AVAILABLE} (no GPU backend)"
        if power.gpu_memory_peak_mb is not None:
            gpu = power.gpu_memory_peak_mb
        device = getattr(backend, "device", None)
        if getattr(device, "type", None) == "cuda":
            import torch

            gpu = torch.cuda.max_memory_allocated(device) / 2**20
        rss = peak_rss_mb()
        return {"peak_rss_mb": rss if rss is not None else NOT_AVAILABLE, "gpu_peak_mb": gpu}

    def _profile(
        self, backend: Backend, workload: Workload, precision: str, batch: int, batch_input: np.ndarray
    ) -> Union[List[Dict[str, Any]], str]:
        if self.config.profile_runs <= 0:
            return f"{NOT_AVAILABLE} (profiling off)"
        if backend.name == "tensorrt":
            return profile_tensorrt(backend, batch_input, runs=self.config.profile_runs)
        if backend.name == "onnxruntime":
            providers = backend.details().get("requested_providers", ["CPUExecutionProvider"])
            path = workload.onnx_for(precision, batch)
            return profile_onnxruntime(path, batch_input, providers, runs=self.config.profile_runs)
        return f"{NOT_AVAILABLE} (the {backend.name} backend offers no per-layer profile)"

    def _pipeline(self, backend: Backend, workload: Workload, batch: int, workdir: Path) -> Dict[str, Any]:
        """Full-pipeline FPS on a video file through the runner (capture, preprocessing, inference, overlay)."""
        if batch != 1:
            return {"status": "not applicable", "reason": "the runner streams single frames (batch 1)"}
        if self.config.pipeline_frames <= 0 and self.config.video is None:
            return {"status": NOT_AVAILABLE, "reason": "pipeline measurement turned off (--pipeline-frames 0)"}
        from edgekit.board.pipeline import run_pipeline
        from edgekit.board.sinks.base import NullSink
        from edgekit.board.sources import open_source

        video = self.config.video or self._default_video(workdir)
        stats = run_pipeline(backend, open_source(video), [NullSink()], workload.preprocessing, workload.classes,
                             handle_signals=False)  # fmt: skip
        end_to_end = stats.latency.get("end_to_end", {})
        return {
            "status": "ok",
            "video": str(video) if self.config.video else f"synthetic driving video {PIPELINE_VIDEO_SIZE}",
            "frames": stats.frames_out,
            "fps": stats.fps,
            "latency_p50_ms": end_to_end.get("p50_ms"),
            "stopped_by": stats.stopped_by,
        }

    def _default_video(self, workdir: Path) -> Path:
        """The synthetic driving video of edgekit.data (real mp4 frames), made once per bench run."""
        from edgekit.board.synthetic import synthetic_video

        path = workdir / "pipeline.mp4"
        if not path.is_file():
            synthetic_video(path, frames=self.config.pipeline_frames, size=PIPELINE_VIDEO_SIZE, fps=30.0)
        return path

    def authors_baseline(self, workload: Workload) -> Dict[str, Any]:
        """The naive PyTorch eager FP32 loop exactly as the ESPNet authors timed it (mean of 99 iterations)."""
        from edgekit.board.backends.torch_backend import authors_timing_loop

        assert workload.module is not None
        samples = authors_timing_loop(
            workload.module(), workload.size, device=self.config.device, iterations=self.config.baseline_iterations
        )
        mean_s = float(np.mean(samples))
        return {
            **self._base(workload, 1, "fp32", "torch-naive"),
            "status": "ok",
            "backend_choice": "ESPNet authors' loop (sacmehta/ESPNet#57): eager FP32, first run discarded, mean",
            "latency_ms": latency_stats(samples),
            "samples_ms": [round(s * 1e3, 3) for s in samples],
            "fps_inference": 1.0 / mean_s,
            "fps_basis": "mean latency, as the authors report",
        }


def write_results(document: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write atomically: an interrupted bench never leaves half a JSON file under the final name; EdgekitError
    (saying the results are lost) when the write fails."""
    return write_text_atomically(path, json.dumps(document, indent=2) + "\n", "bench results")


def load_results(path: Union[str, Path]) -> Dict[str, Any]:
    """A bench result file, its schema checked: a missing key, a wrong type, a negative rate or a repeated
    combination is an error naming the key, never a KeyError in the report."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError and UnicodeDecodeError (a binary file)
        raise EdgekitError(f"cannot read bench results {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise EdgekitError(f"{path} is not an `edgekit bench` result file (schema {SCHEMA})")
    _check_results(document, str(path))
    return document


def _require(mapping: Dict[str, Any], key: str, kind: Any, where: str) -> Any:
    value = mapping.get(key)
    if key not in mapping:
        raise EdgekitError(f"{where}: missing key {key!r}")
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise EdgekitError(f"{where}: {key!r} must be {names}, not {type(value).__name__} {value!r}")
    return value


def _check_results(document: Dict[str, Any], where: str) -> None:
    """The keys `edgekit report` reads, with their types (results are what `BenchRunner.run` writes)."""
    _require(document, "tier", str, where)
    results = _require(document, "results", list, where)
    if not results:
        raise EdgekitError(f"{where}: 'results' is empty (the bench measured nothing); rerun `edgekit bench`")
    seen = {}  # type: Dict[Tuple[Any, ...], int]
    for index, result in enumerate(results):
        at = f"{where}: results[{index}]"
        if not isinstance(result, dict):
            raise EdgekitError(f"{at} must be an object, not {type(result).__name__}")
        for key in ("model", "precision", "backend", "status"):
            _require(result, key, str, at)
        size = _require(result, "size", list, at)
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise EdgekitError(f"{at}: 'size' must be [width, height] in positive pixels, not {size!r}")
        if _require(result, "batch", int, at) < 1:
            raise EdgekitError(f"{at}: 'batch' must be at least 1, not {result['batch']}")
        combination = (result["model"], tuple(size), result["batch"], result["precision"], result["backend"])
        if combination in seen:
            raise EdgekitError(f"{at} repeats results[{seen[combination]}] ({' '.join(map(str, combination))})")
        seen[combination] = index
        if result["status"] != "ok":
            continue
        fps = _require(result, "fps_inference", (int, float), at)
        if not fps > 0 or fps == float("inf"):
            raise EdgekitError(f"{at}: 'fps_inference' must be a positive number of frames per second, not {fps}")
        latency = _require(result, "latency_ms", dict, at)
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms"):  # null where too few samples
            value = _require(latency, key, (int, float, type(None)), f"{at}.latency_ms")
            if value is not None and value < 0:
                raise EdgekitError(f"{at}.latency_ms: {key!r} is negative ({value})")
