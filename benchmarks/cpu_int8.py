"""Is INT8 worth offering on the CPU targets? FP32 against INT8 forms onnxruntime's CPU provider runs.

Variants of one network, all timed in one process, alternating (every round runs each variant in turn, so a
drifting, shared machine slows them alike):

- ``fp32``: the exported model;
- ``qdq_edgekit``: edgekit's Q/DQ model (Q/DQ only at conv inputs, the form TensorRT wants; what a bundle holds):
  onnxruntime cannot fuse DequantizeLinear -> Conv without a QuantizeLinear after it, so it runs float convs
  on dequantized tensors;
- ``qlinear_conv``: onnxruntime's own static quantizer in QOperator form, convolutions only (every Conv becomes
  a QLinearConv, an integer kernel, with Quantize/DequantizeLinear around it), u8 activations / s8 per-channel
  weights as onnxruntime recommends for x86 with VNNI, calibrated (MinMax) on the same images;
- ``qdq_ort``: the same quantizer in its Q/DQ form (DQ -> Conv -> Q, which onnxruntime fuses into QLinearConv);
- ``qdq_ort_percentile_edgekit_float``: that form with edgekit's percentile (99.99 %) calibration, keeping in float
  the convolutions edgekit's Q/DQ model keeps in float.

Pixel agreement of each INT8 variant with FP32 is measured on the frames given (the official input tensor).

Usage (from the repository root; fp32.onnx and int8.onnx from the README's import-weights / export / quantize
commands for the official ESPNet at 1024x512)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cpu_int8.py --fp32 fp32.onnx --qdq int8.onnx \
        --calib ../shared/samples/street --frames ../shared/samples/cityscapes --threads 2 1 --rounds 10 \
        -o benchmarks/results/cpu-int8-espnet-1024x512.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _variants(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgekit.export import read_metadata
    from edgekit.quant import load_calibration

    calibration = load_calibration(args.calib, read_metadata(args.fp32).preprocessing)
    inputs = list(calibration.inputs())[: args.ort_calibration_images]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": x} for x in inputs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    import onnx
    from onnxruntime.quantization import CalibrationMethod

    from edgekit.quant.qdq import conv_layers, int8_weight_layers

    float_layers = sorted(
        {layer.name for layer in conv_layers(onnx.load(str(args.fp32)))} - int8_weight_layers(onnx.load(str(args.qdq)))
    )
    percentile = {"calibrate_method": CalibrationMethod.Percentile, "extra_options": {"CalibPercentile": 99.99}}
    forms: dict[str, dict[str, Any]] = {
        "qlinear_conv": {"quant_format": QuantFormat.QOperator},
        "qdq_ort": {"quant_format": QuantFormat.QDQ},
        "qdq_ort_percentile_edgekit_float": {
            "quant_format": QuantFormat.QDQ,
            "nodes_to_exclude": float_layers,
            **percentile,
        },
    }
    files = {"fp32": args.fp32, "qdq_edgekit": args.qdq}
    for name, options in forms.items():
        files[name] = work / f"{name}.onnx"
        quantize_static(
            str(args.fp32), str(files[name]), Reader(), op_types_to_quantize=["Conv"], per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, **options,
        )  # fmt: skip
    return files


def _op_counts(path: Path) -> dict[str, int]:
    """Op types of the graph onnxruntime actually runs (after its fusions), from an optimised copy."""
    import onnx
    import onnxruntime as ort

    optimised = path.with_suffix(".optimised.onnx")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(optimised)
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    counts: dict[str, int] = {}
    for node in onnx.load(str(optimised)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fp32", type=Path, required=True, help="`edgekit export` model")
    parser.add_argument("--qdq", type=Path, required=True, help="`edgekit quantize` model of that --fp32")
    parser.add_argument("--calib", required=True, help="calibration images for onnxruntime's quantizer")
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs-per-round", type=int, default=3)
    parser.add_argument("--ort-calibration-images", type=int, default=4)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    from edgekit.export import ort_session, read_metadata

    with tempfile.TemporaryDirectory() as tmp:
        files = _variants(args, Path(tmp))
        preprocessing = read_metadata(args.fp32).preprocessing
        frames = sorted(p for p in args.frames.iterdir() if p.suffix.lower() in (".png", ".jpg"))
        feeds = [preprocessing.load(p) for p in frames]
        agreement: dict[str, list[float]] = {}
        reference = [ort_session(files["fp32"]).run(None, {"input": x})[0].argmax(1) for x in feeds]
        for name, path in files.items():
            session = ort_session(path)
            agreement[name] = [
                round(float((session.run(None, {"input": x})[0].argmax(1) == r).mean()), 5)
                for x, r in zip(feeds, reference, strict=True)
            ]
        ops = {name: _op_counts(path) for name, path in files.items()}
        timing: dict[str, Any] = {}
        for threads in args.threads:
            sessions = {name: ort_session(path, threads=threads) for name, path in files.items()}
            for session in sessions.values():  # warm-up
                session.run(None, {"input": feeds[0]})
            samples: dict[str, list[float]] = {name: [] for name in files}
            started = time.strftime("%H:%M:%S", time.gmtime())
            for round_index in range(args.rounds):
                order = list(files) if round_index % 2 == 0 else list(reversed(files))
                for name in order:
                    for _ in range(args.runs_per_round):
                        begin = time.perf_counter()
                        sessions[name].run(None, {"input": feeds[0]})
                        samples[name].append((time.perf_counter() - begin) * 1e3)
            medians = {name: statistics.median(values) for name, values in samples.items()}
            timing[str(threads)] = {
                "utc": f"{started}-{time.strftime('%H:%M:%S', time.gmtime())}",
                "median_ms": {name: round(value, 2) for name, value in medians.items()},
                "speed_vs_fp32": {name: round(medians["fp32"] / value, 3) for name, value in medians.items()},
                "runs": {name: len(values) for name, values in samples.items()},
            }
            print(f"{threads} thread(s):", json.dumps(timing[str(threads)]["speed_vs_fp32"]), flush=True)
    result = {
        "command": "benchmarks/cpu_int8.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        ),
        "machine": {"cpu": _cpu_model(), "platform": platform.platform()},
        "note": "shared 2-core development machine: ratios are from one process with alternating rounds",
        "size": list(read_metadata(args.fp32).preprocessing.input_size),
        "model": read_metadata(args.fp32).model_name,
        "agreement_with_fp32": agreement,
        "ops_after_onnxruntime_fusion": ops,
        "timing": timing,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"agreement_with_fp32": agreement, "timing": timing}, indent=1))


if __name__ == "__main__":
    main()
