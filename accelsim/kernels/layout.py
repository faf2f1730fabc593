"""Layout and shape kernels: reshape, transpose, slicing, concatenation, shape arithmetic.

Every kernel follows ONNX semantics with the attributes normalised by the frontend
(``frontend/ops/layout.py``). Where numpy allows, the result is a *view* of the input (no
copy): identity, reshape, flatten, squeeze, unsqueeze, transpose, slice, expand (a read-only
broadcast view), split. concat, tile, pad, trilu, range and constant_of_shape allocate.

Operand conventions (``""`` = absent optional input):

* identity: X -> X (the same array).
* reshape: X, shape[int64 k] -> Y. attrs: allowzero (0: a 0 in ``shape`` copies the input
  dim at that position; 1: it means a zero-length dim). One -1 is inferred.
* transpose: X -> Y. attrs: perm (tuple, or None = reverse all axes).
* concat: X0, X1, ... -> Y. attrs: axis (negative counts from the end).
* slice: X, starts[k], ends[k], axes[k], steps[k] (all int tensors) -> Y. ONNX clamping:
  negative starts/ends count from the end; out-of-range values are clamped (to [0, d] for
  positive steps, to [-1, d-1] for negative steps).
* squeeze: X, axes? -> Y. attrs: axes (tuple, None = all size-1 axes or read from input 1).
* unsqueeze: X, axes? -> Y. attrs: axes (tuple over the *output* rank, or None = input 1).
* flatten: X -> Y[prod(d[:axis]), prod(d[axis:])]. attrs: axis (negative from the end).
* expand: X, shape[int64] -> broadcast(X.shape, shape) (bidirectional, as ONNX).
* split: X, split? -> Y0..Y{n-1}. attrs: axis, split (tuple of sizes, or None = read from
  input 1 if present, else equal parts of ceil(d/n) with a smaller last part), num_outputs n.
* shape: X -> int64[...] = X.shape[start:end]. attrs: start, end (None = rank); Python
  slice semantics (negative from the end, clamped) as ONNX.
* size: X -> int64 scalar = number of elements.
* range: start, limit, delta (scalars) -> [max(ceil((limit-start)/delta), 0)],
  ``out[i] = start + i*delta`` in the dtype of ``start``.
* constant_of_shape: shape[int64] -> full(shape, value). attrs: value (Python scalar), dtype.
* tile: X, repeats[int64] -> np.tile.
* pad: X, pads[2r'], value?, axes? -> Y. attrs: mode ("constant"|"edge"|"reflect"|"wrap").
  pads = [begin_0..begin_{r'-1}, end_0..end_{r'-1}] over ``axes`` (absent = all axes);
  negative pads crop.
* trilu: X, k? -> upper (np.triu) or lower (np.tril) triangle of the last two axes.
  attrs: upper (0/1).
* eye_like: X -> 2-D eye of X's shape. attrs: k, dtype (numpy name).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import kernel

Args = Sequence[np.ndarray | None]


def _ints(value: np.ndarray | Sequence[int]) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


@kernel("identity")
def identity(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """Y = X (the same array object: an alias)."""
    return (args[0],)


@kernel("reshape")
def reshape(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X[d...], shape[k] -> Y[shape'] with 0 (copy dim unless allowzero) and -1 (inferred)."""
    x, shape = args
    target = _ints(shape)
    if not inst.attrs["allowzero"]:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return (np.reshape(x, target),)


