"""Checks of the values an execution is given, before any kernel sees them.

:func:`check_inputs` validates graph inputs (names, ranks, fixed dims, one size per symbolic
dim, element kinds, no empty batch along a symbolic leading dim) and warns (:class:`accelsim.errors.InputWarning`) about
NaN/Inf values. :func:`check_args` validates the operands of one instruction whose success
depends on *values*, not shapes: ids of a gather or embedding bag out of range (negative ids
count from the end, as ONNX Gather specifies: valid ids of an axis of size n are -n..n-1),
run-time axes, a zero step, sizes of tensors made from run-time values. A kernel that still
fails is a bug (:class:`accelsim.executor.ExecutionError`); these checks make every failure
caused by the inputs a one-line :class:`InputDataError` naming the instruction and tensor.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, Sequence

import numpy as np

from accelsim.errors import InputWarning, UserError
from accelsim.ir import Instruction, Program, ProgramError

MAX_ELEMENTS = 2**31  # elements of one tensor made from run-time values (8 GiB of fp32)


class InputDataError(ProgramError):
    """Input values an instruction cannot use (an id out of range, ...); one line."""


# ----------------------------------------------------------------------------- graph inputs
def check_inputs(program: Program, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate graph inputs by name, rank, fixed and symbolic dims and element kind; return
    them as arrays of the graph's dtypes. NaN/Inf values are accepted with an InputWarning."""
    missing = [spec.name for spec in program.inputs if spec.name not in inputs]
    if missing:
        raise ProgramError(f"missing graph input(s): {', '.join(missing)}")
    extra = sorted(set(inputs) - set(program.input_names))
    if extra:
        raise ProgramError(
            f"unknown input(s) {', '.join(extra)}; the graph takes {', '.join(program.input_names)}"
        )
    arrays: dict[str, np.ndarray] = {}
    symbols: dict[str, tuple[str, int]] = {}
    for spec in program.inputs:
        array = np.asarray(inputs[spec.name])
        if array.ndim != len(spec.shape) or any(
            isinstance(dim, int) and dim != size for dim, size in zip(spec.shape, array.shape)
        ):
            raise ProgramError(
                f"input {spec.name!r} has shape {list(array.shape)}, graph expects {list(spec.shape)}"
            )
        if array.ndim and array.shape[0] == 0 and not isinstance(spec.shape[0], int):
            raise ProgramError(f"input {spec.name!r} has an empty batch (shape {list(array.shape)}); "
                               "give at least one sample")
        for dim, size in zip(spec.shape, array.shape):
            if isinstance(dim, str) and dim not in ("", "?"):
                other = symbols.setdefault(dim, (spec.name, size))
                if other[1] != size:
                    raise ProgramError(f"input {spec.name!r} has {size} for dim {dim!r}, "
                                       f"input {other[0]!r} has {other[1]}")
        arrays[spec.name] = _convert(spec.name, array, np.dtype(spec.dtype))
    return arrays


