"""Local deltas: the faulty output of the first instruction that reads a corrupted parameter,
computed from its golden output and the parameter change only (private to :mod:`faults.inject`).

* gemm / 2-D matmul weight ``W[k, n]``: ``Y[:, n] += alpha * x[:, k] * Δw`` (bias: ``+= beta * Δb``);
* conv weight ``W[o, c, *k]``: output channel ``o`` += ``Δw`` times the padded, strided,
  dilated slice of input channel ``c`` (bias: channel ``o`` += ``Δb``);
* gather (axis 0) on a table: only the positions whose index is the corrupted row;
* embedding_bag (sum / mean): only the bags that contain the corrupted row, weighted by
  their count (or per-sample weights) and, for mean, divided by the bag length.

Each rule is a function on arrays (golden output rows, operand rows, flat element indices,
deltas); sums are taken in float64 and rounded once to fp32. :func:`local_delta` picks the
rule for an instruction and returns ``None`` when none applies (the caller then recomputes
the instruction with the corrupted parameter).
"""
from __future__ import annotations

import numpy as np

from accelsim.ir import Instruction

from faults.inject._golden import GoldenRun


def local_delta(gold: GoldenRun, inst: Instruction, param: str, index: np.ndarray, new: np.ndarray,
                old: np.ndarray, rows: np.ndarray | None) -> list[np.ndarray] | None:
    """Faulty outputs of ``inst`` on ``rows`` (None = full batch) when the flat elements
    ``index`` of ``param`` change from ``old`` to ``new`` (fp32 arrays), or None."""
    try:
        operand = inst.inputs.index(param)
    except ValueError:
        return None
    delta = new.astype(np.float64) - old.astype(np.float64)
    # inf - inf etc.: fall back to a true recompute of the instruction
    if not np.all(np.isfinite(new)):
        return None
    out_name = inst.outputs[0]
    if out_name not in gold.batch_tensors or len(inst.outputs) != 1:
        return None
    golden_out = gold.rows_of(out_name, rows)
    op = inst.op
    pshape = gold.program.parameters[param].shape
    a_name = inst.inputs[0]
    if op == "gemm" and not inst.attrs.get("trans_a") and golden_out.ndim == 2:
        if a_name not in gold.batch_tensors:
            return None
        if operand == 1:
            return [gemm_weight_delta(golden_out, gold.rows_of(a_name, rows), index, delta, pshape,
                                      bool(inst.attrs.get("trans_b")), float(inst.attrs.get("alpha", 1.0)))]
        if operand == 2 and len(pshape) <= 2 and (len(pshape) == 1 or pshape[0] == 1) \
                and pshape[-1] == golden_out.shape[1]:
            return [gemm_bias_delta(golden_out, index, delta, pshape[-1], float(inst.attrs.get("beta", 1.0)))]
        return None
    if op == "matmul" and operand == 1 and len(pshape) == 2 and golden_out.ndim >= 2:
        if a_name not in gold.batch_tensors:
            return None
        a = gold.rows_of(a_name, rows)
        if a.ndim < 2:
            return None
        return [matmul_weight_delta(golden_out, a, index, delta, pshape)]
    if op == "conv" and operand in (1, 2) and golden_out.ndim >= 3:
        if operand == 2:
            return [conv_bias_delta(golden_out, index, delta)]
        if a_name not in gold.batch_tensors:
            return None
        w_shape = gold.program.parameters[inst.inputs[1]].shape
        return [conv_weight_delta(golden_out, gold.rows_of(a_name, rows), w_shape, index, delta,
                                  tuple(inst.attrs["strides"]), tuple(inst.attrs["pads"]),
                                  tuple(inst.attrs["dilations"]), int(inst.attrs["group"]))]
    if op == "gather" and operand == 0 and int(inst.attrs.get("axis", 0)) == 0:
        ind_name = inst.inputs[1]
        if ind_name not in gold.batch_tensors:
            return None
        return [gather_delta(golden_out, gold.rows_of(ind_name, rows), pshape, index, delta)]
    if op == "embedding_bag" and operand == 0 and inst.attrs.get("mode", "sum") in ("sum", "mean"):
        layout = gold.bag_layout(inst)
        if layout is None:
            return None
        sel = np.arange(gold.batch) if rows is None else rows
        return [bag_delta(golden_out, layout, sel, pshape[1], inst.attrs.get("mode", "sum") == "mean",
                          index, delta)]
    return None


def add_columns(out: np.ndarray, cols: np.ndarray, contrib: np.ndarray) -> None:
    """out[:, cols[j]] += contrib[:, j] in place (float64 accumulation per column, one rounding)."""
    if cols.size == 1:
        n = int(cols[0])
        out[:, n] = (out[:, n].astype(np.float64) + contrib[:, 0]).astype(np.float32)
        return
    for n in np.unique(cols):
        sel = cols == n
        add = contrib[:, sel].sum(axis=1)
        out[:, n] = (out[:, n].astype(np.float64) + add).astype(np.float32)


def gemm_weight_delta(golden_out: np.ndarray, a: np.ndarray, index: np.ndarray, delta: np.ndarray,
                      pshape: tuple, trans_b: bool, alpha: float) -> np.ndarray:
    """gemm ``Y[m, n] = alpha·Σ_k A[m, k]·B[k, n] (+ C)`` with ``B`` elements changed by ``delta``.

    golden_out [m, N], a [m, K] (rows of the batch), index: flat indices into B (shape
    ``pshape``: [K, N], or [N, K] with ``trans_b``). Returns the faulty [m, N].
    """
    out = golden_out.copy()
    if trans_b:
        n_idx, k_idx = np.divmod(index, pshape[1])
    else:
        k_idx, n_idx = np.divmod(index, pshape[1])
    add_columns(out, n_idx, a[:, k_idx].astype(np.float64) * (alpha * delta))
    return out


