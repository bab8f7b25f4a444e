"""PyTorch -> ONNX -> onnxsim -> onnx.checker -> verified against PyTorch through onnxruntime.

The opset is the highest the target's TensorRT parser takes (13 for TensorRT 8.2 on JetPack 4.6, else 17; the
table is :data:`edgekit.board.targets.TENSORRT_ONNX`). The exported file carries the checkpoint's preprocessing
and classes in its metadata (``metadata_props``) so that later stages (quantize, build, the runner) never guess
how to feed it. Optional in-graph stages for deployment: normalisation (the runner feeds uint8 NCHW frames) and
a class-map head (a device copies one int32 per pixel, not C floats).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.board.bundle import (
    CLASSMAP_NAME,
    INPUT_NAME,
    LOGITS_NAME,
    META_CLASSES,
    META_IO,
    META_MODEL,
    META_PREPROCESSING,
)
from edgekit.board.classes import ClassSet
from edgekit.board.outputs import check_output_file
from edgekit.board.preprocess import Preprocessing
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from edgekit.board.targets import Target
    from edgekit.checkpoint import Checkpoint

OPSET = 17  # the highest opset exported; a target whose TensorRT takes less lowers it (export_opset)
LOWEST_OPSET = 13  # per-channel QuantizeLinear (the INT8 weights) needs 13; every TensorRT from 8.2 takes it
ARGMAX_MIN_AGREEMENT = 0.999  # in-graph class map: only exact logit ties may differ between PyTorch and onnxruntime
REDUCE_HEAD = "reducemax-equal-where-reducemin"
ARGMAX_HEAD = "argmax"
CLASSMAP_HEADS = {  # formulation -> why a bundle has it (recorded in the manifest)
    REDUCE_HEAD: "ArgMax becomes TopK in TensorRT: 'Could not find any implementation for node ArgMax' on Jetson "
    "Nano (NVIDIA/TensorRT#3677, onnx-tensorrt#564) and the slowest layer of segmentation engines "
    "(onnx-tensorrt#669, #792); ReduceMax, Equal, Where, ReduceMin and Cast on float are in every onnx-tensorrt "
    "table from 8.2-GA, and the lowest index among the maxima equals numpy/PyTorch argmax, ties included",
    ARGMAX_HEAD: "onnxruntime runs ArgMax in one pass over the logits, 2.3-2.7x faster than the TensorRT-safe "
    f"{REDUCE_HEAD} head on a CPU (benchmarks/classmap_head.py), and gives the lowest index among ties as numpy",
}
SYNTHETIC_VERIFY_SEEDS = (1001, 1002)


@dataclass
class ExportReport:
    output: Path
    model_name: str
    input_size: tuple[int, int]
    opset: int
    dynamic_batch: bool
    argmax: bool
    classmap_head: str | None  # the formulation appended by ``argmax``
    normalize_in_graph: bool
    nodes_before_simplify: int
    nodes_after_simplify: int
    verified_on: list[str]
    max_abs_diff: float | None  # logits; None when the graph ends in the class-map head
    argmax_agreement: float
    tolerance: float
    seconds: float
    fp16: Fp16Report | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output"] = str(self.output)
        data["input_size"] = list(self.input_size)
        return data


@dataclass
class Fp16Report:
    source: Path
    output: Path
    keep_io_types: bool
    verified_on: int  # number of inputs compared
    max_abs_diff: float | None
    argmax_agreement: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = str(self.source)
        data["output"] = str(self.output)
        return data


@dataclass(frozen=True)
class OnnxMetadata:
    """What export_onnx wrote into the ONNX file: how to feed it and what comes out."""

    model_name: str
    preprocessing: Preprocessing
    classes: ClassSet
    input_dtype: str  # "float32" or "uint8" (in-graph normalisation)
    output_kind: str  # "logits" or "classmap"


def load_onnx(path: Path, load_external_data: bool = True) -> onnx.ModelProto:
    """onnx.load with one-line errors for a missing file or one that is not an ONNX model (text, truncated)."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"ONNX model not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise EdgekitError(
            f"{path} is not a readable ONNX model ({path.stat().st_size:,} bytes; {exc}): truncated, or not ONNX; "
            "export it again with `edgekit export`"
        ) from None


def is_edgekit_onnx(path: Path) -> bool:
    """Whether ``path`` is an ONNX written by edgekit (the only kind of file an export may replace)."""
    try:
        read_metadata(path)
    except EdgekitError:
        return False
    return True


