"""Exact graph rewrites before quantization: fold inference BatchNorm into the convolutions that feed it.

onnxsim folds Conv+BatchNorm, but not ConvTranspose+BatchNorm nor a BatchNorm after a Concat (ESPNet puts one
after every concatenation). A BatchNorm is a per-channel affine map, so after ``Concat(axis=1)`` it splits
into one affine map per input branch: a branch produced by a single-consumer Conv/ConvTranspose absorbs its
slice into the weights and bias; any other branch (a PReLU, a residual sum, a pooled image) keeps its slice
as a smaller BatchNorm. The Concat then produces the former BatchNorm output under its name, so every other
tensor of the graph (and therefore the TensorRT cache names) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

FOLDABLE_PRODUCERS = ("Conv", "ConvTranspose")


@dataclass(frozen=True)
class FoldReport:
    folded_into_conv: int  # BatchNorm slices absorbed into a convolution
    split_after_concat: int  # BatchNorms after a Concat split per branch
    kept: int  # BatchNorm (slices) that still run, in float

    def to_dict(self) -> dict[str, int]:
        return {
            "folded_into_conv": self.folded_into_conv,
            "split_after_concat": self.split_after_concat,
            "kept": self.kept,
        }


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.inits = {i.name: i for i in model.graph.initializer}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.graph_outputs = {o.name for o in model.graph.output}

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name]).astype(np.float32)

    def set_array(self, name: str, value: np.ndarray) -> None:
        self.inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    def add_array(self, name: str, value: np.ndarray) -> str:
        init = numpy_helper.from_array(value.astype(np.float32), name)
        self.model.graph.initializer.append(init)
        self.inits[name] = self.model.graph.initializer[-1]
        return name

    def sole_consumer(self, tensor: str) -> bool:
        return len(self.consumers.get(tensor, [])) == 1 and tensor not in self.graph_outputs


def _bn_affine(graph: _Graph, bn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    if any(name not in graph.inits for name in bn.input[1:5]):
        return None
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    gamma, beta, mean, var = (graph.array(n) for n in bn.input[1:5])
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _fold_into_conv(graph: _Graph, conv: onnx.NodeProto, scale: np.ndarray, shift: np.ndarray) -> bool:
    if conv.op_type not in FOLDABLE_PRODUCERS or conv.input[1] not in graph.inits:
        return False
    if len(conv.input) > 2 and conv.input[2] and conv.input[2] not in graph.inits:
        return False
    weight = graph.array(conv.input[1])
    if len(graph.consumers.get(conv.input[1], [])) > 1:
        return False  # a shared weight cannot take one consumer's scale
    if conv.op_type == "Conv":
        weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    else:  # ConvTranspose weight is (C_in, C_out / group, kH, kW); output channel = group block + column
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        shape = weight.shape
        blocks = weight.reshape(group, shape[0] // group, shape[1], *shape[2:])
        weight = (blocks * scale.reshape(group, 1, shape[1], *([1] * (len(shape) - 2)))).reshape(shape)
    graph.set_array(conv.input[1], weight)
    if len(conv.input) > 2 and conv.input[2]:
        graph.set_array(conv.input[2], graph.array(conv.input[2]) * scale + shift)
    else:
        bias_name = graph.add_array(f"{conv.name or conv.output[0]}_folded_bias", shift)
        while len(conv.input) < 3:
            conv.input.append("")
        conv.input[2] = bias_name
    return True


def _foldable(graph: _Graph, tensor: str) -> bool:
    source = graph.producer.get(tensor)
    return (
        source is not None
        and source.op_type in FOLDABLE_PRODUCERS
        and graph.sole_consumer(tensor)
        and source.input[1] in graph.inits
    )


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, FoldReport]:
    """A copy of ``model`` with BatchNorms folded into convolutions wherever that is exact."""
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    graph = _Graph(folded)
    into_conv = split = 0
    channels = _channel_counts(folded)
    remove: list[onnx.NodeProto] = []
    new_nodes: list[tuple[onnx.NodeProto, list[onnx.NodeProto]]] = []
    for bn in list(folded.graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        affine = _bn_affine(graph, bn)
        producer = graph.producer.get(bn.input[0])
        if affine is None or producer is None or not graph.sole_consumer(bn.input[0]):
            continue
        scale, shift = affine
        if producer.op_type in FOLDABLE_PRODUCERS:
            if _fold_into_conv(graph, producer, scale, shift):
                producer.output[0] = bn.output[0]
                remove.append(bn)
                into_conv += 1
            continue
        axis = next((a.i for a in producer.attribute if a.name == "axis"), 0)
        if producer.op_type != "Concat" or axis != 1:
            continue
        widths = [channels.get(name) for name in producer.input]
        if any(w is None for w in widths) or sum(w or 0 for w in widths) != scale.size:
            continue
        if not any(_foldable(graph, name) for name in producer.input):
            continue  # no branch would absorb its slice: one BatchNorm is simpler than one per branch
        inserted: list[onnx.NodeProto] = []
        offset = 0
        for index, (name, width) in enumerate(zip(list(producer.input), widths, strict=True)):
            assert width is not None
            part_scale, part_shift = scale[offset : offset + width], shift[offset : offset + width]
            offset += width
            source = graph.producer.get(name)
            if (
                source is not None
                and graph.sole_consumer(name)
                and _fold_into_conv(graph, source, part_scale, part_shift)
            ):
                into_conv += 1
                continue
            prefix = f"{bn.name or bn.output[0]}_branch{index}"
            branch = helper.make_node(
                "BatchNormalization",
                [
                    name,
                    *(
                        graph.add_array(f"{prefix}_{k}", v)
                        for k, v in (
                            ("scale", part_scale),
                            ("bias", part_shift),
                            ("mean", np.zeros_like(part_scale)),
                            ("var", np.ones_like(part_scale) - 1e-5),
                        )
                    ),
                ],
                [f"{prefix}_output"],
                name=prefix,
                epsilon=1e-5,
            )
            producer.input[index] = branch.output[0]
            inserted.append(branch)
        producer.output[0] = bn.output[0]
        remove.append(bn)
        new_nodes.append((producer, inserted))
        split += 1
    for node in remove:
        folded.graph.node.remove(node)
    for concat, branches in new_nodes:
        position = list(folded.graph.node).index(concat)
        for offset, branch in enumerate(branches):
            folded.graph.node.insert(position + offset, branch)
    kept = sum(1 for n in folded.graph.node if n.op_type == "BatchNormalization")
    return folded, FoldReport(into_conv, split, kept)


def _channel_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Dimension 1 of every tensor whose shape onnx can infer."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    counts = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) > 1 and dims[1].HasField("dim_value"):
            counts[info.name] = int(dims[1].dim_value)
    return counts
