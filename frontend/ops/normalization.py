"""Normalisation, softmax-family and reduction ops -> IR (see accelsim/kernels/normalization.py).

Opset differences handled here so kernels never guess:

* Softmax / LogSoftmax / Hardmax before opset 13 coerce the input to 2-D at ``axis``
  (default 1): the IR op normalises over all axes from ``axis`` on. From 13: one axis,
  default -1.
* ReduceSum before opset 13 and the other reductions before opset 18 take ``axes`` as an
  attribute; later as an optional input. A constant axes input becomes the ``axes``
  attribute; a run-time one stays an operand. No axes = all axes unless
  ``noop_with_empty_axes``.
* GroupNormalization opset 18-20 has per-group scale/bias, opset 21 per-channel.

Attribute defaults (epsilon, axis, keepdims, ...) come from the ONNX schema at the model's
opset (``ctx.attrs``); a rule writes one only for an attribute that its op lacks at older
opsets. BatchNormalization is in ``frontend/ops/batch_norm.py``.
"""
from __future__ import annotations

import onnx

from frontend.ops._common import claim_input, node_label
from frontend.registry import FrontendError, LoweringContext, lowering


def present_outputs(ctx: LoweringContext, node: onnx.NodeProto) -> list[str]:
    """Node outputs with trailing absent ones dropped and inner absent ones given fresh names."""
    outputs = list(node.output)
    while outputs and not outputs[-1]:
        outputs.pop()
    return [name or ctx.fresh_tensor(f"{node.name or node.op_type}_unused") for name in outputs]


def _rank(ctx: LoweringContext, node: onnx.NodeProto, why: str) -> int:
    shape = ctx.shape(node.input[0])
    if shape is None:
        raise FrontendError(f"{node_label(node)}: {why} needs the input rank, which is unknown")
    return len(shape)


@lowering("LayerNormalization")
def lower_layer_normalization(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    claim_input(ctx, node, 1, "norm_scale")
    claim_input(ctx, node, 2, "norm_bias")
    inputs = list(node.input[:3]) + [""] * (3 - len(node.input[:3]))
    ctx.emit(
        "layer_norm", inputs, present_outputs(ctx, node),
        {"axis": int(attrs["axis"]), "epsilon": float(attrs["epsilon"])},
        name=node.name,
    )


@lowering("RMSNormalization")
def lower_rms_normalization(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    claim_input(ctx, node, 1, "norm_scale")
    ctx.emit(
        "rms_norm", list(node.input[:2]), [node.output[0]],
        {"axis": int(attrs["axis"]), "epsilon": float(attrs["epsilon"])},
        name=node.name,
    )


@lowering("InstanceNormalization")
def lower_instance_normalization(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    claim_input(ctx, node, 1, "norm_scale")
    claim_input(ctx, node, 2, "norm_bias")
    ctx.emit("instance_norm", list(node.input[:3]), [node.output[0]],
             {"epsilon": float(attrs["epsilon"])}, name=node.name)


@lowering("GroupNormalization")
def lower_group_normalization(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    if "num_groups" not in attrs:
        raise FrontendError(f"{node_label(node)}: num_groups is required")
    claim_input(ctx, node, 1, "norm_scale")
    claim_input(ctx, node, 2, "norm_bias")
    ctx.emit(
        "group_norm", list(node.input[:3]), [node.output[0]],
        {"num_groups": int(attrs["num_groups"]), "epsilon": float(attrs["epsilon"]),
         "per_group_affine": int(ctx.opset < 21)},
        name=node.name,
    )


_SOFTMAX = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Hardmax": "hardmax"}


@lowering(*_SOFTMAX)
def lower_softmax(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    if ctx.opset >= 13:
        axes = (int(attrs["axis"]),)  # schema default -1
    else:
        rank = _rank(ctx, node, "coerce-to-2-D semantics (opset < 13)")
        axis = int(attrs["axis"]) % max(rank, 1)  # schema default 1
        axes = tuple(range(axis, rank))
    ctx.emit(_SOFTMAX[node.op_type], [node.input[0]], [node.output[0]], {"axes": axes}, name=node.name)


_REDUCE = {
    "ReduceSum": ("reduce_sum", 13),
    "ReduceMean": ("reduce_mean", 18),
    "ReduceMax": ("reduce_max", 18),
    "ReduceMin": ("reduce_min", 18),
    "ReduceProd": ("reduce_prod", 18),
    "ReduceL1": ("reduce_l1", 18),
    "ReduceL2": ("reduce_l2", 18),
    "ReduceLogSum": ("reduce_log_sum", 18),
    "ReduceLogSumExp": ("reduce_log_sum_exp", 18),
    "ReduceSumSquare": ("reduce_sum_square", 18),
}


@lowering(*_REDUCE)
def lower_reduce(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    op, axes_input_since = _REDUCE[node.op_type]
    noop = int(attrs.get("noop_with_empty_axes", 0))  # attribute only from opset 13 / 18
    inputs = [node.input[0]]
    if ctx.opset < axes_input_since:
        axes = attrs.get("axes")
        axes = None if axes is None else tuple(int(a) for a in axes)
    else:
        if "axes" in attrs:
            raise FrontendError(f"{node_label(node)}: axes is an input from opset {axes_input_since}")
        axes_name = node.input[1] if len(node.input) > 1 else ""
        value = ctx.constant(axes_name) if axes_name else None
        if axes_name and value is None:
            axes = None
            inputs.append(axes_name)  # known only at run time
        elif value is None or value.size == 0:
            axes = () if noop else None
        else:
            axes = tuple(int(a) for a in value.ravel())
    ctx.emit(
        op, inputs, [node.output[0]],
        {"axes": axes, "keepdims": int(attrs["keepdims"]), "noop_with_empty_axes": noop},
        name=node.name,
    )


@lowering("ArgMax", "ArgMin")
def lower_arg_extreme(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    ctx.emit(
        node.op_type.lower(), [node.input[0]], [node.output[0]],
        {"axis": int(attrs["axis"]), "keepdims": int(attrs["keepdims"]),
         # select_last_index is an attribute from opset 12 only
         "select_last_index": int(attrs.get("select_last_index", 0))},
        name=node.name,
    )
