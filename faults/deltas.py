"""Local deltas: the faulty output of the first instruction that reads a corrupted parameter,
computed from its golden output and the weight change only (see :mod:`faults.fastpath`).

* gemm / 2-D matmul weight ``W[k, n]``: ``Y[:, n] += alpha * x[:, k] * Δw`` (bias: ``+= beta * Δb``);
* conv weight ``W[o, c, *k]``: output channel ``o`` += ``Δw`` times the padded, strided,
  dilated slice of input channel ``c`` (bias: channel ``o`` += ``Δb``);
* gather (axis 0) on a table: only the positions whose index is the corrupted row;
* embedding_bag (sum / mean): only the bags that contain the corrupted row, weighted by
  their count (or per-sample weights) and, for mean, divided by the bag length.

Sums are taken in float64 and rounded once to fp32. ``None`` means "no local rule applies":
the caller recomputes the instruction with the corrupted parameter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from faults.fastpath import FastInjector, Fault


def local_delta(inj: "FastInjector", inst, fault: "Fault", rows: np.ndarray | None) -> list[np.ndarray] | None:
    """Faulty outputs of ``inst`` computed from its golden output and the weight delta."""
    try:
        operand = inst.inputs.index(fault.param)
    except ValueError:
        return None
    new, old = inj._new_values(fault)
    delta = new.astype(np.float64) - old.astype(np.float64)
    # inf - inf etc.: fall back to a true recompute of the instruction
    if not np.all(np.isfinite(new)):
        return None
    idx = fault.corruption.index
    out_name = inst.outputs[0]
    if out_name not in inj.batch_tensors or len(inst.outputs) != 1:
        return None
    golden_out = inj._rows_of(out_name, rows)
    op = inst.op
    pshape = inj.program.parameters[fault.param].shape
    if op == "gemm" and not inst.attrs.get("trans_a") and golden_out.ndim == 2:
        a_name = inst.inputs[0]
        if a_name not in inj.batch_tensors:
            return None
        out = golden_out.copy()
        if operand == 1:
            a = inj._rows_of(a_name, rows)
            if inst.attrs.get("trans_b"):
                n_idx, k_idx = np.divmod(idx, pshape[1])
            else:
                k_idx, n_idx = np.divmod(idx, pshape[1])
            alpha = float(inst.attrs.get("alpha", 1.0))
            add_columns(out, n_idx, a[:, k_idx].astype(np.float64) * (alpha * delta))
            return [out]
        if operand == 2 and len(pshape) <= 2 and (len(pshape) == 1 or pshape[0] == 1) and pshape[-1] == out.shape[1]:
            beta = float(inst.attrs.get("beta", 1.0))
            n_idx = idx % pshape[-1]
            contrib = np.broadcast_to(beta * delta, (out.shape[0], idx.size))
            add_columns(out, n_idx, contrib)
            return [out]
        return None
    if op == "matmul" and operand == 1 and len(pshape) == 2 and golden_out.ndim >= 2:
        a_name = inst.inputs[0]
        if a_name not in inj.batch_tensors:
            return None
        a = inj._rows_of(a_name, rows)
        if a.ndim < 2:
            return None
        out = golden_out.copy()
        k_idx, n_idx = np.divmod(idx, pshape[1])
        for n in np.unique(n_idx):
            sel = n_idx == n
            col = np.tensordot(a[..., k_idx[sel]].astype(np.float64), delta[sel], axes=([-1], [0]))
            out[..., n] = (out[..., n].astype(np.float64) + col).astype(np.float32)
        return [out]
    if op == "conv" and operand in (1, 2) and golden_out.ndim >= 3:
        return conv_delta(inj, inst, fault, rows, operand, idx, delta, golden_out)
    if op == "gather" and operand == 0 and int(inst.attrs.get("axis", 0)) == 0:
        ind_name = inst.inputs[1]
        if ind_name not in inj.batch_tensors:
            return None
        indices = inj._rows_of(ind_name, rows)
        row_size = int(np.prod(pshape[1:], dtype=np.int64))
        nrows = pshape[0]
        indices = np.where(indices < 0, indices + nrows, indices)
        out = golden_out.copy()
        flat = out.reshape(indices.size, row_size)
        where = indices.reshape(-1)
        for e, d in zip(idx, delta):
            r, pos = divmod(int(e), row_size)
            hit = np.nonzero(where == r)[0]
            if hit.size:
                flat[hit, pos] = (flat[hit, pos].astype(np.float64) + d).astype(np.float32)
        return [out]
    if op == "embedding_bag" and operand == 0 and inst.attrs.get("mode", "sum") in ("sum", "mean"):
        return bag_delta(inj, inst, rows, idx, delta, pshape, golden_out)
    return None


def add_columns(out: np.ndarray, cols: np.ndarray, contrib: np.ndarray) -> None:
    """out[:, cols[j]] += contrib[:, j] (float64 accumulation per column, one rounding)."""
    if cols.size == 1:
        n = int(cols[0])
        out[:, n] = (out[:, n].astype(np.float64) + contrib[:, 0]).astype(np.float32)
        return
    for n in np.unique(cols):
        sel = cols == n
        add = contrib[:, sel].sum(axis=1)
        out[:, n] = (out[:, n].astype(np.float64) + add).astype(np.float32)


def conv_delta(inj, inst, fault, rows, operand, idx, delta, golden_out):
    w_shape = inj.program.parameters[inst.inputs[1]].shape
    o_total = w_shape[0]
    out = golden_out.copy()
    if operand == 2:
        for o in np.unique(idx):
            d = delta[idx == o].sum()
            out[:, o] = (out[:, o].astype(np.float64) + d).astype(np.float32)
        return [out]
    x_name = inst.inputs[0]
    if x_name not in inj.batch_tensors:
        return None
    x = inj._rows_of(x_name, rows)
    rank = x.ndim - 2
    strides = tuple(inst.attrs["strides"])
    pads = tuple(inst.attrs["pads"])
    dil = tuple(inst.attrs["dilations"])
    group = int(inst.attrs["group"])
    c_per_group = w_shape[1]
    o_per_group = o_total // group
    out_spatial = out.shape[2:]
    coords = np.unravel_index(idx, w_shape)
    acc: dict[int, np.ndarray] = {}
    for j in range(idx.size):
        o = int(coords[0][j])
        c = int(coords[1][j]) + (o // o_per_group) * c_per_group
        kpos = [int(coords[2 + a][j]) for a in range(rank)]
        # input coordinate along axis a: out*s + k*d - pad_begin, zero outside
        sl = np.zeros((x.shape[0],) + tuple(out_spatial), dtype=np.float64)
        src = x[:, c]
        idx_out = []
        idx_in = []
        for a in range(rank):
            pos = np.arange(out_spatial[a]) * strides[a] + kpos[a] * dil[a] - pads[a]
            valid = (pos >= 0) & (pos < src.shape[1 + a])
            idx_out.append(np.nonzero(valid)[0])
            idx_in.append(pos[valid])
        if all(v.size for v in idx_out):
            sl[(slice(None),) + np.ix_(*idx_out)] = src[(slice(None),) + np.ix_(*idx_in)]
        contrib = sl * delta[j]
        acc[o] = acc[o] + contrib if o in acc else contrib
    for o, contrib in acc.items():
        out[:, o] = (out[:, o].astype(np.float64) + contrib).astype(np.float32)
    return [out]


def bag_delta(inj, inst, rows, idx, delta, pshape, golden_out):
    """embedding_bag (sum/mean): only the bags that look up a corrupted row change."""
    layout = inj._bag_layout(inst)
    if layout is None:
        return None
    indices, bag_of, lengths, weights = layout
    dim = pshape[1]
    mean = inst.attrs.get("mode", "sum") == "mean"
    sel = np.arange(inj.batch) if rows is None else rows
    out = golden_out.copy()
    for e, d in zip(idx, delta):
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
    return [out]
