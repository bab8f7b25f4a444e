"""Cost of the class-map head (edgekit.export.append_classmap_head) against ArgMax + Cast in onnxruntime on the CPU.

Both heads end the same 1x20x512x1024 FP32 logits (an Identity of the graph input, so only the head is timed);
the runs alternate in one process and the medians are compared. Usage: ``python benchmarks/classmap_head.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgekit.board.bundle import CLASSMAP_NAME
from edgekit.board.classes import ClassSet
from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.cli.common import parse_size
from edgekit.export import OnnxMetadata, append_classmap_head, ort_session, write_metadata


def _logits_model(path: Path, classes: int, width: int, height: int) -> Path:
    shape = [1, classes, height, width]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])], "logits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    meta = OnnxMetadata(
        "bench", ESPNET_CITYSCAPES.with_size(width, height), ClassSet.generic(classes), "float32", "logits"
    )
    write_metadata(model, meta)
    onnx.save(model, str(path))
    return path


def _argmax_model(logits: Path, path: Path) -> Path:
    model = onnx.load(str(logits))
    model.graph.node.extend([
        helper.make_node("ArgMax", ["logits"], ["indices"], axis=1, keepdims=0),
        helper.make_node("Cast", ["indices"], [CLASSMAP_NAME], to=TensorProto.INT32),
    ])  # fmt: skip
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(CLASSMAP_NAME, TensorProto.INT32, [dims[0], *dims[2:]]))
    onnx.save(model, str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=parse_size, default=(1024, 512), help="logits WxH (1024x512)")
    args = parser.parse_args()
    classes, (width, height) = 20, args.size
    with tempfile.TemporaryDirectory() as work:
        logits = _logits_model(Path(work) / "logits.onnx", classes, width, height)
        head = Path(work) / "head.onnx"
        head.write_bytes(logits.read_bytes())
        append_classmap_head(head)
        sessions = {"argmax": ort_session(_argmax_model(logits, Path(work) / "argmax.onnx"), args.threads)}
        sessions["classmap_head"] = ort_session(head, args.threads)
        x = np.random.default_rng(0).standard_normal((1, classes, height, width)).astype(np.float32)
        outputs = {name: session.run(None, {"input": x})[0] for name, session in sessions.items()}  # warm-up
        assert np.array_equal(outputs["argmax"], outputs["classmap_head"])
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.runs):
            for name, session in sessions.items():
                started = time.perf_counter()
                session.run(None, {"input": x})
                times[name].append(time.perf_counter() - started)
    medians = {name: float(np.median(values)) * 1e3 for name, values in times.items()}
    print(
        f"1x{classes}x{height}x{width} FP32, {args.threads} thread(s), median of {args.runs} alternating runs: "
        f"ArgMax+Cast {medians['argmax']:.1f} ms, class-map head {medians['classmap_head']:.1f} ms "
        f"({medians['classmap_head'] / medians['argmax']:.2f}x)"
    )


if __name__ == "__main__":
    main()
