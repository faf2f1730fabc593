"""Pooling kernels: ``max_pool``, ``avg_pool``, ``global_avg_pool``, ``global_max_pool``.

All take X[N, C, *spatial] (any number of spatial dims) and attributes normalised by the
frontend:

* ``kernel_shape``, ``strides``, ``dilations``: one int per spatial dim;
* ``pads``: (begin..., end...) explicit padding (auto_pad already resolved);
* ``ceil_mode``: 0/1. With ceil_mode the last window may run past the padded input; that
  extra region is ignored (never counted, never the max), and a window that would start
  inside the end padding is dropped (ONNX / PyTorch rule);
* ``count_include_pad`` (avg_pool): 1 counts the explicit pads in the divisor.

Vectorised: windows are rectangular, so max and sum are reduced one spatial dim at a time
(``sum(kernel)`` strided slices, each covering every output position at once). MaxPool's
Indices output uses the joint ``prod(kernel)`` offsets to find the first maximum.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import kernel


def pool_output_shape(
    spatial: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    ceil_mode: int,
) -> tuple[int, ...]:
    """Output spatial shape of a pooling window (ONNX formula incl. the ceil_mode rule)."""
    rank = len(spatial)
    out = []
    for i in range(rank):
        span = dilations[i] * (kernel_shape[i] - 1) + 1
        total = spatial[i] + pads[i] + pads[rank + i] - span
        size = (math.ceil(total / strides[i]) if ceil_mode else total // strides[i]) + 1
        if ceil_mode and (size - 1) * strides[i] >= spatial[i] + pads[i]:
            size -= 1
        if size <= 0:
            raise ValueError(f"pool: spatial dim {i} of size {spatial[i]} is smaller than window {span}")
        out.append(int(size))
    return tuple(out)


def _windows(
    x: np.ndarray,
    attrs,
    fill,
) -> tuple[np.ndarray, tuple[int, ...], list[tuple[int, ...]], list[tuple[slice, ...]]]:
    """Pad ``x`` with ``fill`` (explicit pads + ceil-mode tail); per kernel offset, its slice."""
    kernel_shape = tuple(attrs["kernel_shape"])
    strides, pads, dilations = tuple(attrs["strides"]), tuple(attrs["pads"]), tuple(attrs["dilations"])
    rank = len(kernel_shape)
    spatial = x.shape[2:]
    out_shape = pool_output_shape(spatial, kernel_shape, strides, pads, dilations, attrs["ceil_mode"])
    widths = [(0, 0), (0, 0)]
    for i in range(rank):
        needed = (out_shape[i] - 1) * strides[i] + dilations[i] * (kernel_shape[i] - 1) + 1
        tail = max(needed - spatial[i] - pads[i], 0)
        widths.append((pads[i], tail))
    xp = np.pad(x, widths, mode="constant", constant_values=fill) if any(w for p in widths for w in p) else x
    offsets = list(itertools.product(*[range(k) for k in kernel_shape]))
    slices = []
    for offset in offsets:
        index = [slice(None), slice(None)]
        for i, k in enumerate(offset):
            start = k * dilations[i]
            index.append(slice(start, start + (out_shape[i] - 1) * strides[i] + 1, strides[i]))
        slices.append(tuple(index))
    return xp, out_shape, offsets, slices


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else (np.iinfo(dtype).min if dtype.kind in "iu" else False)


def _separable(xp: np.ndarray, attrs, out_shape: Sequence[int], reducer) -> np.ndarray:
    """Reduce rectangular windows one spatial dim at a time (max and sum are separable)."""
    y = xp
    for i, (k, s, d, out) in enumerate(
        zip(attrs["kernel_shape"], attrs["strides"], attrs["dilations"], out_shape)
    ):
        index = [slice(None)] * y.ndim
        acc = None
        for offset in range(k):
            index[2 + i] = slice(offset * d, offset * d + (out - 1) * s + 1, s)
            part = y[tuple(index)]
            acc = part.copy() if acc is None else reducer(acc, part, out=acc)
        y = acc
    return y


@kernel("max_pool")
def max_pool(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """max_pool: X[N,C,*spatial] -> Y[N,C,*out] (and, with 2 outputs, int64 Indices).

    attrs: kernel_shape, strides, pads, dilations, ceil_mode, storage_order (Indices: flat
    index into X, row-major (0) or column-major over the spatial dims (1), first maximum wins).
    """
    (x,) = args[:1]
    attrs = inst.attrs
    xp, out_shape, offsets, slices = _windows(x, attrs, _lowest(x.dtype))
    if len(inst.outputs) == 1:
        return (_separable(xp, attrs, out_shape, np.maximum),)
    y = xp[slices[0]].copy()
    best = np.zeros(y.shape, dtype=np.int64)
    for position, index in enumerate(slices[1:], start=1):
        window = xp[index]
        best[window > y] = position
        np.maximum(y, window, out=y)
    return (y, _flat_indices(x.shape, attrs, out_shape, offsets, best))


def _flat_indices(shape, attrs, out_shape, offsets, best) -> np.ndarray:
    """Flat input index of the chosen kernel offset of each output element."""
    rank = len(out_shape)
    n, c = shape[:2]
    spatial = shape[2:]
    offsets_arr = np.asarray(offsets, dtype=np.int64).reshape(-1, rank)
    chosen = offsets_arr[best]  # [N, C, *out, rank]
    coords = []
    for i in range(rank):
        grid_shape = [1] * rank
        grid_shape[i] = out_shape[i]
        origin = np.arange(out_shape[i], dtype=np.int64).reshape(grid_shape) * attrs["strides"][i]
        coords.append(origin - attrs["pads"][i] + chosen[..., i] * attrs["dilations"][i])
    flat = np.zeros(best.shape, dtype=np.int64)
    if attrs["storage_order"] == 0:
        for i in range(rank):
            flat = flat * spatial[i] + coords[i]
    else:
        for i in reversed(range(rank)):
            flat = flat * spatial[i] + coords[i]
    plane = int(np.prod(spatial))
    base = np.arange(n * c, dtype=np.int64).reshape((n, c) + (1,) * rank) * plane
    return flat + base


@kernel("avg_pool")
def avg_pool(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """avg_pool: X[N,C,*spatial] -> Y[N,C,*out].

    attrs: kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad.
    The divisor of a window is the number of its elements inside the input (plus those in
    the explicit pads when count_include_pad=1); it factorises over the spatial dims.
    """
    (x,) = args[:1]
    attrs = inst.attrs
    xp, out_shape, _offsets, _slices = _windows(x, attrs, 0)
    acc_dtype = np.float32 if x.dtype.kind != "f" or x.dtype.itemsize <= 4 else x.dtype
    total = _separable(xp.astype(acc_dtype, copy=False), attrs, out_shape, np.add)
    rank = len(out_shape)
    pads = attrs["pads"]
    counts = np.ones((), dtype=np.float32)
    for i in range(rank):
        valid = np.zeros(xp.shape[2 + i], dtype=np.float32)
        if attrs["count_include_pad"]:
            valid[: x.shape[2 + i] + pads[i] + pads[rank + i]] = 1.0
        else:
            valid[pads[i]: pads[i] + x.shape[2 + i]] = 1.0
        k, s, d, out = attrs["kernel_shape"][i], attrs["strides"][i], attrs["dilations"][i], out_shape[i]
        per_dim = sum(valid[o * d: o * d + (out - 1) * s + 1: s] for o in range(k))
        counts = np.multiply.outer(counts, per_dim)
    y = total / counts
    return (y.astype(x.dtype, copy=False),)


@kernel("global_avg_pool")
def global_avg_pool(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """global_avg_pool: X[N,C,*spatial] -> Y[N,C,1,...,1] (mean over spatial dims)."""
    (x,) = args[:1]
    axes = tuple(range(2, x.ndim))
    return (np.mean(x, axis=axes, keepdims=True, dtype=np.float32).astype(x.dtype, copy=False),)


@kernel("global_max_pool")
def global_max_pool(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """global_max_pool: X[N,C,*spatial] -> Y[N,C,1,...,1] (max over spatial dims)."""
    (x,) = args[:1]
    return (np.max(x, axis=tuple(range(2, x.ndim)), keepdims=True),)
