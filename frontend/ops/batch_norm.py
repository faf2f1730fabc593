"""BatchNormalization (inference form) -> folded into the preceding conv, else IR ``batch_norm``.

Folded into the conv's weight and bias when the conv output has no other reader, the conv
weight is a parameter whose values only that conv reads (Shape/Size readers are fine), and the
BN statistics (scale gamma[C], bias beta[C], mean[C], var[C]) are known at load time:
``W'[o] = W[o] * s[o]``, ``b'[o] = (b[o] - mean[o]) * s[o] + beta[o]``,
``s = gamma / sqrt(var + eps)`` (computed in float64, stored fp32). Otherwise it lowers to IR
``batch_norm`` (X[N, C, ...], scale, bias, mean, var -> Y; attr epsilon).
"""
from __future__ import annotations

import numpy as np
import onnx

from accelsim.ir import Instruction
from frontend.ops._common import claim_input, node_label
from frontend.registry import FrontendError, LoweringContext, lowering


def _static(ctx: LoweringContext, name: str) -> np.ndarray | None:
    """Load-time value of a constant or parameter tensor, else None."""
    if not name:
        return None
    if ctx.is_parameter(name):
        return ctx.initializers[name]
    return ctx.constant(name)


def _producer(ctx: LoweringContext, tensor: str) -> int | None:
    """Index in ``ctx.instructions`` of the last instruction writing ``tensor``, else None."""
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


def lower_batch_norm_unfolded(ctx: LoweringContext, node: onnx.NodeProto, epsilon: float) -> None:
    """BatchNormalization (inference) that could not be folded into a conv."""
    for index, role in ((1, "norm_scale"), (2, "norm_bias"), (3, "other"), (4, "other")):
        claim_input(ctx, node, index, role)
    ctx.emit("batch_norm", list(node.input[:5]), [node.output[0]], {"epsilon": epsilon}, name=node.name)


@lowering("BatchNormalization")
def lower_batch_normalization(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    outputs = [o for o in node.output if o]
    # training_mode is an attribute from opset 14 only; before, inference is the only form.
    if int(attrs.get("training_mode", 0)) or len(outputs) > 1:
        raise FrontendError(
            f"{node_label(node)}: training_mode=1 (batch statistics, running-stat outputs) is not "
            "supported; export the model in eval mode"
        )
    if ctx.opset < 9 and int(attrs["spatial"]) == 0:
        raise FrontendError(f"{node_label(node)}: spatial=0 (per-element statistics) is not supported")
    epsilon = float(attrs["epsilon"])
    if try_fold_batch_norm(ctx, node, epsilon):
        return
    lower_batch_norm_unfolded(ctx, node, epsilon)
