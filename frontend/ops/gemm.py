"""Gemm and MatMul -> IR ``gemm`` / ``matmul``."""
from __future__ import annotations

import onnx

from frontend.registry import LoweringContext, lowering


@lowering("Gemm")
def lower_gemm(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    trans_b = int(attrs.get("transB", 0))
    weight = node.input[1]
    if ctx.is_parameter(weight):
        # B is [N, K] with transB=1, else [K, N]: output channels along N.
        ctx.claim_parameter(weight, node, "weight", channel_axis=0 if trans_b else 1)
    if len(node.input) > 2 and ctx.is_parameter(node.input[2]):
        ctx.claim_parameter(node.input[2], node, "bias", channel_axis=None)
    ctx.emit(
        "gemm",
        list(node.input) + [""] * (3 - len(node.input)),
        list(node.output),
        {
            "alpha": float(attrs.get("alpha", 1.0)),
            "beta": float(attrs.get("beta", 1.0)),
            "trans_a": int(attrs.get("transA", 0)),
            "trans_b": trans_b,
        },
        name=node.name,
    )


@lowering("MatMul")
def lower_matmul(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    for position, tensor in enumerate(node.input):
        if ctx.is_parameter(tensor):
            # A weight as B[..., K, N]: output channels along the last axis.
            shape = ctx.shape(tensor) or ()
            axis = len(shape) - 1 if position == 1 else None
            ctx.claim_parameter(tensor, node, "weight", channel_axis=axis)
    ctx.emit("matmul", list(node.input), list(node.output), {}, name=node.name)
