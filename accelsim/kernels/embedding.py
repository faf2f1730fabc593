"""Gather/scatter kernels and the embedding bag (the vector unit's lookup-and-reduce).

* gather: data, indices -> np.take(data, indices, axis). attrs: axis. Negative indices
  count from the end (ONNX); out-of-range indices are an error.
* gather_elements: data, indices -> take_along_axis. attrs: axis.
* gather_nd: data, indices[..., k] -> data[batch..., idx...]. attrs: batch_dims.
* scatter_nd: data, indices[..., k], updates -> copy of data with updates applied at the
  indexed slices. attrs: reduction ("none"|"add"|"mul"|"max"|"min"); with "none",
  duplicate indices keep the last update.
* scatter_elements: data, indices, updates -> attrs: axis, reduction (as scatter_nd).
* embedding_bag: table[R, D], indices[L] (int), offsets (int), per_sample_weights[L]? ->
  out[B, D]. attrs: mode ("sum"|"mean"|"max"), include_last_offset (bool), empty_value
  (float). B = len(offsets) - include_last_offset; bag b holds the rows
  ``indices[offsets[b] : offsets[b+1]]`` (the last bag runs to L unless include_last_offset);
  offsets must be non-decreasing within [0, L] (as torch requires; an error otherwise). An
  empty bag's row is ``empty_value`` everywhere (0.0 as torch; -inf reproduces ONNX ReduceMax
  over an empty set). Negative indices count from the end of the table (ONNX Gather).
  Rows are multiplied by their per-sample weight before the reduction; accumulation is
  fp32 in index order; max propagates NaN.

The embedding bag runs in a private Numba kernel (``_bag_fast``) behind a validating
wrapper (``embedding_bag_values``); ``embedding_bag_reference`` is its readable numpy twin,
which the tests compare it against.
"""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import kernel

Args = Sequence[np.ndarray | None]

_MODES = {"sum": 0, "mean": 1, "max": 2}


