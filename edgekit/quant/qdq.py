"""Explicit Q/DQ graphs in the form TensorRT consumes, built with onnxruntime.quantization's QDQQuantizer.

Only the inputs of Conv/ConvTranspose are quantized (symmetric INT8 activations, per-channel symmetric INT8
weights with a Q/DQ pair each, FP32 bias, one dedicated Q/DQ pair per consumer): TensorRT fuses the rest
(BatchNorm, PReLU, residual Add, Concat) into the INT8 convolutions or runs it in float, which is what
NVIDIA's ModelOpt does through the same onnxruntime API. Quantizing every op's output instead — onnxruntime's
default — quantizes the logits before ArgMax and the BatchNorm *parameters* as per-tensor "weights"
(onnxruntime applies its weight quantizer to BatchNormalization scale/bias), which is a large part of why a
default Q/DQ ESPNet agrees with FP32 on under 10 % of the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference, version_converter

from edgekit.errors import EdgekitError
from edgekit.export import Fp16Report, convert_fp16

QUANTIZED_OPS = ("Conv", "ConvTranspose")
FP16_QDQ_OPSET = 19  # QuantizeLinear/DequantizeLinear take float16 inputs and scales from opset 19


@dataclass(frozen=True)
class ConvInfo:
    name: str
    op_type: str
    input: str  # the activation tensor quantized at this layer's input
    output: str
    macs: int  # multiply-adds for one image


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give every node a unique name: exclusions and reports refer to layers by node name."""
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
        seen.add(node.name)


def _dims(value_info: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else 1 for d in value_info.type.tensor_type.shape.dim]


def conv_layers(model: onnx.ModelProto) -> list[ConvInfo]:
    """Every Conv/ConvTranspose with its per-image MACs from inferred shapes (batch 1)."""
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: _dims(v) for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        weight = weights.get(node.input[1])
        if weight is None:
            continue  # weights computed at run time cannot be quantized per channel here
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kernel = int(np.prod(weight[2:]))
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            macs = int(np.prod(out[1:])) * weight[1] * kernel if out else 0
        else:
            inp = shapes.get(node.input[0])
            macs = int(np.prod(inp[1:])) * weight[1] * kernel if inp else 0
        del group  # Conv weight dim 1 is already in_channels/group; ConvTranspose dim 1 is out_channels/group
        layers.append(ConvInfo(node.name, node.op_type, node.input[0], node.output[0], macs))
    if not layers:
        raise EdgekitError("the model has no Conv/ConvTranspose layers with constant weights: nothing to run in INT8")
    return layers