def read_metadata(path: Path, model: onnx.ModelProto | None = None) -> OnnxMetadata:
    """The edgekit metadata of an exported ONNX; a clear error for a bare ONNX from elsewhere."""
    proto = model if model is not None else load_onnx(path, load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if META_PREPROCESSING not in props or META_CLASSES not in props:
        raise EdgekitError(
            f"{path} has no edgekit preprocessing metadata (not made by `edgekit export`); "
            "pass --checkpoint CKPT so that calibration images are preprocessed like the runner does"
        )
    io = json.loads(props.get(META_IO, "{}"))
    return OnnxMetadata(
        model_name=props.get(META_MODEL, "unknown"),
        preprocessing=Preprocessing.from_dict(json.loads(props[META_PREPROCESSING])),
        classes=ClassSet.from_dict(json.loads(props[META_CLASSES])),
        input_dtype=str(io.get("input_dtype", "float32")),
        output_kind=str(io.get("output_kind", "logits")),
    )


def write_metadata(model: onnx.ModelProto, meta: OnnxMetadata) -> None:
    """Replace the edgekit keys of ``metadata_props`` (other keys are kept)."""
    values = {
        META_MODEL: meta.model_name,
        META_PREPROCESSING: json.dumps(meta.preprocessing.to_dict()),
        META_CLASSES: json.dumps(meta.classes.to_dict()),
        META_IO: json.dumps({"input_dtype": meta.input_dtype, "output_kind": meta.output_kind}),
    }
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def export_opset(target: Target | None, requested: int | None = None, normalize_in_graph: bool = False) -> int:
    """The opset to export for ``target`` (``requested`` if given and allowed), checked before any work starts:
    the highest opset its TensorRT parser takes, and no uint8 input where that parser takes no UINT8."""
    support = None if target is None else target.onnx_support
    release = None if target is None else target.software.get("tensorrt")
    if target is not None and support is not None and normalize_in_graph and not support.uint8_input:
        raise EdgekitError(
            f"--normalize-in-graph makes a uint8 input, which {target.name}'s TensorRT {release} cannot take "
            f"(onnx-tensorrt {support.operators} lists no UINT8; 8.6 does); export without it and the runner "
            "normalises on the CPU"
        )
    highest = OPSET if support is None else min(OPSET, support.max_opset)
    if requested is None:
        return highest
    if not LOWEST_OPSET <= requested <= highest:
        where = f"for {target.name} (TensorRT {release})" if support is not None and target is not None else ""
        raise EdgekitError(f"--opset {requested}: edgekit exports opset {LOWEST_OPSET} to {highest} {where}".strip())
    return requested


def _deployment_wrapper(model: nn.Module, preprocessing: Preprocessing, normalize: bool) -> nn.Module:
    import torch
    from torch import nn

    gain, bias = preprocessing.affine()

    class Deployed(nn.Module):
        gain: torch.Tensor
        bias: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.net = model
            self.register_buffer("gain", torch.from_numpy(gain).view(1, 3, 1, 1))
            self.register_buffer("bias", torch.from_numpy(bias).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if normalize:
                x = x.float() * self.gain + self.bias
            return self.net(x)

    return Deployed().eval()


def _verification_frames(
    verify_images: Sequence[Path] | None, size: tuple[int, int]
) -> tuple[list[np.ndarray], list[str]]:
    from edgekit.board.preprocess import read_bgr
    from edgekit.board.synthetic import synthetic_frames

    if verify_images:
        return [read_bgr(p) for p in verify_images], [str(p) for p in verify_images]
    seeds = SYNTHETIC_VERIFY_SEEDS
    return synthetic_frames(len(seeds), size, seeds[0]), [f"synthetic scene seed {s}" for s in seeds]


def ort_session(path_or_bytes: Path | bytes, threads: int = 0) -> Any:
    """A CPU onnxruntime session (``threads`` 0 = onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    source = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_onnx(
    checkpoint: Checkpoint,
    output: Path,
    *,
    input_size: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    argmax: bool = False,
    normalize_in_graph: bool = False,
    verify_images: Sequence[Path] | None = None,
    tolerance: float = 1e-3,
    opset: int = OPSET,
    classmap_head: str = REDUCE_HEAD,
) -> ExportReport:
    """Export, simplify, check and verify; raises EdgekitError when onnxruntime disagrees with PyTorch.

    ``opset``: from :func:`export_opset` for a target (its TensorRT parser's highest); onnxsim keeps it.
    ``classmap_head``: the formulation of the class map that ``argmax`` appends (:func:`classmap_head_for`)."""
    import onnx
    import onnxsim
    import torch

    started = time.perf_counter()
    output = check_output_file(output, "ONNX output", is_edgekit_onnx, "an ONNX model written by edgekit")
    preprocessing = checkpoint.preprocessing_at(input_size)
    width, height = preprocessing.input_size
    model = checkpoint.build()
    wrapped = _deployment_wrapper(model, preprocessing, normalize_in_graph)
    dummy = torch.zeros(1, 3, height, width, dtype=torch.uint8 if normalize_in_graph else torch.float32)
    output.parent.mkdir(parents=True, exist_ok=True)
    raw_path = output.with_name(output.name + ".raw.onnx")
    try:
        torch.onnx.export(
            wrapped,
            (dummy,),
            str(raw_path),
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[LOGITS_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, LOGITS_NAME: {0: "batch"}} if dynamic_batch else None,
            dynamo=False,
        )
        raw = onnx.load(str(raw_path))
    finally:
        raw_path.unlink(missing_ok=True)
    nodes_before = len(raw.graph.node)
    simplified, ok = onnxsim.simplify(
        raw, check_n=0, test_input_shapes={INPUT_NAME: [1, 3, height, width]} if dynamic_batch else None
    )
    if not ok:
        raise EdgekitError("onnxsim could not validate the simplified graph; report this model and size")
    write_metadata(
        simplified,
        OnnxMetadata(
            model_name=checkpoint.model_name,
            preprocessing=preprocessing,
            classes=checkpoint.classes,
            input_dtype="uint8" if normalize_in_graph else "float32",
            output_kind="logits",
        ),
    )
    onnx.checker.check_model(simplified, full_check=True)
    onnx.save(simplified, str(output))
    if argmax:
        append_classmap_head(output, classmap_head)  # the same head that `edgekit build` appends to bundle models

    frames, sources = _verification_frames(verify_images, (width, height))
    session = ort_session(output)
    diffs, agreements = [], []
    with torch.no_grad():
        for frame in frames:
            x = preprocessing(frame)
            reference = model(torch.from_numpy(x)).numpy()
            feed = preprocessing.to_uint8_chw(frame) if normalize_in_graph else x
            if dynamic_batch:  # exercise a batch of two to prove the batch axis really is dynamic
                feed = np.concatenate([feed, feed])
            (actual,) = session.run(None, {INPUT_NAME: feed})
            actual = actual[:1]
            if argmax:
                agreements.append(float((actual == reference.argmax(1)).mean()))
            else:
                diffs.append(float(np.abs(actual - reference).max()))
                agreements.append(float((actual.argmax(1) == reference.argmax(1)).mean()))
    max_diff = max(diffs) if diffs else None
    agreement = min(agreements)
    if max_diff is not None and max_diff > tolerance:
        raise EdgekitError(
            f"onnxruntime differs from PyTorch by {max_diff:.3g} (> tolerance {tolerance:g}) on {output}; "
            "the export is wrong for this model — check unsupported ops, or raise --tolerance if expected"
        )
    if argmax and agreement < ARGMAX_MIN_AGREEMENT:
        raise EdgekitError(f"in-graph class map agrees with PyTorch on only {agreement:.2%} of pixels of {output}")
    return ExportReport(
        output=output,
        model_name=checkpoint.model_name,
        input_size=(width, height),
        opset=opset,
        dynamic_batch=dynamic_batch,
        argmax=argmax,
        classmap_head=classmap_head if argmax else None,
        normalize_in_graph=normalize_in_graph,
        nodes_before_simplify=nodes_before,
        nodes_after_simplify=len(simplified.graph.node),
        verified_on=sources,
        max_abs_diff=max_diff,
        argmax_agreement=agreement,
        tolerance=tolerance,
        seconds=time.perf_counter() - started,
    )


def _random_feed(session: Any, seed: int) -> dict[str, np.ndarray]:
    """Deterministic input for FP16 verification only (never for calibration), shaped from the session."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        if "uint8" in inp.type:
            feeds[inp.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def convert_fp16(src: Path, dst: Path, keep_io_types: bool = True, tolerance: float | None = 0.05) -> Fp16Report:
    """FP16 weights/activations with onnxconverter-common, verified against the FP32 model in onnxruntime.

    Verification feeds the exported model's own synthetic scenes through its metadata preprocessing when present,
    otherwise deterministic normal noise (a shape/dtype check; FP16 accuracy is then reported, not judged).
    ``tolerance=None`` reports agreement without judging it: for random-weight networks timed for latency only,
    whose near-tied logits flip under FP16 (84.38 % agreement measured on a scale candidate).
    """
    import onnx
    from onnxconverter_common import float16

    started = time.perf_counter()
    src = Path(src)
    dst = check_output_file(dst, "FP16 ONNX output", is_edgekit_onnx, "an ONNX model written by edgekit")
    model = load_onnx(src)
    with warnings.catch_warnings(record=True) as caught:  # one warning per weight clamped to the FP16 range
        warnings.simplefilter("always")
        # The graph's own Casts stay FP32: the converter rewrites a Cast's output type but not its `to`, which
        # breaks the uint8 -> float Cast of in-graph normalisation. They are blocked by node name: blocking the
        # Cast op type makes onnxconverter-common loop forever, re-casting the Casts it inserts around blocked
        # ops such as Resize.
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=keep_io_types,
            node_block_list=[node.name for node in model.graph.node if node.op_type == "Cast"],
        )
    onnx.checker.check_model(converted)
    notes = [f"{len(caught)} converter warnings (values outside the FP16 range clamped)"] if caught else []
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Verified under a staged name and renamed into place only when accepted: a rejected or interrupted
    # conversion leaves no unverified model where a later run (or scale's --resume) would take it, and a previous
    # model at dst as it was.
    staged = dst.with_name(f".{dst.name}.partial-{os.getpid()}")
    try:
        onnx.save(converted, str(staged))
        verified_on, max_diff, agreement = _fp16_agreement(src, staged, model, keep_io_types, notes)
        if tolerance is not None and agreement < 1.0 - tolerance:
            raise EdgekitError(
                f"FP16 conversion of {src} agrees with FP32 on only {agreement:.2%} of pixels; keep FP32 for this "
                f"model ({dst} was not written)"
            )
        staged.replace(dst)
    finally:
        staged.unlink(missing_ok=True)
    return Fp16Report(
        source=src,
        output=dst,
        keep_io_types=keep_io_types,
        verified_on=verified_on,
        max_abs_diff=max_diff,
        argmax_agreement=agreement,
        seconds=time.perf_counter() - started,
        notes=notes,
    )


def _fp16_agreement(
    src: Path, fp16: Path, model: Any, keep_io_types: bool, notes: list[str]
) -> tuple[int, float | None, float]:
    """(inputs compared, max |FP16 - FP32| on logits or None, worst class-map agreement) over the model's synthetic
    scenes, or deterministic noise when it has no edgekit metadata (noted)."""
    reference, candidate = ort_session(src), ort_session(fp16)
    feeds: list[dict[str, np.ndarray]]
    try:
        from edgekit.board.synthetic import synthetic_frames

        meta = read_metadata(src, model)
        pp = meta.preprocessing
        frames = synthetic_frames(len(SYNTHETIC_VERIFY_SEEDS), pp.input_size, SYNTHETIC_VERIFY_SEEDS[0])
        feeds = [{INPUT_NAME: pp.to_uint8_chw(f) if meta.input_dtype == "uint8" else pp(f)} for f in frames]
    except EdgekitError as exc:
        notes.append(f"verified on random inputs: {exc}")
        feeds = [_random_feed(reference, seed) for seed in SYNTHETIC_VERIFY_SEEDS]
    diffs, agreements = [], []
    for feed in feeds:
        (ref,) = reference.run(None, feed)
        cand_feed = feed
        if not keep_io_types:
            cand_feed = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feed.items()}
        (out,) = candidate.run(None, cand_feed)
        if ref.ndim == 4:
            diffs.append(float(np.abs(out.astype(np.float32) - ref).max()))
            agreements.append(float((out.argmax(1) == ref.argmax(1)).mean()))
        else:
            agreements.append(float((out == ref).mean()))
    return len(feeds), max(diffs) if diffs else None, min(agreements)


def classmap_head_for(target: Target | None) -> str:
    """ArgMax where onnxruntime runs the bundle (cheapest there); the reduce head for TensorRT, and without a
    target, because every TensorRT release builds it (CLASSMAP_HEADS says why)."""
    return ARGMAX_HEAD if target is not None and target.backend == "onnxruntime" else REDUCE_HEAD


def append_classmap_head(path: Path, formulation: str = REDUCE_HEAD) -> None:
    """End an exported logits graph in a class map over the classes, in place: the model then outputs an NxHxW
    int32 map (CLASSMAP_NAME) and the metadata says so.

    Why in the graph: the device copies 4 bytes per pixel instead of 4 x classes, and the runtime computes it (on
    the GPU with TensorRT) instead of the board's CPU beside the pipeline. Which formulation: CLASSMAP_HEADS.
    REDUCE_HEAD is ``max = ReduceMax(logits, 1)``, ``Where(logits == max, class index, C)``, ``ReduceMin`` over the
    classes (the lowest index among the maxima, as argmax), ``Cast`` to int32 (TensorRT before 8.5 has no uint8
    tensors), all in the logits' float type (class indices are exact in FP16 up to 2048 classes). It reads the
    logits four times where ArgMax reads them once: in onnxruntime on a CPU (1x20x512x1024 FP32, one thread,
    median of 21 alternating runs, `python benchmarks/classmap_head.py`) it takes 2.3-2.7x as long as ArgMax +
    Cast (114 vs 49 ms and 100 vs 37 ms in two runs on a shared 2-core machine); what it buys is TensorRT's
    elementwise and reduce layers instead of TopK, which fails to build on the Nano and is the slowest layer
    elsewhere.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    meta = read_metadata(path, model)
    if meta.output_kind != "logits" or len(model.graph.output) != 1:
        raise EdgekitError(f"{path} does not end in a single logits output; it cannot take a class-map head")
    logits = model.graph.output[0]
    float_type = logits.type.tensor_type.elem_type
    dims = logits.type.tensor_type.shape.dim
    classes = dims[1].dim_value if len(dims) == 4 else 0
    if float_type not in (TensorProto.FLOAT, TensorProto.FLOAT16) or classes < 1 or classes > 2048:
        raise EdgekitError(f"{path}: the class-map head needs NxCxHxW float logits with 1-2048 classes")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset > OPSET:
        raise EdgekitError(f"{path} is opset {opset}; the class-map head is written for opset {OPSET} or lower")
    if formulation not in CLASSMAP_HEADS:
        raise EdgekitError(f"unknown class-map head {formulation!r}; choose one of {', '.join(CLASSMAP_HEADS)}")
    shape = [d.dim_param or d.dim_value for i, d in enumerate(dims) if i != 1]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(CLASSMAP_NAME, TensorProto.INT32, shape))
    write_metadata(model, dataclasses.replace(meta, output_kind="classmap"))
    if formulation == ARGMAX_HEAD:
        model.graph.node.extend([
            helper.make_node("ArgMax", [logits.name], [f"{CLASSMAP_NAME}_int64"], name="edgekit_argmax", axis=1,
                             keepdims=0),
            helper.make_node("Cast", [f"{CLASSMAP_NAME}_int64"], [CLASSMAP_NAME], name="edgekit_classmap_int32",
                             to=TensorProto.INT32),
        ])  # fmt: skip
    else:
        _append_reduce_head(model, logits.name, classes, float_type)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _append_reduce_head(model: onnx.ModelProto, logits: str, classes: int, float_type: int) -> None:
    from onnx import TensorProto, helper, numpy_helper

    dtype = np.float16 if float_type == TensorProto.FLOAT16 else np.float32
    prefix = f"{CLASSMAP_NAME}_head"
    model.graph.initializer.extend([
        numpy_helper.from_array(np.arange(classes, dtype=dtype).reshape(1, classes, 1, 1), f"{prefix}_class_index"),
        numpy_helper.from_array(np.array(classes, dtype=dtype), f"{prefix}_no_class"),
    ])  # fmt: skip

    def reduce(op: str, source: str, result: str, keepdims: int) -> onnx.NodeProto:  # axes: an input from opset 18
        return helper.make_node(op, [source], [result], name=result, axes=[1], keepdims=keepdims)

    model.graph.node.extend([
        reduce("ReduceMax", logits, f"{prefix}_max", keepdims=1),
        helper.make_node("Equal", [logits, f"{prefix}_max"], [f"{prefix}_is_max"], name=f"{prefix}_is_max"),
        helper.make_node("Where", [f"{prefix}_is_max", f"{prefix}_class_index", f"{prefix}_no_class"],
                         [f"{prefix}_candidates"], name=f"{prefix}_candidates"),
        reduce("ReduceMin", f"{prefix}_candidates", f"{prefix}_lowest", keepdims=0),
        helper.make_node("Cast", [f"{prefix}_lowest"], [CLASSMAP_NAME], name=f"{prefix}_int32", to=TensorProto.INT32),
    ])  # fmt: skip