@kernel("gather")
def gather(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """data[..., d_axis, ...], indices[i...] -> data with axis replaced by indices' shape."""
    data, indices = args
    return (np.take(data, np.asarray(indices).astype(np.int64, copy=False), axis=inst.attrs["axis"]),)


@kernel("gather_elements")
def gather_elements(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """data, indices (same rank) -> out[p] = data[p with p[axis] = indices[p]]."""
    data, indices = args
    axis = inst.attrs["axis"]
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return (np.take_along_axis(data, idx, axis=axis),)


@kernel("gather_nd")
def gather_nd(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """data[b..., d...], indices[b..., n..., k] -> [b..., n..., d[k:]...]."""
    data, indices = args
    b = inst.attrs["batch_dims"]
    indices = np.asarray(indices).astype(np.int64)
    k = indices.shape[-1]
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat_data = data.reshape((batch,) + data.shape[b:])
    flat_idx = indices.reshape(batch, -1, k)
    batch_index = np.arange(batch)[:, None]
    picked = flat_data[(batch_index,) + tuple(flat_idx[..., j] for j in range(k))]
    return (picked.reshape(indices.shape[:-1] + data.shape[b + k:]),)


_UFUNCS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter(out: np.ndarray, key: tuple[np.ndarray, ...], updates: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        out[key] = updates
    else:
        _UFUNCS[reduction].at(out, key, updates)
    return out


@kernel("scatter_nd")
def scatter_nd(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """data, indices[..., k], updates[..., data.shape[k:]] -> updated copy of data."""
    data, indices, updates = args
    indices = np.asarray(indices).astype(np.int64)
    k = indices.shape[-1]
    flat_idx = indices.reshape(-1, k)
    flat_upd = np.asarray(updates, dtype=data.dtype).reshape((flat_idx.shape[0],) + data.shape[k:])
    key = tuple(flat_idx[:, j] for j in range(k))
    return (_scatter(np.array(data, copy=True), key, flat_upd, inst.attrs["reduction"]),)


@kernel("scatter_elements")
def scatter_elements(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """data, indices, updates (same shape as indices) -> out[p with p[axis]=indices[p]] (op)= updates[p]."""
    data, indices, updates = args
    axis = inst.attrs["axis"] % data.ndim
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    coords = list(np.indices(idx.shape, sparse=True))
    coords[axis] = idx
    key = tuple(np.broadcast_arrays(*coords))
    upd = np.asarray(updates, dtype=data.dtype)
    return (_scatter(np.array(data, copy=True), key, upd, inst.attrs["reduction"]),)


# ----------------------------------------------------------------------------- embedding bag
def _bag_bounds(offsets: np.ndarray, length: int, include_last_offset: bool) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of every bag (validated offsets; the clamps are a safety net)."""
    offsets = offsets.astype(np.int64, copy=False)
    starts = offsets[:-1] if include_last_offset else offsets
    ends = np.empty_like(starts)
    ends[:-1] = offsets[1 : len(starts)]
    if len(starts):
        ends[-1] = offsets[-1] if include_last_offset else length
    starts = np.minimum(starts, length)
    ends = np.maximum(np.minimum(ends, length), starts)
    return starts, ends


def _validate(table, indices, offsets, weights, mode, include_last_offset):
    table = np.asarray(table)
    if table.ndim != 2 or table.dtype != np.float32:
        raise ValueError(f"embedding_bag: table must be float32 [R, D], got {table.dtype}{list(table.shape)}")
    if mode not in _MODES:
        raise ValueError(f"embedding_bag: unknown mode {mode!r}")
    indices = np.asarray(indices)
    offsets = np.asarray(offsets)
    if indices.ndim != 1 or indices.dtype.kind not in "iu":
        raise ValueError(f"embedding_bag: indices must be a 1-D integer array, got {indices.dtype}{list(indices.shape)}")
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise ValueError(f"embedding_bag: offsets must be a 1-D integer array, got {offsets.dtype}{list(offsets.shape)}")
    if include_last_offset and len(offsets) == 0:
        raise ValueError("embedding_bag: include_last_offset needs at least one offset")
    if len(offsets) and (int(offsets[0]) < 0 or int(offsets[-1]) > len(indices) or np.any(np.diff(offsets) < 0)):
        raise ValueError(
            f"embedding_bag: offsets must be non-decreasing within [0, {len(indices)}] "
            f"(got first {int(offsets[0])}, last {int(offsets[-1])})"
        )
    rows = table.shape[0]
    idx = indices.astype(np.int64)
    if idx.size:
        idx = np.where(idx < 0, idx + rows, idx)
        bad = (idx < 0) | (idx >= rows)
        if bad.any():
            raise ValueError(
                f"embedding_bag: index {int(indices[np.argmax(bad)])} out of range for a table of {rows} rows"
            )
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        if weights.shape != indices.shape:
            raise ValueError(
                f"embedding_bag: per_sample_weights shape {list(weights.shape)} != indices {list(indices.shape)}"
            )
    starts, ends = _bag_bounds(offsets, len(idx), include_last_offset)
    return table, idx, starts, ends, weights


@numba.njit(cache=True, nogil=True)
def _bag_fast(table, idx, starts, ends, weights, use_weights, mode, empty_value, out):  # pragma: no cover - jit
    dim = table.shape[1]
    for b in range(starts.shape[0]):
        s, e = starts[b], ends[b]
        if e <= s:
            for d in range(dim):
                out[b, d] = empty_value
            continue
        for d in range(dim):
            out[b, d] = np.float32(0.0)
        first = True
        for j in range(s, e):
            row = idx[j]
            w = weights[j] if use_weights else np.float32(1.0)
            for d in range(dim):
                v = table[row, d] * w if use_weights else table[row, d]
                if mode == 2:
                    cur = out[b, d]
                    if first or (cur == cur and (v > cur or v != v)):  # NaN sticks
                        out[b, d] = v
                else:
                    out[b, d] += v
            first = False
        if mode == 1:
            count = np.float32(e - s)
            for d in range(dim):
                out[b, d] = out[b, d] / count


def embedding_bag_values(
    table: np.ndarray,
    indices: np.ndarray,
    offsets: np.ndarray,
    per_sample_weights: np.ndarray | None = None,
    *,
    mode: str = "sum",
    include_last_offset: bool = False,
    empty_value: float = 0.0,
) -> np.ndarray:
    """Validated fast embedding bag: table[R, D], indices[L], offsets -> float32 [B, D]."""
    table, idx, starts, ends, weights = _validate(table, indices, offsets, per_sample_weights, mode, include_last_offset)
    out = np.empty((len(starts), table.shape[1]), dtype=np.float32)
    use_weights = weights is not None
    _bag_fast(
        np.ascontiguousarray(table), idx, starts, ends,
        weights if use_weights else np.zeros(1, dtype=np.float32), use_weights,
        _MODES[mode], np.float32(empty_value), out,
    )
    return out


def embedding_bag_reference(
    table: np.ndarray,
    indices: np.ndarray,
    offsets: np.ndarray,
    per_sample_weights: np.ndarray | None = None,
    *,
    mode: str = "sum",
    include_last_offset: bool = False,
    empty_value: float = 0.0,
) -> np.ndarray:
    """Readable numpy twin of :func:`embedding_bag_values` (same validation and semantics)."""
    table, idx, starts, ends, weights = _validate(table, indices, offsets, per_sample_weights, mode, include_last_offset)
    out = np.full((len(starts), table.shape[1]), np.float32(empty_value), dtype=np.float32)
    for b, (s, e) in enumerate(zip(starts, ends)):
        if e <= s:
            continue
        rows = table[idx[s:e]]
        if weights is not None:
            rows = rows * weights[s:e, None]
        if mode == "sum":
            out[b] = np.add.reduce(rows, axis=0)
        elif mode == "mean":
            out[b] = np.add.reduce(rows, axis=0) / np.float32(e - s)
        else:
            out[b] = np.max(rows, axis=0)
    return out


@kernel("embedding_bag")
def embedding_bag(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """table[R, D], indices[L], offsets, per_sample_weights? -> [B, D] (see module docstring)."""
    table, indices, offsets = args[:3]
    weights = args[3] if len(args) > 3 else None
    return (
        embedding_bag_values(
            table, indices, offsets, weights,
            mode=inst.attrs["mode"],
            include_last_offset=bool(inst.attrs["include_last_offset"]),
            empty_value=float(inst.attrs["empty_value"]),
        ),
    )
