"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool -> IR pooling ops.

Normalised attributes: ``kernel_shape``, ``strides`` (default 1), ``pads`` (explicit,
auto_pad resolved from the static input shape), ``dilations`` (default 1), ``ceil_mode``
(default 0; forced to 0 with auto_pad, whose pads already give the output size),
``count_include_pad`` (AveragePool, default 0), ``storage_order`` (MaxPool, default 0).
Defaults come from the ONNX schema (``ctx.attrs``) except strides/dilations (no schema
default: their length is the kernel rank) and attributes an older opset lacks (ceil_mode
before 10, dilations before 10/19, count_include_pad before 7, storage_order before 8).
"""
from __future__ import annotations

import onnx

from frontend.ops._common import int_list, node_label, resolve_pads
from frontend.registry import FrontendError, LoweringContext, lowering


def _window_attrs(ctx: LoweringContext, node: onnx.NodeProto) -> tuple[dict, dict]:
    """(normalised window attrs, the node's raw attrs)."""
    attrs = ctx.attrs(node)
    if "kernel_shape" not in attrs:
        raise FrontendError(f"{node_label(node)}: kernel_shape is required")
    kernel_shape = int_list(attrs["kernel_shape"])
    rank = len(kernel_shape)
    strides = int_list(attrs.get("strides", [1] * rank))
    dilations = int_list(attrs.get("dilations", [1] * rank))
    auto_pad = attrs["auto_pad"] or "NOTSET"
    pads = resolve_pads(ctx, node, attrs, kernel_shape, strides, dilations)
    if auto_pad == "VALID" and int(attrs.get("ceil_mode", 0)):
        raise FrontendError(f"{node_label(node)}: auto_pad=VALID with ceil_mode=1 is ambiguous")
    window = {
        "kernel_shape": kernel_shape,
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "ceil_mode": 0 if auto_pad != "NOTSET" else int(attrs.get("ceil_mode", 0)),
    }
    return window, attrs


@lowering("MaxPool")
def lower_max_pool(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    window, raw = _window_attrs(ctx, node)
    window["storage_order"] = int(raw.get("storage_order", 0))
    outputs = list(node.output)
    if len(outputs) > 1 and not outputs[1]:
        outputs = outputs[:1]
    ctx.emit("max_pool", [node.input[0]], outputs, window, name=node.name)


@lowering("AveragePool")
def lower_average_pool(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    window, raw = _window_attrs(ctx, node)
    window["count_include_pad"] = int(raw.get("count_include_pad", 0))
    ctx.emit("avg_pool", [node.input[0]], [node.output[0]], window, name=node.name)


@lowering("GlobalAveragePool")
def lower_global_average_pool(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    ctx.emit("global_avg_pool", [node.input[0]], [node.output[0]], {}, name=node.name)


@lowering("GlobalMaxPool")
def lower_global_max_pool(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    ctx.emit("global_max_pool", [node.input[0]], [node.output[0]], {}, name=node.name)
