"""Convolution kernel: ``conv`` (ONNX Conv semantics, any number of spatial dims).

Method: im2col + one BLAS matmul per group. The input is zero-padded once, then a strided
*view* of shape ``[N, C, *kernel, *out]`` (numpy stride tricks, no copy) is materialised as
the column matrix ``cols[N, G, C/G * prod(kernel), prod(out)]`` (one copy), and
``W[G, O/G, C/G * prod(kernel)] @ cols`` gives ``Y[N, G, O/G, prod(out)]`` directly in NCHW
order — no transpose. A 1×1 kernel with unit strides and no padding skips im2col (the input
already is the column matrix). The batch is processed in chunks so that the column matrix
stays below ``_COLS_BUDGET_BYTES``; with several kernel threads (``accelsim.kernels.parallel``)
the samples are split between them. Each sample is its own sgemm, so a sample's result does not
depend on the batch, the chunking or the threads (row exact).

fp32 in, fp32 accumulation (sgemm), fp32 out.

``_im2col`` (fast, stride tricks) is private and sits behind ``im2col``, a validating wrapper;
``im2col_reference`` is its readable loop twin, tested against it.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from accelsim.ir import Instruction
from accelsim.kernels import kernel, parallel

_COLS_BUDGET_BYTES = 64 << 20


def conv_output_shape(
    spatial: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
) -> tuple[int, ...]:
    """Output spatial shape: ``floor((in + pad_b + pad_e - d*(k-1) - 1) / s) + 1`` per dim."""
    rank = len(spatial)
    out = []
    for i in range(rank):
        span = dilations[i] * (kernel_shape[i] - 1) + 1
        size = (spatial[i] + pads[i] + pads[rank + i] - span) // strides[i] + 1
        if size <= 0:
            raise ValueError(
                f"conv: spatial dim {i} of size {spatial[i]} (pads {pads[i]}+{pads[rank + i]}) "
                f"is smaller than the dilated kernel {span}"
            )
        out.append(int(size))
    return tuple(out)


def pad_spatial(x: np.ndarray, pads: Sequence[int], value: float | int = 0) -> np.ndarray:
    """Pad the spatial axes (2..) of ``x[N, C, *spatial]``; ``pads`` = (begin..., end...)."""
    rank = x.ndim - 2
    if not any(pads):
        return x
    widths = [(0, 0), (0, 0)] + [(int(pads[i]), int(pads[rank + i])) for i in range(rank)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def _im2col(
    xp: np.ndarray,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out_shape: Sequence[int],
) -> np.ndarray:
    """Fast im2col on an already padded ``xp[N, C, *spatial]`` -> ``[N, C*prod(k), prod(out)]``.

    Builds the view ``[N, C, *k, *out]`` whose element ``[n, c, *ki, *oi]`` is
    ``xp[n, c, *(oi*s + ki*d)]`` and copies it into a contiguous matrix (the only copy).
    """
    n, c = xp.shape[:2]
    sn, sc = xp.strides[:2]
    spatial_strides = xp.strides[2:]
    k_strides = tuple(st * d for st, d in zip(spatial_strides, dilations))
    o_strides = tuple(st * s for st, s in zip(spatial_strides, strides))
    view = as_strided(
        xp,
        shape=(n, c, *kernel_shape, *out_shape),
        strides=(sn, sc, *k_strides, *o_strides),
        writeable=False,
    )
    rows = c * int(np.prod(kernel_shape))
    return np.ascontiguousarray(view).reshape(n, rows, int(np.prod(out_shape)))


def im2col(
    xp: np.ndarray,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> np.ndarray:
    """Column matrix ``[N, C*prod(k), prod(out)]`` of a padded ``xp[N, C, *spatial]``.

    Row index = ``c * prod(k) + flat(k)``; column index = ``flat(out)`` (row-major).
    Validates its arguments, then calls the fast private implementation.
    """
    xp = np.asarray(xp)
    rank = xp.ndim - 2
    if rank < 1:
        raise ValueError(f"im2col: input must be [N, C, *spatial], got shape {list(xp.shape)}")
    for name, seq in (("kernel_shape", kernel_shape), ("strides", strides), ("dilations", dilations)):
        if len(seq) != rank or any(int(v) < 1 for v in seq):
            raise ValueError(f"im2col: {name} {list(seq)} invalid for {rank} spatial dims")
    out_shape = conv_output_shape(xp.shape[2:], kernel_shape, strides, [0] * 2 * rank, dilations)
    return _im2col(xp, tuple(kernel_shape), tuple(strides), tuple(dilations), out_shape)


def im2col_reference(
    xp: np.ndarray,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> np.ndarray:
    """Readable loop twin of :func:`im2col` (same layout), for tests."""
    rank = xp.ndim - 2
    n, c = xp.shape[:2]
    out_shape = conv_output_shape(xp.shape[2:], kernel_shape, strides, [0] * 2 * rank, dilations)
    kernel_positions = list(itertools.product(*[range(k) for k in kernel_shape]))
    out_positions = list(itertools.product(*[range(o) for o in out_shape]))
    cols = np.zeros((n, c * len(kernel_positions), len(out_positions)), dtype=xp.dtype)
    for b in range(n):
        for ch in range(c):
            for ki, kpos in enumerate(kernel_positions):
                row = ch * len(kernel_positions) + ki
                for oi, opos in enumerate(out_positions):
                    index = tuple(o * s + k * d for o, s, k, d in zip(opos, strides, kpos, dilations))
                    cols[b, row, oi] = xp[(b, ch) + index]
    return cols


def conv_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    group: int,
) -> np.ndarray:
    """Y[N, O, *out] of X[N, C, *spatial], W[O, C/group, *k], B[O] (see module docstring)."""
    n, c = x.shape[:2]
    o = w.shape[0]
    kernel_shape = tuple(int(k) for k in w.shape[2:])
    rank = len(kernel_shape)
    if x.ndim != rank + 2:
        raise ValueError(f"conv: X has rank {x.ndim}, W implies {rank} spatial dims")
    if c != w.shape[1] * group or o % group:
        raise ValueError(
            f"conv: X has {c} channels, W is {list(w.shape)} with group={group}"
        )
    out_shape = conv_output_shape(x.shape[2:], kernel_shape, strides, pads, dilations)
    positions = int(np.prod(out_shape))
    rows = (c // group) * int(np.prod(kernel_shape))
    w_groups = np.ascontiguousarray(w, dtype=np.float32).reshape(group, o // group, rows)
    x = np.asarray(x, dtype=np.float32)
    pointwise = all(k == 1 for k in kernel_shape) and all(s == 1 for s in strides) and not any(pads)
    y = np.empty((n, group, o // group, positions), dtype=np.float32)
    per_sample = c * int(np.prod(kernel_shape)) * positions * 4
    chunk = max(1, min(n, _COLS_BUDGET_BYTES // max(per_sample * parallel.threads(), 1)))

    def samples(lo: int, hi: int) -> None:  # one sgemm per sample: exact whatever the split
        for start in range(lo, hi, chunk):
            stop = min(hi, start + chunk)
            part = x[start:stop]
            if pointwise:
                cols = part.reshape(part.shape[0], c, positions)
            else:
                cols = _im2col(pad_spatial(part, pads), kernel_shape, strides, dilations, out_shape)
            cols = cols.reshape(part.shape[0], group, rows, positions)
            if group == 1:
                np.matmul(w_groups[0], cols[:, 0], out=y[start:stop, 0])
            else:
                np.matmul(w_groups, cols, out=y[start:stop])

    parallel.split(samples, n, 2.0 * n * o * rows * positions)
    y = y.reshape(n, o, *out_shape)
    if b is not None:
        y += np.asarray(b, dtype=np.float32).reshape((o,) + (1,) * rank)
    return y


@kernel("conv")
def conv(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """conv: X[N,C,*spatial], W[O,C/group,*kernel], B[O]? -> Y[N,O,*out].

    attrs: strides, pads (begin..., end...), dilations, group.
    """
    x, w, b = (list(args) + [None])[:3]
    y = conv_forward(
        x, w, b,
        inst.attrs["strides"], inst.attrs["pads"], inst.attrs["dilations"], inst.attrs["group"],
    )
    return (y,)
