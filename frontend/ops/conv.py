"""Conv -> IR ``conv``; BatchNormalization folded into the preceding conv when it can be.

Attribute normalisation (every default filled): ``kernel_shape`` from W when absent,
``strides``/``dilations`` 1, ``group`` 1, ``pads`` explicit (begin..., end...) — ``auto_pad``
SAME_UPPER / SAME_LOWER / VALID is resolved here from the static spatial input shape.

BatchNormalization (inference form) after a Conv is folded into the conv's weight and bias
when the conv output has no other reader, the conv weight is a parameter whose values only
that conv reads (Shape/Size readers are fine), and the BN statistics are known at load time:
``W'[o] = W[o] * s[o]``, ``b'[o] = (b[o] - mean[o]) * s[o] + beta[o]``,
``s = gamma / sqrt(var + eps)`` (computed in float64, stored fp32). Otherwise it lowers to
IR ``batch_norm`` (``frontend/ops/normalization.py``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import onnx

from accelsim.ir import Instruction
from frontend.registry import FrontendError, LoweringContext, lowering


def node_label(node: onnx.NodeProto) -> str:
    """``node 'name' (OpType)`` for one-line errors."""
    return f"node {node.name or node.output[0]!r} ({node.op_type})"


def int_list(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def spatial_shape(ctx: LoweringContext, node: onnx.NodeProto, rank: int, why: str) -> tuple[int, ...]:
    """Static spatial dims of the node's first input; error naming ``why`` if unknown."""
    shape = ctx.shape(node.input[0])
    if shape is None or len(shape) != rank + 2 or not all(isinstance(d, int) for d in shape[2:]):
        raise FrontendError(
            f"{node_label(node)}: {why} needs a static spatial input shape, got {shape}"
        )
    return tuple(int(d) for d in shape[2:])


def resolve_pads(
    ctx: LoweringContext,
    node: onnx.NodeProto,
    attrs: dict[str, Any],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> tuple[int, ...]:
    """Explicit (begin..., end...) pads from ``pads`` / ``auto_pad``."""
    rank = len(kernel_shape)
    auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "NOTSET":
        pads = int_list(attrs.get("pads", [0] * 2 * rank))
        if len(pads) != 2 * rank:
            raise FrontendError(f"{node_label(node)}: pads={list(pads)} needs {2 * rank} values")
        return pads
    if auto_pad == "VALID":
        return (0,) * 2 * rank
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise FrontendError(f"{node_label(node)}: auto_pad={auto_pad} is not an ONNX value")
    spatial = spatial_shape(ctx, node, rank, f"auto_pad={auto_pad}")
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel_shape, strides, dilations):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return tuple(begin + end)