@kernel("transpose")
def transpose(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X -> X.transpose(perm) (a view)."""
    perm = inst.attrs["perm"]
    return (np.transpose(args[0], None if perm is None else tuple(perm)),)


@kernel("concat")
def concat(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X0..Xn -> concatenation along ``axis``."""
    return (np.concatenate([np.asarray(a) for a in args], axis=inst.attrs["axis"]),)


def slice_bounds(dim: int, start: int, end: int, step: int) -> slice:
    """ONNX Slice clamping of one axis of length ``dim`` as a Python slice."""
    if step == 0:
        raise ValueError("slice step must not be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        return slice(start, end, step)
    start = min(max(start, -1), dim - 1)
    end = min(max(end, -1), dim - 1)
    if start < 0:  # nothing to take
        return slice(0, 0, 1)
    return slice(start, None if end < 0 else end, step)


@kernel("slice")
def slice_(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X, starts, ends, axes, steps -> X[slices] (a view)."""
    x, starts, ends, axes, steps = args
    index: list[slice] = [slice(None)] * x.ndim
    for start, end, axis, step in zip(_ints(starts), _ints(ends), _ints(axes), _ints(steps)):
        index[axis] = slice_bounds(x.shape[axis], start, end, step)
    return (x[tuple(index)],)


@kernel("squeeze")
def squeeze(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X -> X without the listed size-1 axes (all size-1 axes if none listed)."""
    x = args[0]
    axes = inst.attrs["axes"]
    if axes is None and len(args) > 1 and args[1] is not None:
        axes = _ints(args[1])
    return (np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes)),)


@kernel("unsqueeze")
def unsqueeze(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X -> X with size-1 axes inserted at ``axes`` (positions in the output)."""
    axes = inst.attrs["axes"]
    if axes is None:
        axes = _ints(args[1])
    return (np.expand_dims(args[0], tuple(axes)),)


@kernel("flatten")
def flatten(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X[d0..dn-1] -> [prod(d[:axis]), prod(d[axis:])]."""
    x = args[0]
    axis = inst.attrs["axis"]
    axis = axis + x.ndim if axis < 0 else axis
    outer = math.prod(x.shape[:axis])
    return (np.reshape(x, (outer, math.prod(x.shape[axis:]))),)


@kernel("expand")
def expand(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X, shape -> X broadcast to broadcast(X.shape, shape) (read-only view)."""
    x, shape = args
    target = np.broadcast_shapes(x.shape, tuple(_ints(shape)))
    return (np.broadcast_to(x, target),)


@kernel("split")
def split(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X -> n views along ``axis`` with the given (or equal, ceil-sized) part lengths."""
    x = args[0]
    axis = inst.attrs["axis"]
    sizes = inst.attrs["split"]
    if sizes is None and len(args) > 1 and args[1] is not None:
        sizes = _ints(args[1])
    n = inst.attrs["num_outputs"]
    dim = x.shape[axis]
    if sizes is None:
        chunk = -(-dim // n)
        sizes = [min(chunk, max(dim - i * chunk, 0)) for i in range(n)]
    if len(sizes) != n or sum(sizes) != dim:
        raise ValueError(f"split sizes {list(sizes)} do not cover axis {axis} of length {dim} in {n} parts")
    cuts = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, cuts, axis=axis))


@kernel("shape")
def shape(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X -> int64 vector X.shape[start:end]."""
    start, end = inst.attrs["start"], inst.attrs["end"]
    return (np.array(args[0].shape[start:end], dtype=np.int64),)


@kernel("size")
def size(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X -> int64 scalar number of elements."""
    return (np.array(np.asarray(args[0]).size, dtype=np.int64),)


@kernel("range")
def range_(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """start, limit, delta -> start + arange(n) * delta in the dtype of start."""
    start, limit, delta = (np.asarray(a).reshape(()) for a in args)
    dtype = start.dtype
    if dtype.kind in "iu":
        n = max(-(-(int(limit) - int(start)) // int(delta)), 0)
        return ((int(start) + np.arange(n, dtype=np.int64) * int(delta)).astype(dtype),)
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    return ((start + np.arange(n, dtype=dtype) * delta.astype(dtype)).astype(dtype),)


@kernel("constant_of_shape")
def constant_of_shape(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """shape -> array of that shape filled with ``value`` (dtype ``dtype``)."""
    return (np.full(tuple(_ints(args[0])), inst.attrs["value"], dtype=inst.attrs["dtype"]),)


@kernel("tile")
def tile(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X, repeats[rank] -> X repeated ``repeats[i]`` times along axis i."""
    return (np.tile(args[0], _ints(args[1])),)


@kernel("pad")
def pad(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X, pads, value?, axes? -> padded (positive pads) and cropped (negative pads) X."""
    x, pads = args[0], _ints(args[1])
    value = args[2] if len(args) > 2 else None
    axes_arg = args[3] if len(args) > 3 else None
    axes = list(range(x.ndim)) if axes_arg is None else [a % x.ndim for a in _ints(axes_arg)]
    if len(pads) != 2 * len(axes):
        raise ValueError(f"pads has {len(pads)} values for {len(axes)} axes")
    widths = [[0, 0] for _ in range(x.ndim)]
    for i, axis in enumerate(axes):
        widths[axis] = [pads[i], pads[i + len(axes)]]
    grow = [(max(b, 0), max(e, 0)) for b, e in widths]
    mode = inst.attrs["mode"]
    if mode == "constant":
        fill = 0 if value is None or np.asarray(value).size == 0 else np.asarray(value).reshape(-1)[0]
        y = np.pad(x, grow, mode="constant", constant_values=fill)
    else:
        y = np.pad(x, grow, mode=mode)
    crop = tuple(slice(max(-b, 0), y.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))
    return (y[crop],)


@kernel("trilu")
def trilu(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X[..., N, M], k? -> upper/lower triangle (diagonal offset k) of the last two axes."""
    x = args[0]
    k = 0 if len(args) < 2 or args[1] is None else int(np.asarray(args[1]).reshape(()))
    return ((np.triu if inst.attrs["upper"] else np.tril)(x, k),)


@kernel("eye_like")
def eye_like(inst: Instruction, args: Args) -> tuple[np.ndarray, ...]:
    """X[N, M] -> ones on diagonal k, zeros elsewhere, dtype ``dtype``."""
    rows, cols = args[0].shape
    return (np.eye(rows, cols, k=inst.attrs["k"], dtype=inst.attrs["dtype"]),)
