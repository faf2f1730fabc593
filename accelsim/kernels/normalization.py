"""Normalisation, softmax and reduction kernels (fp32 compute for float inputs).

IR ops (operands -> results; attributes as normalised by the frontend):

* ``layer_norm``: X, scale, bias? -> Y[, mean, inv_std_dev]; attrs axis (first normalised
  axis, may be negative), epsilon. mean/inv_std_dev keep the normalised axes as size 1.
* ``rms_norm``: X, scale -> Y; attrs axis, epsilon.
* ``batch_norm``: X[N,C,...], scale[C], bias[C], mean[C], var[C] -> Y; attrs epsilon.
* ``instance_norm``: X[N,C,*spatial], scale[C], bias[C] -> Y; attrs epsilon.
* ``group_norm``: X[N,C,*spatial], scale, bias -> Y; attrs num_groups, epsilon,
  per_group_affine (1: scale/bias are [num_groups] as in opset 18; 0: [C]).
* ``softmax`` / ``log_softmax`` / ``hardmax``: attrs axes (tuple of axes normalised
  together: one axis from opset 13, all trailing axes from ``axis`` before — the old
  "coerce to 2-D" rule).
* ``reduce_sum`` / ``reduce_mean`` / ``reduce_max`` / ``reduce_min`` / ``reduce_prod`` /
  ``reduce_l1`` / ``reduce_l2`` / ``reduce_log_sum`` / ``reduce_log_sum_exp`` /
  ``reduce_sum_square``: X, axes? -> Y; attrs axes (tuple; ``None`` = all axes; ``()`` =
  no reduction), keepdims, noop_with_empty_axes (only read when the optional int64 axes
  operand, known at run time only, is present). An empty reduction gives the identity
  (0, 1, -inf/+inf or the integer limits).
* ``argmax`` / ``argmin``: attrs axis, keepdims, select_last_index -> int64.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import kernel, parallel


def _norm_axes(ndim: int, axis: int) -> tuple[int, ...]:
    return tuple(range(axis % ndim if ndim else 0, ndim))


def _by_rows(inst: Instruction, x: np.ndarray, core) -> np.ndarray:
    """``core(x)`` computed over independent leading-axis slices on the kernel threads
    (``accelsim.kernels.parallel``): each row's result is the one ``core`` gives it alone."""
    if parallel.threads() <= 1 or x.ndim < 2 or x.shape[0] < 2:
        return core(x)
    out = np.empty(x.shape, dtype=x.dtype)

    def part(lo: int, hi: int) -> None:
        out[lo:hi] = core(x[lo:hi])

    parallel.split(part, x.shape[0], 10.0 * x.size)
    return out


