"""Elementwise ONNX ops -> IR elementwise ops (see accelsim/kernels/elementwise.py).

Every attribute default is filled here. Opset differences: Clip takes min/max as attributes
before opset 11 (turned into constant operands) and as optional inputs after; the pre-opset-7
``broadcast``/``axis`` form of binary ops is accepted only when it means numpy broadcasting.
Cast targets: integer and bool types keep their dtype; FLOAT and DOUBLE give fp32 (the IR's
float type); FLOAT16 / BFLOAT16 round to that type's grid and stay fp32; other float
formats (float8, float4, int4, string) are rejected.
"""
from __future__ import annotations

import re

import numpy as np
import onnx

from frontend.ops.conv import node_label
from frontend.registry import FrontendError, LoweringContext, lowering


def snake(op_type: str) -> str:
    """``LeakyRelu`` -> ``leaky_relu``, ``IsNaN`` -> ``isnan``."""
    special = {"IsNaN": "isnan", "IsInf": "isinf", "PRelu": "prelu", "HardSwish": "hard_swish"}
    return special.get(op_type) or re.sub(r"(?<!^)(?=[A-Z])", "_", op_type).lower()


# ONNX op -> attribute defaults (every one is filled in the IR instruction).
_UNARY: dict[str, dict[str, object]] = {
    **{op: {} for op in (
        "Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
        "Not", "IsNaN", "Floor", "Ceil", "Round", "Sign", "Softplus", "Softsign", "Sin", "Cos",
        "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Mish",
        "BitwiseNot", "HardSwish",
    )},
    "LeakyRelu": {"alpha": 0.01},
    "Elu": {"alpha": 1.0},
    "Selu": {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
    "Celu": {"alpha": 1.0},
    "ThresholdedRelu": {"alpha": 1.0},
    "HardSigmoid": {"alpha": 0.2, "beta": 0.5},
    "Swish": {"alpha": 1.0},
    "Shrink": {"bias": 0.0, "lambd": 0.5},
    "Gelu": {"approximate": "none"},
    "IsInf": {"detect_negative": 1, "detect_positive": 1},
}

_BINARY: dict[str, dict[str, object]] = {
    **{op: {} for op in (
        "Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "LessOrEqual", "Greater",
        "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu",
    )},
    "Mod": {"fmod": 0},
    "BitShift": {"direction": None},
}

_PARAMETER_ROLE = {"Add": "bias", "Sub": "bias", "Mul": "weight", "Div": "weight", "PRelu": "weight"}


def _filled(node: onnx.NodeProto, attrs: dict, defaults: dict[str, object]) -> dict[str, object]:
    out = {}
    for key, default in defaults.items():
        value = attrs.get(key, default)
        if value is None:
            raise FrontendError(f"{node_label(node)}: attribute {key} is required")
        out[key] = type(default)(value) if default is not None else value
    return out


def _claim_inputs(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    role = _PARAMETER_ROLE.get(node.op_type, "other")
    for tensor in node.input:
        if tensor and ctx.is_parameter(tensor):
            ctx.claim_parameter(tensor, node, role, channel_axis=None)


@lowering(*_UNARY)
def lower_unary(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = _filled(node, ctx.attrs(node), _UNARY[node.op_type])
    if node.op_type == "Gelu" and attrs["approximate"] not in ("none", "tanh"):
        raise FrontendError(f"{node_label(node)}: approximate={attrs['approximate']!r} is unknown")
    _claim_inputs(ctx, node)
    ctx.emit(snake(node.op_type), [node.input[0]], [node.output[0]], attrs, name=node.name)


@lowering(*_BINARY)
def lower_binary(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    raw = ctx.attrs(node)
    if ctx.opset < 7 and int(raw.get("broadcast", 0)) and "axis" in raw:
        raise FrontendError(
            f"{node_label(node)}: legacy broadcast with axis={raw['axis']} (opset < 7) is not supported"
        )
    attrs = _filled(node, raw, _BINARY[node.op_type])
    if node.op_type == "BitShift" and attrs["direction"] not in ("LEFT", "RIGHT"):
        raise FrontendError(f"{node_label(node)}: direction={attrs['direction']!r} is unknown")
    _claim_inputs(ctx, node)
    ctx.emit(snake(node.op_type), list(node.input[:2]), [node.output[0]], attrs, name=node.name)


@lowering("Max", "Min", "Sum", "Mean")
def lower_variadic(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    _claim_inputs(ctx, node)
    inputs = [t for t in node.input if t]
    ctx.emit(node.op_type.lower(), inputs, [node.output[0]], {}, name=node.name)


@lowering("Where")
def lower_where(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    _claim_inputs(ctx, node)
    ctx.emit("where", list(node.input[:3]), [node.output[0]], {}, name=node.name)


@lowering("Clip")
def lower_clip(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    inputs = list(node.input[:3]) + [""] * (3 - len(node.input[:3]))
    if ctx.opset < 11:
        attrs = ctx.attrs(node)
        inputs = [node.input[0], "", ""]
        for position, key in ((1, "min"), (2, "max")):
            if key in attrs:
                inputs[position] = ctx.add_constant(np.float32(attrs[key]), f"{node.name}_{key}")
    ctx.emit("clip", inputs, [node.output[0]], {}, name=node.name)


_CAST_TARGETS = {
    onnx.TensorProto.FLOAT: ("float32", ""),
    onnx.TensorProto.DOUBLE: ("float32", ""),
    onnx.TensorProto.FLOAT16: ("float32", "float16"),
    onnx.TensorProto.BFLOAT16: ("float32", "bfloat16"),
    onnx.TensorProto.BOOL: ("bool", ""),
    **{
        getattr(onnx.TensorProto, name): (name.lower(), "")
        for name in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
    },
}


def cast_target(node: onnx.NodeProto, to: int) -> dict[str, str]:
    """IR cast attrs (``to``, ``round_to``) of ONNX element type ``to``."""
    if to not in _CAST_TARGETS:
        name = onnx.TensorProto.DataType.Name(to) if to in onnx.TensorProto.DataType.values() else to
        raise FrontendError(f"{node_label(node)}: to={name} is not a supported element type")
    dtype, round_to = _CAST_TARGETS[to]
    return {"to": dtype, "round_to": round_to}


@lowering("Cast")
def lower_cast(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    if "to" not in attrs:
        raise FrontendError(f"{node_label(node)}: attribute to is required")
    ctx.emit("cast", [node.input[0]], [node.output[0]], cast_target(node, int(attrs["to"])), name=node.name)


@lowering("CastLike")
def lower_cast_like(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    elem = ctx.elem_type(node.input[1])
    if elem is None:
        raise FrontendError(
            f"{node_label(node)}: element type of target_type input {node.input[1]!r} is unknown"
        )
    ctx.emit("cast", [node.input[0]], [node.output[0]], cast_target(node, elem), name=node.name)