def _convert(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as ``dtype`` when that changes no value's meaning; one line otherwise."""
    kind = array.dtype.kind
    if kind not in "biuf":
        raise ProgramError(f"input {name!r} holds {array.dtype} values; the graph expects {dtype}")
    if dtype.kind == "f":
        converted = array.astype(np.float32, copy=False)
        _warn_nonfinite(name, converted)
        return converted
    if kind == "f":
        finite = np.isfinite(array)
        if not finite.all() or np.any(array != np.round(array)):
            raise ProgramError(f"input {name!r} holds non-integer values; the graph expects {dtype}")
    if dtype.kind == "b":
        if kind != "b" and np.any((array != 0) & (array != 1)):
            raise ProgramError(f"input {name!r} holds values other than 0 and 1; the graph expects bool")
        return array.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    if kind != "b" and array.size and (array.min() < info.min or array.max() > info.max):
        raise ProgramError(f"input {name!r} holds values outside {dtype} ({info.min}..{info.max})")
    return array.astype(dtype, copy=False)


def _warn_nonfinite(name: str, array: np.ndarray) -> None:
    if np.isfinite(array).all():
        return
    warnings.warn(
        f"input {name!r} holds NaN/Inf values: the golden outputs of those samples may be NaN/Inf too, "
        "and then every fault on them looks non-finite",
        InputWarning, stacklevel=4,
    )


# ----------------------------------------------------------------------------- instruction operands
def check_args(inst: Instruction, args: Sequence[np.ndarray | None]) -> None:
    """One-line :class:`InputDataError` if the operand *values* of ``inst`` are unusable."""
    check = _CHECKS.get(inst.op)
    if check is not None:
        check(inst, args)


def _where(inst: Instruction) -> str:
    return f"instruction {inst.name!r} ({inst.op})"


def _axis(inst: Instruction, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise InputDataError(f"{_where(inst)}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def _ids(inst: Instruction, operand: int, ids, size: int, what: str) -> None:
    """Every id must lie in -size..size-1 (negative ids count from the end, as ONNX)."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise InputDataError(f"{_where(inst)}: ids {inst.inputs[operand]!r} are {ids.dtype}, not integers")
    if ids.size == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < -size or high >= size:
        bad = low if low < -size else high
        raise InputDataError(
            f"{_where(inst)}: id {bad} in {inst.inputs[operand]!r} is out of range for {what} of size {size} "
            f"(valid ids {-size}..{size - 1}; negative ids count from the end, as ONNX specifies)"
        )


def _gather(inst, args):
    data = np.asarray(args[0])
    axis = _axis(inst, int(inst.attrs["axis"]), data.ndim)
    _ids(inst, 1, args[1], data.shape[axis], f"axis {axis}")


def _gather_elements(inst, args):
    data = np.asarray(args[0])
    axis = _axis(inst, int(inst.attrs["axis"]), data.ndim)
    _ids(inst, 1, args[1], data.shape[axis], f"axis {axis}")


def _gather_nd(inst, args, batch_dims: int = 0):
    data, indices = np.asarray(args[0]), np.asarray(args[1])
    if indices.ndim < 1 or indices.shape[-1] > data.ndim - batch_dims:
        raise InputDataError(f"{_where(inst)}: indices of shape {list(indices.shape)} do not fit data of "
                             f"shape {list(data.shape)}")
    for j in range(indices.shape[-1]):
        _ids(inst, 1, indices[..., j], data.shape[batch_dims + j], f"axis {batch_dims + j}")


def _scatter_elements(inst, args):
    data = np.asarray(args[0])
    axis = _axis(inst, int(inst.attrs["axis"]), data.ndim)
    _ids(inst, 1, args[1], data.shape[axis], f"axis {axis}")


def _embedding_bag(inst, args):
    table, indices, offsets = (np.asarray(a) for a in args[:3])
    _ids(inst, 1, indices, table.shape[0], "a table of rows")
    offsets = offsets.astype(np.int64, copy=False).reshape(-1)
    if offsets.size and (offsets[0] < 0 or offsets[-1] > indices.size or np.any(np.diff(offsets) < 0)):
        raise InputDataError(f"{_where(inst)}: offsets {inst.inputs[2]!r} must be non-decreasing within "
                             f"0..{indices.size}")


def _runtime_axes(inst, args):
    if inst.attrs.get("axes") is not None or len(args) < 2 or args[1] is None:
        return
    axes = [int(a) for a in np.asarray(args[1]).reshape(-1)]
    rank = np.ndim(args[0]) + (len(axes) if inst.op == "unsqueeze" else 0)
    normalized = [_axis(inst, a, rank) for a in axes]
    if len(set(normalized)) != len(normalized):
        raise InputDataError(f"{_where(inst)}: axes {axes} repeat an axis")
    if inst.op == "squeeze" and any(np.shape(args[0])[a] != 1 for a in normalized):
        raise InputDataError(f"{_where(inst)}: axes {axes} name a dim that is not 1 in {list(np.shape(args[0]))}")


def _slice(inst, args):
    if len(args) > 4 and args[4] is not None and np.any(np.asarray(args[4]) == 0):
        raise InputDataError(f"{_where(inst)}: slice step 0 in {inst.inputs[4]!r}")


def _sizes(inst: Instruction, sizes) -> None:
    sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
    if any(s < 0 for s in sizes) or math.prod(sizes) > MAX_ELEMENTS:
        raise InputDataError(f"{_where(inst)}: shape {sizes} (at most {MAX_ELEMENTS} elements, none negative)")


def _range(inst, args):
    start, limit, delta = (float(np.asarray(a).reshape(())) for a in args[:3])
    if delta == 0 or not all(map(math.isfinite, (start, limit, delta))):
        raise InputDataError(f"{_where(inst)}: range({start:g}, {limit:g}, {delta:g}) is not a finite range")
    if (limit - start) / delta > MAX_ELEMENTS:
        raise InputDataError(f"{_where(inst)}: range of more than {MAX_ELEMENTS} elements")


def _tile(inst, args):
    repeats = [int(r) for r in np.asarray(args[1]).reshape(-1)]
    shape = np.shape(args[0])
    if len(repeats) != len(shape) or any(r < 0 for r in repeats):
        raise InputDataError(f"{_where(inst)}: repeats {repeats} for a tensor of shape {list(shape)}")
    _sizes(inst, [d * r for d, r in zip(shape, repeats)])


def _expand(inst, args):
    _sizes(inst, args[1])


def _reshape(inst, args):
    """The target shape must hold the input's elements (a 0 copies the input dim unless
    allowzero; one -1 is inferred): a batch the model did not expect fails here, named."""
    x_shape = np.shape(args[0])
    target = [int(d) for d in np.asarray(args[1]).reshape(-1)]
    if not inst.attrs.get("allowzero"):
        if any(d == 0 and i >= len(x_shape) for i, d in enumerate(target)):
            raise InputDataError(f"{_where(inst)}: shape {target} copies a dim the input {list(x_shape)} lacks")
        target = [x_shape[i] if d == 0 else d for i, d in enumerate(target)]
    size, known = math.prod(x_shape), math.prod(d for d in target if d != -1)
    unknown = target.count(-1)
    if unknown > 1 or any(d < -1 for d in target) or (
            size != known if unknown == 0 else (known == 0 or size % known)):
        raise InputDataError(f"{_where(inst)}: cannot reshape {list(x_shape)} ({size} elements) to {target}")


def _gemm(inst, args):
    """A'[M, K] @ B'[K, N] (+ C broadcast to [M, N]): C's shape may come from the inputs."""
    a_shape, b_shape = np.shape(args[0]), np.shape(args[1])
    if len(a_shape) != 2 or len(b_shape) != 2:
        raise InputDataError(f"{_where(inst)}: operands of shape {list(a_shape)} and {list(b_shape)} are not matrices")
    m, k = a_shape[::-1] if inst.attrs["trans_a"] else a_shape
    k2, n = b_shape[::-1] if inst.attrs["trans_b"] else b_shape
    if k != k2:
        raise InputDataError(f"{_where(inst)}: A {list(a_shape)} and B {list(b_shape)} do not multiply")
    c = args[2] if len(args) > 2 else None
    if c is not None and not _broadcasts(np.shape(c), (m, n)):
        raise InputDataError(f"{_where(inst)}: C of shape {list(np.shape(c))} does not broadcast to [{m}, {n}]")


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` without changing it (ONNX unidirectional)."""
    return len(shape) <= len(target) and all(d in (1, t) for d, t in zip(shape[::-1], target[::-1]))


def _concat(inst, args):
    shapes = [np.shape(a) for a in args if a is not None]
    if len(shapes) != len(args) or not shapes:
        raise InputDataError(f"{_where(inst)}: an operand is missing")
    rank = len(shapes[0])
    axis = _axis(inst, int(inst.attrs["axis"]), rank)
    for shape in shapes[1:]:
        if len(shape) != rank or any(a != b for i, (a, b) in enumerate(zip(shape, shapes[0])) if i != axis):
            raise InputDataError(f"{_where(inst)}: operand shapes {[list(s) for s in shapes]} differ off axis {axis}")


_CHECKS: dict[str, Callable[[Instruction, Sequence[np.ndarray | None]], None]] = {
    "concat": _concat,
    "gemm": _gemm,
    "reshape": _reshape,
    "gather": _gather,
    "gather_elements": _gather_elements,
    "gather_nd": lambda inst, args: _gather_nd(inst, args, int(inst.attrs.get("batch_dims", 0))),
    "scatter_nd": _gather_nd,
    "scatter_elements": _scatter_elements,
    "embedding_bag": _embedding_bag,
    "squeeze": _runtime_axes,
    "unsqueeze": _runtime_axes,
    "slice": _slice,
    "range": _range,
    "constant_of_shape": lambda inst, args: _sizes(inst, args[0]),
    "tile": _tile,
    "expand": _expand,
}

__all__ = ["InputDataError", "UserError", "MAX_ELEMENTS", "check_inputs", "check_args"]
