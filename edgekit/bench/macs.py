"""Parameters and multiply-adds measured on the ONNX graph that actually runs, at its actual input size.

``edgekit.models.complexity.measure`` counts on the PyTorch module; this counts on the deployed graph (after BN
folding, simplification or Q/DQ insertion) with onnx shape inference, over the same operator set (Conv,
ConvTranspose, MatMul, Gemm), so the two agree on the same network and the bench needs no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from edgekit.errors import EdgekitError

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass(frozen=True)
class GraphStats:
    params: int  # elements of the weight initializers (Q/DQ scales and zero points excluded)
    macs: int  # multiply-adds per image of Conv/ConvTranspose/MatMul/Gemm
    macs_by_op: dict[str, int]
    batch: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def _static_shape(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    dims = value.type.tensor_type.shape.dim
    if not value.type.tensor_type.HasField("shape") or any(not d.HasField("dim_value") for d in dims):
        return None
    return tuple(int(d.dim_value) for d in dims)


def _node_macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]], batch: int) -> int:
    def shape(index: int) -> tuple[int, ...]:
        name = node.input[index] if index < len(node.input) else node.output[0]
        if name not in shapes:
            raise EdgekitError(f"cannot count MACs: shape of {name!r} ({node.op_type} {node.name}) is unknown")
        return shapes[name]

    if node.op_type not in MAC_OPS:
        return 0
    output = shapes.get(node.output[0])
    if output is None:
        raise EdgekitError(f"cannot count MACs: output shape of {node.op_type} {node.name} is unknown")
    if node.op_type == "Conv":
        weight = shape(1)  # [C_out, C_in/groups, kh, kw]
        return math.prod(output) // batch * math.prod(weight[1:])
    if node.op_type == "ConvTranspose":
        weight = shape(1)  # [C_in, C_out/groups, kh, kw]: every input element is scattered over C_out/g*kh*kw
        return math.prod(shape(0)) // batch * math.prod(weight[1:])
    if node.op_type == "Gemm":
        a = shape(0)
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        inner = a[0] if trans_a else a[1]
        return math.prod(output) // batch * inner
    if node.op_type == "MatMul":
        return math.prod(output) // batch * shape(0)[-1]
    return 0


def graph_stats(model: onnx.ModelProto | str | Path) -> GraphStats:
    """Count params and per-image MACs of an ONNX model (a symbolic batch axis is counted as 1)."""
    proto = (
        onnx.load(str(model))
        if isinstance(model, str | Path)
        else onnx.ModelProto.FromString(model.SerializeToString())
    )
    initializer_names = {init.name for init in proto.graph.initializer}
    symbolic = False
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name not in initializer_names and dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
            symbolic = True
    if symbolic:
        del proto.graph.value_info[:]  # shapes with the symbolic batch would survive re-inference
    inferred = shape_inference.infer_shapes(proto, data_prop=True)
    graph = inferred.graph
    shapes: dict[str, tuple[int, ...]] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        static = _static_shape(value)
        if static is not None:
            shapes[value.name] = static
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    feeds = [value for value in graph.input if value.name not in initializer_names]
    if not feeds or feeds[0].name not in shapes:
        raise EdgekitError("cannot count MACs: the model's input shape is dynamic; export it at a fixed size")
    batch = shapes[feeds[0].name][0]

    macs_by_op: dict[str, int] = {}
    for node in graph.node:
        count = _node_macs(node, shapes, batch)
        if count:
            macs_by_op[node.op_type] = macs_by_op.get(node.op_type, 0) + count

    qdq_parameters = {name for node in graph.node if node.op_type in QDQ_OPS for name in node.input[1:]}
    params = sum(
        int(np.prod(init.dims)) for init in graph.initializer if init.name not in qdq_parameters and _is_weight(init)
    )
    return GraphStats(params=params, macs=sum(macs_by_op.values()), macs_by_op=macs_by_op, batch=batch)


WEIGHT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
}


def _is_weight(init: onnx.TensorProto) -> bool:
    """Float and 8-bit tensors are weights; int64 shape/axes constants are not."""
    return init.data_type in WEIGHT_TYPES
