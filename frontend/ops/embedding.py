"""Gather / scatter ONNX ops -> IR ``gather``, ``gather_elements``, ``gather_nd``,
``scatter_nd``, ``scatter_elements`` (see ``accelsim/kernels/embedding.py``).

A Gather along axis 0 whose data is a parameter is an embedding lookup: the table is claimed
with role ``"embedding"`` and ``channel_axis=0`` (one int8 scale per row), and its component
label comes from the initializer name (``emb.3.weight`` -> ``embedding.table3``; see
``frontend/components.py``). Gathers on activations and constants are plain gathers (and fold
at load time when everything is constant). ``nn.EmbeddingBag`` (a Loop) is lowered in
``frontend/ops/control.py``.
"""
from __future__ import annotations

import numpy as np
import onnx

from frontend.ops._common import node_label
from frontend.registry import FrontendError, LoweringContext, lowering

_REDUCTIONS = ("none", "add", "mul", "max", "min")


def _rank(ctx: LoweringContext, name: str) -> int | None:
    shape = ctx.shape(name)
    return None if shape is None else len(shape)


@lowering("Gather")
def lower_gather(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """data[..], indices -> np.take(data, indices, axis); a parameter table is an embedding."""
    axis = int(ctx.attrs(node)["axis"])
    data = node.input[0]
    rank = _rank(ctx, data)
    if rank is not None and axis < 0:
        axis += rank
    _check_constant_ids(ctx, node, axis)
    if ctx.is_parameter(data):
        if axis == 0:
            ctx.claim_parameter(data, node, "embedding", channel_axis=0)
        else:
            ctx.claim_parameter(data, node, "other", channel_axis=None)
    ctx.emit("gather", [data, node.input[1]], [node.output[0]], {"axis": axis}, name=node.name)


def _check_constant_ids(ctx: LoweringContext, node: onnx.NodeProto, axis: int) -> None:
    """Constant ids of a Gather from a tensor of known shape are checked at load time (as the
    executor checks run-time ids): valid ids of an axis of size n are -n..n-1 (ONNX)."""
    shape, ids = ctx.shape(node.input[0]), ctx.constant(node.input[1])
    if shape is None or not 0 <= axis < len(shape):
        if shape is not None:
            raise FrontendError(f"{node_label(node)}: axis {axis} is out of range for rank {len(shape)}")
        return
    size = shape[axis]
    if ids is None or not isinstance(size, int) or np.asarray(ids).size == 0:
        return
    ids = np.asarray(ids)
    low, high = int(ids.min()), int(ids.max())
    if low < -size or high >= size:
        raise FrontendError(f"{node_label(node)}: id {low if low < -size else high} in {node.input[1]!r} is out of "
                            f"range for axis {axis} of size {size} (valid ids {-size}..{size - 1})")


@lowering("GatherElements")
def lower_gather_elements(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    axis = int(ctx.attrs(node)["axis"])
    ctx.emit("gather_elements", [node.input[0], node.input[1]], [node.output[0]], {"axis": axis}, name=node.name)


@lowering("GatherND")
def lower_gather_nd(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    batch_dims = int(ctx.attrs(node).get("batch_dims", 0))  # an attribute from opset 12 only
    ctx.emit("gather_nd", [node.input[0], node.input[1]], [node.output[0]],
             {"batch_dims": batch_dims}, name=node.name)


def _reduction(node: onnx.NodeProto, attrs: dict) -> str:
    reduction = attrs.get("reduction", "none")  # an attribute from opset 16 only
    if reduction not in _REDUCTIONS:
        raise FrontendError(f"{node_label(node)}: attribute reduction={reduction!r} is not supported")
    return reduction


@lowering("ScatterND")
def lower_scatter_nd(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    ctx.emit("scatter_nd", list(node.input[:3]), [node.output[0]],
             {"reduction": _reduction(node, attrs)}, name=node.name)


@lowering("ScatterElements")
def lower_scatter_elements(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    attrs = ctx.attrs(node)
    ctx.emit("scatter_elements", list(node.input[:3]), [node.output[0]],
             {"axis": int(attrs["axis"]), "reduction": _reduction(node, attrs)}, name=node.name)