@lowering("Conv")
def lower_conv(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    weight = node.input[1]
    w_shape = ctx.shape(weight)
    kernel_shape = attrs.get("kernel_shape")
    if kernel_shape is None:
        if w_shape is None or not all(isinstance(d, int) for d in w_shape[2:]):
            raise FrontendError(f"{node_label(node)}: kernel_shape absent and W's shape unknown")
        kernel_shape = w_shape[2:]
    kernel_shape = int_list(kernel_shape)
    if w_shape is not None and all(isinstance(d, int) for d in w_shape[2:]) and (
        tuple(w_shape[2:]) != kernel_shape
    ):
        raise FrontendError(
            f"{node_label(node)}: kernel_shape={list(kernel_shape)} differs from W's {list(w_shape)}"
        )
    rank = len(kernel_shape)
    strides = int_list(attrs.get("strides", [1] * rank))
    dilations = int_list(attrs.get("dilations", [1] * rank))
    pads = resolve_pads(ctx, node, attrs, kernel_shape, strides, dilations)
    if ctx.is_parameter(weight):
        ctx.claim_parameter(weight, node, "weight", channel_axis=0)
    bias = node.input[2] if len(node.input) > 2 else ""
    if bias and ctx.is_parameter(bias):
        ctx.claim_parameter(bias, node, "bias", channel_axis=None)
    ctx.emit(
        "conv",
        [node.input[0], weight, bias],
        [node.output[0]],
        {"strides": strides, "pads": pads, "dilations": dilations, "group": int(attrs.get("group", 1))},
        name=node.name,
    )


# ------------------------------------------------------------------ BatchNormalization
def _static(ctx: LoweringContext, name: str) -> np.ndarray | None:
    """Load-time value of a constant or parameter tensor, else None."""
    if not name:
        return None
    if ctx.is_parameter(name):
        return ctx.initializers[name]
    return ctx.constant(name)


def _producer(ctx: LoweringContext, tensor: str) -> int | None:
    for index in range(len(ctx.instructions) - 1, -1, -1):
        if tensor in ctx.instructions[index].outputs:
            return index
    return None


def try_fold_batch_norm(ctx: LoweringContext, node: onnx.NodeProto, epsilon: float) -> bool:
    """Fold ``node`` (BatchNormalization) into the conv producing its input; True if done."""
    x = node.input[0]
    index = _producer(ctx, x)
    if index is None or ctx.reader_count(x) != 1:
        return False
    conv = ctx.instructions[index]
    if conv.op != "conv" or len(conv.outputs) != 1:
        return False
    weight = conv.inputs[1]
    if not ctx.is_parameter(weight) or ctx.reader_count(weight, values_only=True) != 1:
        return False
    stats = [_static(ctx, name) for name in node.input[1:5]]
    if any(value is None for value in stats):
        return False
    bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
    old_bias = _static(ctx, bias) if bias else np.zeros(1, np.float32)
    if old_bias is None or (
        bias and ctx.is_parameter(bias) and ctx.reader_count(bias, values_only=True) != 1
    ):
        return False
    out_channels = ctx.initializers[weight].shape[0]
    gamma, beta, mean, var = (
        np.broadcast_to(np.asarray(v, dtype=np.float64).ravel(), (out_channels,)) for v in stats
    )
    scale = gamma / np.sqrt(var + np.float64(epsilon))
    w = ctx.initializers[weight].astype(np.float64)
    new_w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    b = np.broadcast_to(np.asarray(old_bias, dtype=np.float64).ravel(), (out_channels,))
    new_b = (b - mean) * scale + beta
    bn_inputs = "+".join(n for n in node.input[1:5])
    ctx.replace_parameter_value(weight, new_w, source=f"{weight} (BatchNorm {bn_inputs} folded)")
    provenance = f"{bias or 'zero bias'} (BatchNorm {bn_inputs} folded)"
    if bias and ctx.is_parameter(bias):
        ctx.replace_parameter_value(bias, new_b, source=provenance)
        bias_name = bias
    else:
        stem = weight[: -len(".weight")] if weight.endswith(".weight") else weight
        bias_name = ctx.add_parameter(
            f"{stem}.bias", new_b, conv.name, role="bias", channel_axis=None, source=provenance
        )
    ctx.instructions[index] = Instruction(
        conv.op, conv.name, (conv.inputs[0], weight, bias_name), (node.output[0],), dict(conv.attrs)
    )
    return True


@lowering("BatchNormalization")
def lower_batch_normalization(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    from frontend.ops.normalization import lower_batch_norm_unfolded

    attrs = ctx.attrs(node)
    outputs = [o for o in node.output if o]
    if int(attrs.get("training_mode", 0)) or len(outputs) > 1:
        raise FrontendError(
            f"{node_label(node)}: training_mode=1 (batch statistics, running-stat outputs) is not "
            "supported; export the model in eval mode"
        )
    if ctx.opset < 9 and int(attrs.get("spatial", 1)) == 0:
        raise FrontendError(f"{node_label(node)}: spatial=0 (per-element statistics) is not supported")
    epsilon = float(attrs.get("epsilon", 1e-5))
    if try_fold_batch_norm(ctx, node, epsilon):
        return
    lower_batch_norm_unfolded(ctx, node, epsilon)
