"""Conv -> IR ``conv``.

Attribute normalisation (every default filled): ``kernel_shape`` from W when absent,
``strides``/``dilations`` 1, ``group`` 1 (the schema default), ``pads`` explicit (begin...,
end...) — ``auto_pad`` SAME_UPPER / SAME_LOWER / VALID is resolved from the static spatial
input shape (``frontend/ops/_common.py``). BatchNormalization after a Conv is folded into it
by ``frontend/ops/batch_norm.py``.
"""
from __future__ import annotations

import onnx

from frontend.ops._common import int_list, node_label, resolve_pads
from frontend.registry import FrontendError, LoweringContext, lowering


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
    # No schema default for strides/dilations (or kernel_shape, pads): their length is the
    # kernel rank, so the rule fills them.
    strides = int_list(attrs.get("strides", [1] * rank))
    dilations = int_list(attrs.get("dilations", [1] * rank))
    pads = resolve_pads(ctx, node, attrs, kernel_shape, strides, dilations)
    group = int(attrs["group"])
    _check_group(ctx, node, group, w_shape)
    _check_bias(ctx, node, w_shape)
    if ctx.is_parameter(weight):
        ctx.claim_parameter(weight, node, "weight", channel_axis=0)
    bias = node.input[2] if len(node.input) > 2 else ""
    if bias and ctx.is_parameter(bias):
        ctx.claim_parameter(bias, node, "bias", channel_axis=None)
    ctx.emit(
        "conv",
        [node.input[0], weight, bias],
        [node.output[0]],
        {"strides": strides, "pads": pads, "dilations": dilations, "group": group},
        name=node.name,
    )


def _check_group(ctx: LoweringContext, node: onnx.NodeProto, group: int, w_shape) -> None:
    """group >= 1 dividing W's output channels, and X's channels = W's input channels x group
    (where the shapes are known at load time)."""
    if group < 1:
        raise FrontendError(f"{node_label(node)}: group={group} must be >= 1")
    if w_shape is None or len(w_shape) < 2 or not all(isinstance(d, int) for d in w_shape[:2]):
        return
    if w_shape[0] % group:
        raise FrontendError(f"{node_label(node)}: group={group} does not divide W's {w_shape[0]} output channels")
    x_shape = ctx.shape(node.input[0])
    if x_shape is not None and len(x_shape) > 1 and isinstance(x_shape[1], int) and x_shape[1] != w_shape[1] * group:
        raise FrontendError(f"{node_label(node)}: X has {x_shape[1]} channels, W {list(w_shape)} with group={group} "
                            f"needs {w_shape[1] * group}")


def _check_bias(ctx: LoweringContext, node: onnx.NodeProto, w_shape) -> None:
    """B, when present, is 1-D with one value per output channel of W."""
    if len(node.input) < 3 or not node.input[2]:
        return
    b_shape = ctx.shape(node.input[2])
    if b_shape is None:
        return
    if len(b_shape) != 1 or (w_shape and isinstance(w_shape[0], int) and isinstance(b_shape[0], int)
                             and b_shape[0] != w_shape[0]):
        raise FrontendError(f"{node_label(node)}: B has shape {list(b_shape)}; it needs one value per output "
                            f"channel of W {list(w_shape or [])}")
