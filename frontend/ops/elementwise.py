"""Elementwise ONNX ops -> IR elementwise ops (see accelsim/kernels/elementwise.py).

Every IR attribute is filled: ``ctx.attrs`` supplies the ONNX schema defaults (e.g. LeakyRelu
alpha, Mod fmod) at the model's opset; the tables below only name which attributes each IR
op carries and their Python type. Opset differences: Clip takes min/max as attributes
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

from frontend.ops._common import node_label
from frontend.registry import FrontendError, LoweringContext, lowering


def snake(op_type: str) -> str:
    """``LeakyRelu`` -> ``leaky_relu``, ``IsNaN`` -> ``isnan``."""
    special = {"IsNaN": "isnan", "IsInf": "isinf", "PRelu": "prelu", "HardSwish": "hard_swish"}
    return special.get(op_type) or re.sub(r"(?<!^)(?=[A-Z])", "_", op_type).lower()


# ONNX op -> {attribute carried into the IR instruction: its Python type}.
_UNARY: dict[str, dict[str, type]] = {
    **{op: {} for op in (
        "Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
        "Not", "IsNaN", "Floor", "Ceil", "Round", "Sign", "Softplus", "Softsign", "Sin", "Cos",
        "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Mish",
        "BitwiseNot", "HardSwish",
    )},
    "LeakyRelu": {"alpha": float},
    "Elu": {"alpha": float},
    "Selu": {"alpha": float, "gamma": float},
    "Celu": {"alpha": float},
    "ThresholdedRelu": {"alpha": float},
    "HardSigmoid": {"alpha": float, "beta": float},
    "Swish": {"alpha": float},
    "Shrink": {"bias": float, "lambd": float},
    "Gelu": {"approximate": str},
    "IsInf": {"detect_negative": int, "detect_positive": int},
}

_BINARY: dict[str, dict[str, type]] = {
    **{op: {} for op in (
        "Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "LessOrEqual", "Greater",
        "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu",
    )},
    "Mod": {"fmod": int},
    "BitShift": {"direction": str},
}

_PARAMETER_ROLE = {"Add": "bias", "Sub": "bias", "Mul": "weight", "Div": "weight", "PRelu": "weight"}


def _ir_attrs(attrs: dict, types: dict[str, type]) -> dict[str, object]:
    """The IR attributes named in ``types``, converted; ``attrs`` from ``ctx.attrs`` (schema
    defaults filled, an attribute still absent is a one-line error)."""
    return {key: convert(attrs[key]) for key, convert in types.items()}


def _claim_inputs(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    role = _PARAMETER_ROLE.get(node.op_type, "other")
    for tensor in node.input:
        if tensor and ctx.is_parameter(tensor):
            ctx.claim_parameter(tensor, node, role, channel_axis=None)


@lowering(*_UNARY)
def lower_unary(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = _ir_attrs(ctx.attrs(node), _UNARY[node.op_type])
    if node.op_type == "Gelu" and attrs["approximate"] not in ("none", "tanh"):
        raise FrontendError(f"{node_label(node)}: approximate={attrs['approximate']!r} is unknown")
    _claim_inputs(ctx, node)
    ctx.emit(snake(node.op_type), [node.input[0]], [node.output[0]], attrs, name=node.name)


@lowering(*_BINARY)
def lower_binary(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    raw = ctx.attrs(node)
    # broadcast: an attribute of the arithmetic/comparison/logic ops before opset 7 (not PRelu's)
    if ctx.opset < 7 and int(raw.get("broadcast", 0)) and "axis" in raw:
        raise FrontendError(
            f"{node_label(node)}: legacy broadcast with axis={raw['axis']} (opset < 7) is not supported"
        )
    attrs = _ir_attrs(raw, _BINARY[node.op_type])
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
        # Only the bounds the node sets: the schema defaults (opset 6-10) are -/+FLT_MAX, i.e.
        # no bound, which the IR spells as an absent operand.
        attrs = ctx.attrs(node, schema_defaults=False)
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
