"""Layout and shape ONNX ops -> IR layout ops (see ``accelsim/kernels/layout.py``).

Covers Constant, Identity, Dropout (inference), Reshape, Transpose, Concat, Slice, Squeeze,
Unsqueeze, Flatten, Expand, Split, Shape, Size, Range, ConstantOfShape, Tile, Pad, Trilu,
EyeLike. Every IR attribute is filled (ONNX schema defaults come from ``ctx.attrs``; a rule
writes a default only where the op lacks the attribute at older opsets or the schema has
none); opset differences are normalised:

* Slice: attributes before opset 10, inputs after; absent axes/steps become constants
  ``range(len(starts))`` / ones. Negative axes are kept (the kernel indexes from the end).
* Squeeze/Unsqueeze: ``axes`` attribute before opset 13, input after; a constant input
  becomes the ``axes`` attribute, a run-time one stays an operand (attribute None).
* Split: ``split`` attribute before opset 13, input after; ``num_outputs`` (opset 18) or the
  node's output count gives n; constant sizes become the ``split`` attribute.
* Pad: pads/value attributes before opset 11, inputs after (axes input from opset 18).
* Reshape: shape attribute before opset 5; allowzero from opset 14 (default 0).

Shape arithmetic on constants folds at load time (``LoweringContext.emit``); Shape/Size of a
parameter folds too (its shape is fixed), so no instruction reads a parameter just for its
shape. Shape of an activation stays a run-time instruction (batch sizes may change).
"""
from __future__ import annotations

import numpy as np
import onnx

from frontend.ops._common import node_label
from frontend.registry import FrontendError, LoweringContext, lowering, numpy_dtype

_PAD_MODES = ("constant", "edge", "reflect", "wrap")


