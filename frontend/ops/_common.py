"""Helpers shared by the op-family modules (which never import each other).

Error labels, int-list attributes, explicit pads for Conv and the pooling ops, and parameter
claims of optional inputs. No lowering rules live here.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import onnx

from frontend.registry import FrontendError, LoweringContext


def node_label(node: onnx.NodeProto) -> str:
    """``node 'name' (OpType)`` for one-line errors (the first output when unnamed)."""
    return f"node {node.name or node.output[0]!r} ({node.op_type})"


def int_list(values: Sequence[Any]) -> tuple[int, ...]:
    """An ints attribute (or any int-like sequence) as a tuple of Python ints."""
    return tuple(int(v) for v in values)


def claim_input(ctx: LoweringContext, node: onnx.NodeProto, index: int, role: str) -> None:
    """Claim input ``index`` of ``node`` with ``role`` (one scale, no channel axis) if it is
    present and a parameter."""
    if index < len(node.input) and ctx.is_parameter(node.input[index]):
        ctx.claim_parameter(node.input[index], node, role, channel_axis=None)


def spatial_shape(ctx: LoweringContext, node: onnx.NodeProto, rank: int, why: str) -> tuple[int, ...]:
    """Static spatial dims of the node's first input [N, C, *spatial]; error naming ``why``
    if the input does not have ``rank`` static spatial dims."""
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
    """Explicit pads (begin_1..begin_r, end_1..end_r), in elements, from ``pads`` /
    ``auto_pad`` of a Conv or pooling node (``attrs`` from ``ctx.attrs``, so ``auto_pad``
    holds the schema default NOTSET when the node leaves it out)."""
    rank = len(kernel_shape)
    auto_pad = attrs["auto_pad"] or "NOTSET"  # an explicit empty string also means NOTSET
    if auto_pad == "NOTSET":
        # No schema default for pads: its length depends on the kernel rank.
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
