"""The FP32 model as quantization reads it: checked, its conv layers listed, BatchNorm folded where exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgekit.errors import EdgekitError
from edgekit.export import load_onnx, read_metadata
from edgekit.quant.fold import FoldReport, fold_batchnorm
from edgekit.quant.qdq import ConvInfo, conv_layers, ensure_node_names


@dataclass
class Fp32Model:
    path: Path
    model: onnx.ModelProto  # as exported, node names ensured: ranges are taken here, its metadata is kept
    folded: onnx.ModelProto  # BatchNorm folded into convs: the graph every simulated and Q/DQ model starts from
    folding: FoldReport
    input_name: str
    input_dtype: str  # float32, or uint8 for a model that normalises in-graph
    layers: list[ConvInfo]  # every Conv/ConvTranspose, in graph order: the layers INT8 can take

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers) or 1

    @property
    def input_hw(self) -> tuple[int, int]:
        dims = _graph_input(self.model).type.tensor_type.shape.dim
        return int(dims[2].dim_value), int(dims[3].dim_value)

    def class_names(self, num_classes: int) -> list[str]:
        """The class names of the edgekit metadata, or ``class <i>`` for a bare ONNX."""
        try:
            names = list(read_metadata(self.path, self.model).classes.names)
        except EdgekitError:
            names = []
        return names if len(names) == num_classes else [f"class {i}" for i in range(num_classes)]


def load_fp32(path: Path, exclude: Sequence[str]) -> Fp32Model:
    """The model at ``path``, refused when it outputs no float logits or ``exclude`` names no conv layer."""
    model = load_onnx(path)
    ensure_node_names(model)
    graph_input = _graph_input(model)
    dtype = "uint8" if graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8 else "float32"
    if model.graph.output[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise EdgekitError(
            f"{path} does not output float logits (ArgMax?); quantize the model exported without --argmax"
        )
    layers = conv_layers(model)
    unknown = set(exclude) - {layer.name for layer in layers}
    if unknown:
        raise EdgekitError(f"--exclude names no conv layer: {', '.join(sorted(unknown))}")
    folded, folding = fold_batchnorm(model)
    return Fp32Model(path, model, folded, folding, graph_input.name, dtype, layers)


def _graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    initializers = {i.name for i in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in initializers)