def expose_tensors(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy whose graph outputs include ``names`` (for calibration and layer-by-layer comparison)."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in present:
            exposed.graph.output.append(helper.make_empty_tensor_value_info(name))
    return exposed


def activation_tensors(model: onnx.ModelProto) -> list[str]:
    """Every float activation produced by a node (the TensorRT cache wants them all), graph input first."""
    initializers = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    for node in model.graph.node:
        if node.op_type in ("Constant", "Shape", "ArgMax", "Cast"):
            continue
        names.extend(o for o in node.output if o)
    return list(dict.fromkeys(names))


def build_qdq(model: onnx.ModelProto, amax: dict[str, float], exclude: set[str]) -> onnx.ModelProto:
    """The Q/DQ model: conv inputs with the given symmetric ranges, excluded layers left in float."""
    from onnxruntime.quantization import CalibrationMethod, QDQQuantizer, QuantType
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    ranges = {
        name: TensorData(lowest=np.float32(-max(value, 1e-8)), highest=np.float32(max(value, 1e-8)))
        for name, value in amax.items()
    }
    work = onnx.ModelProto()
    work.CopyFrom(model)
    quantizer = QDQQuantizer(
        work,
        True,  # per_channel
        False,  # reduce_range
        QuantType.QInt8,
        QuantType.QInt8,
        TensorsData(CalibrationMethod.MinMax, ranges),
        [],  # nodes_to_quantize: all of the op types below
        sorted(exclude),
        list(QUANTIZED_OPS),
        {
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "AddQDQPairToWeight": True,
            "DedicatedQDQPair": True,
            "QuantizeBias": False,
            "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
            "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
            "ForceQuantizeNoInputCheck": True,
        },
    )
    quantizer.quantize_model()
    quantizer.model.topological_sort()  # QDQQuantizer appends Q/DQ nodes at the end of the node list
    result: onnx.ModelProto = quantizer.model.model
    _restore_float_consumers(result, exclude)
    return result


def _restore_float_consumers(model: onnx.ModelProto, exclude: set[str]) -> int:
    """Give every non-INT8 consumer of a quantized activation its float tensor back; returns how many.

    Work-around for onnxruntime.quantization (seen in 1.17-1.23): even with ``DedicatedQDQPair`` the
    QDQQuantizer reroutes *all* consumers of a tensor it quantizes for one Conv through the same
    DequantizeLinear — ESPNet's residual Adds, its Concats and the AveragePools of the input image then see
    INT8-rounded values, so the residual stream is re-quantized at every ESP module and the tiny-range
    pooled image (x/255 of normalised pixels) is rounded before a BatchNorm that multiplies it ~100x. Measured
    on official ESPNet at 512x256 (percentile): 92.5 % pixel agreement with the rerouting, 96.5 % without.
    """
    producers = {o: n for n in model.graph.node for o in n.output}
    restored = 0
    for node in model.graph.node:
        if node.op_type in QUANTIZED_OPS and node.name not in exclude:
            continue
        for index, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producers.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear" or q.input[0] in _initializer_names(model):
                continue
            node.input[index] = q.input[0]
            restored += 1
    return restored


def _initializer_names(model: onnx.ModelProto) -> set[str]:
    return {i.name for i in model.graph.initializer}


def int8_weight_layers(model: onnx.ModelProto) -> set[str]:
    """Names of the conv layers whose input and weight both pass through a DequantizeLinear."""
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {
        n.name
        for n in model.graph.node
        if n.op_type in QUANTIZED_OPS and n.input[0] in dequantized and n.input[1] in dequantized
    }


def weight_array(model: onnx.ModelProto, name: str) -> np.ndarray:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise KeyError(name)


def fake_quant_weight(weight: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric per-channel INT8 quantize-dequantize, as QDQQuantizer does it for Conv/ConvTranspose."""
    moved = np.moveaxis(weight, axis, 0)
    amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [-1] + [1] * (moved.ndim - 1)
    quantized = np.clip(np.round(moved / scale.reshape(shape)), -127, 127) * scale.reshape(shape)
    return np.moveaxis(quantized.astype(np.float32), 0, axis)


def mask_model(model: onnx.ModelProto, layers: list[ConvInfo], amax: dict[str, float]) -> onnx.ModelProto:
    """One graph that simulates any subset of INT8 layers: conv k sees ``x + m_k * (QDQ(x) - x)``.

    ``m_k`` is a scalar graph input ``qmask_k`` (1 = INT8, 0 = float) and the weight is ``W + m_k * dW`` with
    ``dW = QDQ(W) - W``. Per-layer sensitivity and the mixed-precision search then need one onnxruntime session
    instead of one Q/DQ model and session per candidate; the final model is still built and measured as real Q/DQ.
    """
    simulated = onnx.ModelProto()
    simulated.CopyFrom(model)
    graph = simulated.graph
    inits = {i.name: i for i in graph.initializer}
    by_name = {n.name: n for n in graph.node}
    for index, layer in enumerate(layers):
        node = by_name[layer.name]
        mask = f"qmask_{index}"
        graph.input.append(helper.make_tensor_value_info(mask, onnx.TensorProto.FLOAT, []))
        scale = max(amax.get(layer.input, 0.0), 1e-8) / 127.0
        prefix = f"{layer.name}_sim"
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        delta = fake_quant_weight(weight, 0 if node.op_type == "Conv" else 1) - weight
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, np.float32), f"{prefix}_scale"),
                numpy_helper.from_array(np.array(0, np.int8), f"{prefix}_zero"),
                numpy_helper.from_array(delta, f"{prefix}_dw"),
            ]
        )
        new_nodes = [
            helper.make_node("QuantizeLinear", [node.input[0], f"{prefix}_scale", f"{prefix}_zero"], [f"{prefix}_q"]),
            helper.make_node(
                "DequantizeLinear", [f"{prefix}_q", f"{prefix}_scale", f"{prefix}_zero"], [f"{prefix}_dq"]
            ),
            helper.make_node("Sub", [f"{prefix}_dq", node.input[0]], [f"{prefix}_dx"]),
            helper.make_node("Mul", [f"{prefix}_dx", mask], [f"{prefix}_mdx"]),
            helper.make_node("Add", [node.input[0], f"{prefix}_mdx"], [f"{prefix}_x"]),
            helper.make_node("Mul", [f"{prefix}_dw", mask], [f"{prefix}_mdw"]),
            helper.make_node("Add", [node.input[1], f"{prefix}_mdw"], [f"{prefix}_w"]),
        ]
        position = list(graph.node).index(node)
        for offset, extra in enumerate(new_nodes):
            graph.node.insert(position + offset, extra)
        node.input[0], node.input[1] = f"{prefix}_x", f"{prefix}_w"
    return simulated


def probe_model(
    model: onnx.ModelProto, layers: list[ConvInfo], amax: dict[str, float]
) -> tuple[onnx.ModelProto, list[str]]:
    """The float graph plus, per conv, an INT8 twin fed the same float input; outputs its local error.

    One forward pass yields every layer's relative output error ``|y_int8 - y|^2 / |y|^2`` with all other layers
    in float: the per-layer error measurement behind the sensitivity ranking (cheap: one extra conv per layer).
    """
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    graph = probe.graph
    inits = {i.name: i for i in graph.initializer}
    by_name = {n.name: n for n in graph.node}
    outputs = []
    for layer in layers:
        node = by_name[layer.name]
        prefix = f"{layer.name}_probe"
        scale = max(amax.get(layer.input, 0.0), 1e-8) / 127.0
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, np.float32), f"{prefix}_scale"),
                numpy_helper.from_array(np.array(0, np.int8), f"{prefix}_zero"),
                numpy_helper.from_array(fake_quant_weight(weight, 0 if node.op_type == "Conv" else 1), f"{prefix}_w"),
            ]
        )
        twin = helper.make_node(node.op_type, [f"{prefix}_dq", f"{prefix}_w", *node.input[2:]], [f"{prefix}_y"])
        twin.attribute.extend(node.attribute)
        graph.node.extend(
            [
                helper.make_node(
                    "QuantizeLinear", [node.input[0], f"{prefix}_scale", f"{prefix}_zero"], [f"{prefix}_q"]
                ),
                helper.make_node(
                    "DequantizeLinear", [f"{prefix}_q", f"{prefix}_scale", f"{prefix}_zero"], [f"{prefix}_dq"]
                ),
                twin,
                helper.make_node("Sub", [f"{prefix}_y", node.output[0]], [f"{prefix}_d"]),
                helper.make_node("ReduceSumSquare", [f"{prefix}_d"], [f"{prefix}_noise"], keepdims=0),
                helper.make_node("ReduceSumSquare", [node.output[0]], [f"{prefix}_signal"], keepdims=0),
            ]
        )
        for name in (f"{prefix}_noise", f"{prefix}_signal"):
            graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, []))
            outputs.append(name)
    return probe, outputs


def qdq_to_fp16(qdq: Path, output: Path, tolerance: float = 0.05) -> Fp16Report:
    """The Q/DQ model with FP16 everywhere but its INT8 pairs, for strongly typed TensorRT (11.x): there the layers
    the mixed-precision search kept in float run at the ONNX's own type, FP32 in the model ``quantize_int8``
    writes, where TensorRT 8.x-10.x ran them in FP16 through the FP16 flag. The scales become FP16 too, which
    needs opset 19 (``qdq`` is raised to it); verified against ``qdq`` in onnxruntime (``export.convert_fp16``,
    which refuses below ``1 - tolerance`` pixel agreement).
    """
    qdq, output = Path(qdq), Path(output)
    model = onnx.load(str(qdq))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    staged = output.with_name(f".{output.name}.opset{FP16_QDQ_OPSET}")
    if opset < FP16_QDQ_OPSET:
        model = version_converter.convert_version(model, FP16_QDQ_OPSET)
    onnx.save(model, str(staged))
    try:
        return convert_fp16(staged, output, tolerance=tolerance)
    finally:
        staged.unlink()