def gemm_bias_delta(golden_out: np.ndarray, index: np.ndarray, delta: np.ndarray, width: int,
                    beta: float) -> np.ndarray:
    """gemm with a row-vector ``C`` (width N) whose elements change by ``delta``: [m, N]."""
    out = golden_out.copy()
    contrib = np.broadcast_to(beta * delta, (out.shape[0], index.size))
    add_columns(out, index % width, contrib)
    return out


def matmul_weight_delta(golden_out: np.ndarray, a: np.ndarray, index: np.ndarray, delta: np.ndarray,
                        pshape: tuple) -> np.ndarray:
    """matmul ``Y[..., n] = Σ_k A[..., k]·W[k, n]`` with ``W`` [K, N] elements changed by ``delta``."""
    out = golden_out.copy()
    k_idx, n_idx = np.divmod(index, pshape[1])
    for n in np.unique(n_idx):
        sel = n_idx == n
        col = np.tensordot(a[..., k_idx[sel]].astype(np.float64), delta[sel], axes=([-1], [0]))
        out[..., n] = (out[..., n].astype(np.float64) + col).astype(np.float32)
    return out


def conv_bias_delta(golden_out: np.ndarray, index: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """conv output [m, O, *spatial] with bias elements ``index`` changed by ``delta``."""
    out = golden_out.copy()
    for o in np.unique(index):
        d = delta[index == o].sum()
        out[:, o] = (out[:, o].astype(np.float64) + d).astype(np.float32)
    return out


def conv_weight_delta(golden_out: np.ndarray, x: np.ndarray, w_shape: tuple, index: np.ndarray,
                      delta: np.ndarray, strides: tuple, pads: tuple, dilations: tuple,
                      group: int) -> np.ndarray:
    """conv output [m, O, *spatial] with weight ``W`` [O, C/group, *kernel] elements changed.

    x [m, C, *in_spatial]; ``pads`` lists the begin pads first (ONNX order). Each changed
    element ``W[o, c, *k]`` adds ``Δw`` times input channel ``c``'s window at kernel offset k
    to output channel o.
    """
    out = golden_out.copy()
    rank = x.ndim - 2
    c_per_group = w_shape[1]
    o_per_group = w_shape[0] // group
    out_spatial = out.shape[2:]
    coords = np.unravel_index(index, w_shape)
    acc: dict[int, np.ndarray] = {}
    for j in range(index.size):
        o = int(coords[0][j])
        c = int(coords[1][j]) + (o // o_per_group) * c_per_group
        kpos = [int(coords[2 + a][j]) for a in range(rank)]
        # input coordinate along axis a: out*s + k*d - pad_begin, zero outside
        window = np.zeros((x.shape[0],) + tuple(out_spatial), dtype=np.float64)
        src = x[:, c]
        idx_out = []
        idx_in = []
        for a in range(rank):
            pos = np.arange(out_spatial[a]) * strides[a] + kpos[a] * dilations[a] - pads[a]
            valid = (pos >= 0) & (pos < src.shape[1 + a])
            idx_out.append(np.nonzero(valid)[0])
            idx_in.append(pos[valid])
        if all(v.size for v in idx_out):
            window[(slice(None),) + np.ix_(*idx_out)] = src[(slice(None),) + np.ix_(*idx_in)]
        contrib = window * delta[j]
        acc[o] = acc[o] + contrib if o in acc else contrib
    for o, contrib in acc.items():
        out[:, o] = (out[:, o].astype(np.float64) + contrib).astype(np.float32)
    return out


def gather_delta(golden_out: np.ndarray, indices: np.ndarray, pshape: tuple, index: np.ndarray,
                 delta: np.ndarray) -> np.ndarray:
    """gather(axis 0) of table [R, ...] at ``indices`` (negative = from the end) with table
    elements ``index`` changed by ``delta``: only positions looking up a changed row move."""
    row_size = int(np.prod(pshape[1:], dtype=np.int64))
    indices = np.where(indices < 0, indices + pshape[0], indices)
    out = golden_out.copy()
    flat = out.reshape(indices.size, row_size)
    where = indices.reshape(-1)
    for e, d in zip(index, delta):
        r, pos = divmod(int(e), row_size)
        hit = np.nonzero(where == r)[0]
        if hit.size:
            flat[hit, pos] = (flat[hit, pos].astype(np.float64) + d).astype(np.float32)
    return out


def bag_delta(golden_out: np.ndarray, layout: tuple, sel: np.ndarray, dim: int, mean: bool,
              index: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """embedding_bag (sum/mean) output [rows, D] for the bags ``sel``; ``layout`` from
    :meth:`GoldenRun.bag_layout`. Only the bags that look up a changed row move."""
    indices, bag_of, lengths, weights = layout
    out = golden_out.copy()
    for e, d in zip(index, delta):
        r, pos = divmod(int(e), dim)
        hits = np.nonzero(indices == r)[0]
        if hits.size == 0:
            continue
        per_bag = np.bincount(bag_of[hits], weights=None if weights is None else weights[hits],
                              minlength=lengths.size).astype(np.float64)
        if mean:
            per_bag = np.divide(per_bag, lengths, out=np.zeros_like(per_bag), where=lengths > 0)
        scale = per_bag[sel]
        touched = np.nonzero(scale)[0]
        if touched.size:
            out[touched, pos] = (out[touched, pos].astype(np.float64) + scale[touched] * d).astype(np.float32)
    return out