def _input(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if index < len(node.input) else ""


def _float32_if_float(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype.kind == "f" else value


def _int_const(ctx: LoweringContext, values, hint: str) -> str:
    return ctx.add_constant(np.asarray(values, dtype=np.int64).reshape(-1), hint)


def _static_shape(ctx: LoweringContext, name: str) -> tuple[int, ...] | None:
    """Shape of a parameter or constant (fixed at load time), else None."""
    if ctx.is_parameter(name):
        return tuple(int(d) for d in ctx.initializers[name].shape)
    value = ctx.constant(name)
    return None if value is None else tuple(value.shape)


# --------------------------------------------------------------------------- trivial ops
@lowering("Constant")
def lower_constant(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Constant -> a load-time constant (float values stored as fp32)."""
    attrs = ctx.attrs(node)
    if "value" in attrs:
        value = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        value = np.array(attrs["value_ints"], dtype=np.int64)
    else:
        kind = next(iter(attrs), "none")
        raise FrontendError(f"{node_label(node)}: attribute {kind} is not supported (numeric tensors only)")
    if value.dtype.kind not in "fiub":
        raise FrontendError(f"{node_label(node)}: attribute value of type {value.dtype} is not supported")
    ctx.constants[node.output[0]] = _float32_if_float(value)


@lowering("Identity")
def lower_identity(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    ctx.alias(node.output[0], node.input[0])


@lowering("Dropout")
def lower_dropout(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Inference Dropout: Y = X; the optional mask output is all True."""
    attrs = ctx.attrs(node)
    training = ctx.require_constant(node, 2, "training_mode (inference only)")
    training = bool(np.asarray(training).reshape(())) if training is not None else (
        ctx.opset < 7 and not attrs["is_test"])
    if training:
        ratio = ctx.require_constant(node, 1, "ratio of a training-mode Dropout")
        # Before opset 12 the schema gives attribute ratio (0.5); from 12 ratio is an optional
        # input whose default 0.5 no attribute schema carries.
        ratio = float(attrs.get("ratio", 0.5)) if ratio is None else float(np.asarray(ratio).reshape(()))
        if ratio != 0.0:
            raise FrontendError(f"{node_label(node)}: training-mode Dropout (ratio {ratio}) is random; not supported")
    ctx.alias(node.output[0], node.input[0])
    if len(node.output) > 1 and node.output[1]:
        shape = ctx.fresh_tensor(f"{node.output[1]}_shape")
        ctx.emit("shape", [node.input[0]], [shape], {"start": 0, "end": None}, name=f"{node.name}::mask_shape")
        ctx.emit("constant_of_shape", [shape], [node.output[1]], {"value": True, "dtype": "bool"},
                 name=f"{node.name}::mask")


# --------------------------------------------------------------------------- views
@lowering("Reshape")
def lower_reshape(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    if ctx.opset < 5 or "shape" in attrs:
        shape = _int_const(ctx, attrs.get("shape", []), f"{node.output[0]}_shape")
    else:
        shape = node.input[1]
    allowzero = int(attrs.get("allowzero", 0))  # an attribute from opset 14 only
    ctx.emit("reshape", [node.input[0], shape], [node.output[0]], {"allowzero": allowzero}, name=node.name)


@lowering("Transpose")
def lower_transpose(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    perm = ctx.attrs(node).get("perm")
    if perm is None:
        shape = ctx.shape(node.input[0])
        perm = None if shape is None else tuple(reversed(range(len(shape))))
    ctx.emit("transpose", [node.input[0]], [node.output[0]],
             {"perm": None if perm is None else tuple(int(p) for p in perm)}, name=node.name)


@lowering("Concat")
def lower_concat(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    if "axis" not in attrs:
        raise FrontendError(f"{node_label(node)}: attribute axis is required")
    ctx.emit("concat", list(node.input), [node.output[0]], {"axis": int(attrs["axis"])}, name=node.name)


@lowering("Slice")
def lower_slice(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    out = node.output[0]
    if ctx.opset < 10:
        attrs = ctx.attrs(node)
        starts = _int_const(ctx, attrs["starts"], f"{out}_starts")
        ends = _int_const(ctx, attrs["ends"], f"{out}_ends")
        count = len(attrs["starts"])
        axes = _int_const(ctx, attrs.get("axes", range(count)), f"{out}_axes")
        steps = _int_const(ctx, [1] * count, f"{out}_steps")
    else:
        starts, ends = node.input[1], node.input[2]
        axes, steps = _input(node, 3), _input(node, 4)
        if not axes or not steps:
            shape = ctx.shape(starts)
            if shape is None or not isinstance(shape[0], int):
                raise FrontendError(f"{node_label(node)}: length of starts is unknown, cannot fill axes/steps")
            axes = axes or _int_const(ctx, range(shape[0]), f"{out}_axes")
            steps = steps or _int_const(ctx, [1] * shape[0], f"{out}_steps")
    ctx.emit("slice", [node.input[0], starts, ends, axes, steps], [out], {}, name=node.name)


def _axes_operand(ctx: LoweringContext, node: onnx.NodeProto) -> tuple[tuple[int, ...] | None, list[str]]:
    """(axes attribute, extra operands) for Squeeze/Unsqueeze by opset."""
    if ctx.opset < 13:
        axes = ctx.attrs(node).get("axes")
        return (None if axes is None else tuple(int(a) for a in axes)), []
    name = _input(node, 1)
    if not name:
        return None, []
    value = ctx.constant(name)
    if value is None:
        return None, [name]
    return tuple(int(a) for a in np.asarray(value).reshape(-1)), []


@lowering("Squeeze")
def lower_squeeze(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    axes, extra = _axes_operand(ctx, node)
    ctx.emit("squeeze", [node.input[0]] + extra, [node.output[0]], {"axes": axes}, name=node.name)


@lowering("Unsqueeze")
def lower_unsqueeze(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    axes, extra = _axes_operand(ctx, node)
    if axes is None and not extra:
        raise FrontendError(f"{node_label(node)}: axes is required")
    ctx.emit("unsqueeze", [node.input[0]] + extra, [node.output[0]], {"axes": axes}, name=node.name)


@lowering("Flatten")
def lower_flatten(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    axis = int(ctx.attrs(node)["axis"])
    ctx.emit("flatten", [node.input[0]], [node.output[0]], {"axis": axis}, name=node.name)


@lowering("Expand")
def lower_expand(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    ctx.emit("expand", [node.input[0], node.input[1]], [node.output[0]], {}, name=node.name)


@lowering("Split")
def lower_split(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    outputs = list(node.output)
    n = int(attrs.get("num_outputs", len(outputs)))
    if n != len(outputs):
        raise FrontendError(f"{node_label(node)}: num_outputs={n} but the node has {len(outputs)} outputs")
    split = attrs.get("split")
    extra: list[str] = []
    if ctx.opset >= 13 and _input(node, 1):
        value = ctx.constant(node.input[1])
        if value is None:
            extra = [node.input[1]]
        else:
            split = np.asarray(value).reshape(-1)
    axis = int(attrs.get("axis", 0))  # Split-1's schema has no default axis; from opset 2: 0
    ctx.emit("split", [node.input[0]] + extra, outputs,
             {"axis": axis,
              "split": None if split is None else tuple(int(s) for s in split),
              "num_outputs": n},
             name=node.name)


# --------------------------------------------------------------------------- shape arithmetic
@lowering("Shape")
def lower_shape(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    start, end = int(attrs.get("start", 0)), attrs.get("end")  # attributes from opset 15 only
    end = None if end is None else int(end)
    static = _static_shape(ctx, node.input[0])
    if static is not None:
        ctx.constants[node.output[0]] = np.array(static[start:end], dtype=np.int64)
        return
    ctx.emit("shape", [node.input[0]], [node.output[0]], {"start": start, "end": end}, name=node.name)


@lowering("Size")
def lower_size(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    static = _static_shape(ctx, node.input[0])
    if static is not None:
        ctx.constants[node.output[0]] = np.array(int(np.prod(static, dtype=np.int64)), dtype=np.int64)
        return
    ctx.emit("size", [node.input[0]], [node.output[0]], {}, name=node.name)


@lowering("Range")
def lower_range(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    ctx.emit("range", list(node.input[:3]), [node.output[0]], {}, name=node.name)


@lowering("ConstantOfShape")
def lower_constant_of_shape(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    value = ctx.attrs(node).get("value")
    value = np.zeros(1, dtype=np.float32) if value is None else _float32_if_float(value)
    if value.size != 1:
        raise FrontendError(f"{node_label(node)}: attribute value must hold one element")
    ctx.emit("constant_of_shape", [node.input[0]], [node.output[0]],
             {"value": value.reshape(-1)[0].item(), "dtype": value.dtype.name}, name=node.name)


@lowering("Tile")
def lower_tile(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    ctx.emit("tile", [node.input[0], node.input[1]], [node.output[0]], {}, name=node.name)


@lowering("Pad")
def lower_pad(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    mode = attrs["mode"]
    if mode not in _PAD_MODES:
        raise FrontendError(f"{node_label(node)}: attribute mode={mode!r} is not supported")
    if ctx.opset < 11:
        pads = _int_const(ctx, attrs.get("pads", attrs.get("paddings", [])), f"{node.output[0]}_pads")
        value = ctx.add_constant(np.array(attrs["value"], dtype=np.float32), "pad_value")
        inputs = [node.input[0], pads, value, ""]
    else:
        inputs = [node.input[0], node.input[1], _input(node, 2), _input(node, 3)]
    ctx.emit("pad", inputs, [node.output[0]], {"mode": mode}, name=node.name)


@lowering("Trilu")
def lower_trilu(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    upper = int(ctx.attrs(node)["upper"])
    ctx.emit("trilu", [node.input[0], _input(node, 1)], [node.output[0]], {"upper": upper}, name=node.name)


@lowering("EyeLike")
def lower_eye_like(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    onnx_type = attrs.get("dtype", ctx.elem_type(node.input[0]))
    if onnx_type is None:
        raise FrontendError(f"{node_label(node)}: output dtype is unknown (no dtype attribute, input type unknown)")
    dtype = numpy_dtype(int(onnx_type), node_label(node))
    dtype = "float32" if dtype in ("float64", "float16") else dtype
    ctx.emit("eye_like", [node.input[0]], [node.output[0]],
             {"k": int(attrs["k"]), "dtype": dtype}, name=node.name)