@kernel("layer_norm")
def layer_norm(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y = (X - mean) / sqrt(var + eps) * scale + bias over axes [axis, rank)."""
    x, scale, bias = (list(args) + [None, None])[:3]
    x32 = np.asarray(x, dtype=np.float32)
    axes = _norm_axes(x32.ndim, inst.attrs["axis"])
    if len(inst.outputs) <= 1 and axes and axes[0] > 0 and x.dtype == np.float32:
        return (_by_rows(inst, x32, lambda part: _layer_norm_core(part, axes, scale, bias, inst, x.dtype)[0]),)
    return _layer_norm_core(x32, axes, scale, bias, inst, x.dtype)[: max(1, len(inst.outputs))]


def _layer_norm_core(x32, axes, scale, bias, inst, dtype):
    """(Y, mean, inv_std) of a fp32 X normalised over ``axes``; Y in ``dtype``."""
    mean = np.mean(x32, axis=axes, keepdims=True, dtype=np.float32)
    centered = x32 - mean
    var = np.mean(np.square(centered), axis=axes, keepdims=True, dtype=np.float32)
    inv_std = (np.float32(1.0) / np.sqrt(var + np.float32(inst.attrs["epsilon"]))).astype(np.float32)
    y = centered * inv_std * scale
    if bias is not None:
        y = y + bias
    y = y.astype(dtype, copy=False)
    return (y, mean, inv_std)


@kernel("rms_norm")
def rms_norm(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y = X / sqrt(mean(X^2) + eps) * scale over axes [axis, rank)."""
    x, scale = args[:2]
    x32 = np.asarray(x, dtype=np.float32)
    axes = _norm_axes(x32.ndim, inst.attrs["axis"])
    ms = np.mean(np.square(x32), axis=axes, keepdims=True, dtype=np.float32)
    y = x32 / np.sqrt(ms + np.float32(inst.attrs["epsilon"])) * scale
    return (y.astype(x.dtype, copy=False),)


def _channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(v, dtype=np.float32).reshape((1, -1) + (1,) * (ndim - 2))


@kernel("batch_norm")
def batch_norm(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Inference BatchNorm over channel axis 1: (X - mean) / sqrt(var + eps) * scale + bias."""
    x, scale, bias, mean, var = args[:5]
    ndim = x.ndim
    inv = _channel(scale, ndim) / np.sqrt(_channel(var, ndim) + np.float32(inst.attrs["epsilon"]))
    y = (x - _channel(mean, ndim)) * inv + _channel(bias, ndim)
    return (y.astype(np.float32, copy=False),)


@kernel("instance_norm")
def instance_norm(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Normalise each (n, c) plane over its spatial dims, then per-channel scale and bias."""
    x, scale, bias = args[:3]
    axes = tuple(range(2, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True, dtype=np.float32)
    centered = x - mean
    var = np.mean(np.square(centered), axis=axes, keepdims=True, dtype=np.float32)
    y = centered / np.sqrt(var + np.float32(inst.attrs["epsilon"]))
    y = y * _channel(scale, x.ndim) + _channel(bias, x.ndim)
    return (y.astype(np.float32, copy=False),)


@kernel("group_norm")
def group_norm(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Normalise X[N,C,*sp] over each group of C/num_groups channels and the spatial dims."""
    x, scale, bias = args[:3]
    groups = inst.attrs["num_groups"]
    n, c = x.shape[:2]
    grouped = np.asarray(x, dtype=np.float32).reshape(n, groups, -1)
    mean = np.mean(grouped, axis=2, keepdims=True, dtype=np.float32)
    centered = grouped - mean
    var = np.mean(np.square(centered), axis=2, keepdims=True, dtype=np.float32)
    y = (centered / np.sqrt(var + np.float32(inst.attrs["epsilon"]))).reshape(x.shape)
    scale, bias = np.asarray(scale, np.float32), np.asarray(bias, np.float32)
    if inst.attrs["per_group_affine"]:
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    y = y * _channel(scale, x.ndim) + _channel(bias, x.ndim)
    return (y.astype(np.float32, copy=False),)


# ------------------------------------------------------------------ softmax family
@kernel("softmax", "log_softmax", "hardmax")
def softmax(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """softmax / log_softmax / hardmax over ``axes`` jointly (max-subtracted, fp32)."""
    (x,) = args[:1]
    axes = tuple(a % x.ndim for a in inst.attrs["axes"]) if x.ndim else ()
    if inst.op == "hardmax":
        return (_hardmax(x, axes),)
    if axes and min(axes) > 0:
        return (_by_rows(inst, np.asarray(x), lambda part: _softmax_core(inst, part, axes)),)
    return (_softmax_core(inst, x, axes),)


def _softmax_core(inst: Instruction, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    shifted = x - np.max(x, axis=axes, keepdims=True)
    e = np.exp(shifted)
    total = np.sum(e, axis=axes, keepdims=True, dtype=np.float32)
    if inst.op == "softmax":
        return (e / total).astype(x.dtype, copy=False)
    return (shifted - np.log(total)).astype(x.dtype, copy=False)


def _hardmax(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """1 at the first maximum over ``axes`` (one axis, or trailing axes jointly), else 0."""
    if len(axes) == 1:
        winner = np.expand_dims(np.argmax(x, axis=axes[0]), axes[0])
        y = np.zeros_like(x)
        np.put_along_axis(y, winner, 1, axis=axes[0])
        return y
    flat = x.reshape(x.shape[: axes[0]] + (-1,))
    winner = np.argmax(flat, axis=-1)
    y = np.zeros_like(flat)
    np.put_along_axis(y, winner[..., None], 1, axis=-1)
    return y.reshape(x.shape)


# ------------------------------------------------------------------ reductions
def _empty_identity(op: str, dtype: np.dtype):
    if op in ("reduce_max", "reduce_log_sum_exp"):
        if dtype.kind == "f":
            return -np.inf
        return np.iinfo(dtype).min if dtype.kind in "iu" else False
    if op == "reduce_min":
        if dtype.kind == "f":
            return np.inf
        return np.iinfo(dtype).max if dtype.kind in "iu" else True
    if op == "reduce_prod":
        return 1
    if op == "reduce_log_sum":
        return -np.inf
    return 0


def _reduce(op: str, x: np.ndarray, axes) -> np.ndarray:
    acc = np.float32 if x.dtype.kind == "f" and x.dtype.itemsize <= 4 else None
    if op == "reduce_sum":
        return np.sum(x, axis=axes, keepdims=True, dtype=acc)
    if op == "reduce_mean":
        return np.mean(x, axis=axes, keepdims=True, dtype=acc)
    if op == "reduce_max":
        return np.max(x, axis=axes, keepdims=True)
    if op == "reduce_min":
        return np.min(x, axis=axes, keepdims=True)
    if op == "reduce_prod":
        return np.prod(x, axis=axes, keepdims=True, dtype=acc)
    if op == "reduce_l1":
        return np.sum(np.abs(x), axis=axes, keepdims=True, dtype=acc)
    if op == "reduce_l2":
        return np.sqrt(np.sum(np.square(x), axis=axes, keepdims=True, dtype=acc))
    if op == "reduce_sum_square":
        return np.sum(np.square(x), axis=axes, keepdims=True, dtype=acc)
    if op == "reduce_log_sum":
        return np.log(np.sum(x, axis=axes, keepdims=True, dtype=acc))
    if op == "reduce_log_sum_exp":
        peak = np.max(x, axis=axes, keepdims=True)
        safe = np.where(np.isfinite(peak), peak, 0).astype(x.dtype, copy=False)
        return np.log(np.sum(np.exp(x - safe), axis=axes, keepdims=True, dtype=acc)) + safe
    raise ValueError(f"unknown reduction {op!r}")


@kernel(
    "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1",
    "reduce_l2", "reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square",
)
def reduce(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Reduce X over ``axes`` (None = all, () = elementwise only, as numpy); keepdims 0/1.

    An optional second operand (int64 axes known only at run time) overrides the ``axes``
    attribute: an empty one means all axes, or none if ``noop_with_empty_axes``.
    """
    x = np.asarray(args[0])
    axes = inst.attrs["axes"]
    if len(args) > 1 and args[1] is not None:
        runtime = [int(a) for a in np.asarray(args[1]).ravel()]
        axes = tuple(runtime) if runtime else (() if inst.attrs["noop_with_empty_axes"] else None)
    axes = tuple(range(x.ndim)) if axes is None else tuple(sorted(a % x.ndim for a in axes))
    if axes and any(x.shape[a] == 0 for a in axes):
        shape = tuple(1 if a in axes else d for a, d in enumerate(x.shape))
        y = np.full(shape, _empty_identity(inst.op, x.dtype), dtype=x.dtype)
    else:
        with np.errstate(divide="ignore"):
            y = _reduce(inst.op, x, axes)
    if not inst.attrs["keepdims"] and axes:
        y = y.reshape(tuple(d for a, d in enumerate(y.shape) if a not in axes))
    return (np.asarray(y).astype(x.dtype, copy=False),)


@kernel("argmax", "argmin")
def arg_extreme(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Index (int64) of the first (or last, select_last_index=1) max/min along ``axis``."""
    x = np.asarray(args[0])
    axis = inst.attrs["axis"] % x.ndim
    fn = np.argmax if inst.op == "argmax" else np.argmin
    if inst.attrs["select_last_index"]:
        flipped = np.flip(x, axis=axis)
        index = x.shape[axis] - 1 - fn(flipped, axis=axis)
    else:
        index = fn(x, axis=axis)
    index = index.astype(np.int64)
    if inst.attrs["keepdims"]:
        index = np.expand_dims(index, axis)
    return (index,)
