"""Gemm and MatMul -> IR ``gemm`` / ``matmul``.

Gemm attributes normalised: alpha, beta, trans_a, trans_b (schema defaults 1.0, 1.0, 0, 0
filled by ``ctx.attrs``); C optional (absent = ``""``; opset < 11 required it, opset < 7 had
the ``broadcast`` flag, which numpy broadcasting subsumes). Parameter claims: a weight's
channel axis is the one that indexes the output columns N (B) or rows M (A), so per-channel
int8 scales follow output channels.
"""
from __future__ import annotations

import onnx

from frontend.ops._common import node_label
from frontend.registry import FrontendError, LoweringContext, lowering


@lowering("Gemm")
def lower_gemm(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    trans_a = int(attrs["transA"])
    trans_b = int(attrs["transB"])
    if len(node.input) < 2:
        raise FrontendError(f"{node_label(node)}: needs inputs A and B")
    a, weight = node.input[0], node.input[1]
    if ctx.is_parameter(weight):
        # B is [N, K] with transB=1, else [K, N]: output channels along N.
        ctx.claim_parameter(weight, node, "weight", channel_axis=0 if trans_b else 1)
    if ctx.is_parameter(a):
        # A is [M, K], or [K, M] with transA=1: output rows along M.
        ctx.claim_parameter(a, node, "weight", channel_axis=1 if trans_a else 0)
    if len(node.input) > 2 and ctx.is_parameter(node.input[2]):
        ctx.claim_parameter(node.input[2], node, "bias", channel_axis=None)
    if len(node.input) > 2 and node.input[2]:
        _check_bias(ctx, node, trans_b)
    ctx.emit(
        "gemm",
        list(node.input[:3]) + [""] * (3 - len(node.input[:3])),
        list(node.output[:1]),
        {
            "alpha": float(attrs["alpha"]),
            "beta": float(attrs["beta"]),
            "trans_a": trans_a,
            "trans_b": trans_b,
        },
        name=node.name,
    )


def _check_bias(ctx: LoweringContext, node: onnx.NodeProto, trans_b: int) -> None:
    """C must broadcast to [M, N] (ONNX: unidirectionally): rank <= 2, last dim 1 or N."""
    c_shape, b_shape = ctx.shape(node.input[2]), ctx.shape(node.input[1])
    if c_shape is None:
        return
    if len(c_shape) > 2:
        raise FrontendError(f"{node_label(node)}: C has shape {list(c_shape)}; it must broadcast to [M, N]")
    if b_shape is not None and len(b_shape) == 2 and c_shape:
        n = b_shape[0] if trans_b else b_shape[1]
        if isinstance(n, int) and isinstance(c_shape[-1], int) and c_shape[-1] not in (1, n):
            raise FrontendError(f"{node_label(node)}: C has shape {list(c_shape)}; it must broadcast to [M, {n}]")


@lowering("MatMul")
def lower_matmul(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    for position, tensor in enumerate(node.input[:2]):
        if ctx.is_parameter(tensor):
            # Weight as B[..., K, N]: output channels along the last axis; as A[..., M, K]
            # (W @ x): output rows along axis -2.
            rank = len(ctx.shape(tensor) or ())
            axis = None if rank < 2 else (rank - 1 if position == 1 else rank - 2)
            ctx.claim_parameter(tensor, node, "weight", channel_axis=axis)
    ctx.emit("matmul", list(node.input[:2]), list(node.output[:1]), {}, name=node.name)
