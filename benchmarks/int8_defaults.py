"""INT8 with the project's defaults, as a new user runs it (issue 14's quality bar): official weights, export, then
``edgekit quantize --onnx fp32.onnx --calib <street photos> -o int8.onnx`` with no other flag.

Each step runs as its own ``python -m edgekit`` process, timed with its own peak RSS (``os.wait4``). INT8 is then
compared with FP32 on each frame given, both fed the official input tensor (the checkpoint's preprocessing), and
the quantize report gives the MAC share kept in INT8, the hold-out it chose and the per-class IoU against FP32.

Usage (from the repository root, with ../shared)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/int8_defaults.py --model espnet \
        --official ../shared/weights/espnet/espnet_p_2_q_8.pth -o benchmarks/results/int8-defaults-espnet.json
    PYTHONPATH=$PWD .venv/bin/python benchmarks/int8_defaults.py --model espnetv2-s2.0 \
        --official ../shared/weights/espnetv2/espnetv2_s_2.0_city_1024x512.pth \
        -o benchmarks/results/int8-defaults-espnetv2-s2.0.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _step(*args: str) -> dict[str, Any]:
    """One edgekit command in its own process: its wall time and peak RSS (ru_maxrss is in KiB on Linux)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "edgekit", *args])
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"edgekit {args[0]} failed (exit {process.returncode})")
    return {"command": "edgekit " + " ".join(args), "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2)}  # fmt: skip


def _agreement(fp32: Path, int8: Path, frames: list[Path]) -> dict[str, float]:
    from edgekit.export import ort_session, read_metadata

    preprocessing = read_metadata(fp32).preprocessing
    reference, candidate = ort_session(fp32), ort_session(int8)
    name = reference.get_inputs()[0].name
    agreement = {}
    for frame in frames:
        tensor = preprocessing.load(frame)
        (ref,), (out,) = reference.run(None, {name: tensor}), candidate.run(None, {name: tensor})
        agreement[frame.name] = round(float((ref.argmax(1) == out.argmax(1)).mean()), 4)
    return agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--official", type=Path, required=True, help="official Cityscapes weights")
    parser.add_argument("--calib", type=Path, default=Path("../shared/samples/street"))
    parser.add_argument("--frames", type=Path, default=Path("../shared/samples/cityscapes"))
    parser.add_argument("--input-size", default="1024x512")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        checkpoint, fp32, int8 = work / "model.ckpt", work / "fp32.onnx", work / "int8.onnx"
        steps = [
            _step("import-weights", "--model", args.model, "--official", str(args.official), "-o", str(checkpoint),
                  "--input-size", args.input_size),
            _step("export", "--checkpoint", str(checkpoint), "--input-size", args.input_size, "-o", str(fp32)),
            _step("quantize", "--onnx", str(fp32), "--calib", str(args.calib), "-o", str(int8),
                  "--json", str(work / "int8.json")),
        ]  # fmt: skip
        for step in steps:  # the temporary folder's name means nothing once it is gone
            step["command"] = step["command"].replace(f"{work}/", "")
        report = json.loads((work / "int8.json").read_text())
        agreement = _agreement(fp32, int8, sorted(args.frames.glob("*.png")))
    result = {
        "model": args.model,
        "input_size": args.input_size,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "agreement_vs_fp32": agreement,
        "int8_mac_share": report["int8_mac_share"],
        "int8_layers": report["int8_layers"],
        "conv_layers": report["conv_layers"],
        "kept_in_float": [entry["name"] for entry in report["excluded"]],
        "holdout_scheme": report["holdout_scheme"],
        "class_iou_vs_fp32": report["class_iou_vs_fp32"],
        "classes_below_iou_floor": report["classes_below_iou_floor"],
        "steps": steps,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("agreement_vs_fp32", "int8_mac_share", "holdout_scheme")}))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
