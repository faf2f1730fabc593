"""IR program + concrete shapes -> the list of work items the accelerator executes.

Three kinds of work (in program order):

* :class:`GemmWork` — ``gemm``, ``matmul`` (attention matmuls included) and ``conv`` lowered to
  ``groups`` GEMMs ``Y_g[M,N] = A_g[M,K] @ B_g[K,N]``. Conv via im2col: ``M = batch·∏out``,
  ``K = C/group·∏kernel``, ``N = O/group``. Matmul folds the batch dims of A into M when B is
  2-D; otherwise ``groups`` = the broadcast batch size.
* :class:`GatherWork` — ``gather`` (axis 0) on a parameter table and ``embedding_bag``: the
  looked-up table rows, in lookup order.
* :class:`VectorWork` — every other op that moves or computes data, on the vector unit.

Every work item is named after its instruction (``inst.name``) and carries its op, except the
extra vector item of a ``gemm`` whose C is not a bias parameter over N (an activation, or a
parameter of another shape): it follows the GEMM, is named ``<inst.name>.add_c`` and has op
``gemm_add_c``.

Layout ops (reshape, flatten, squeeze, unsqueeze, identity) are free. Ops that only compute
from constants (shape arithmetic) are free. A parameter reached through view ops (the ones
above plus transpose, expand, slice, gather with constant indices) is read by the consumer.

**Weight view** (:class:`WeightView`): the GEMM-view weight element ``B_g[k, n]`` is the
parameter element at flat (C-order) index ``base + g·sg + k·sk + n·sn`` of the parameter's own
layout. Examples: gemm B[K,N]: (0, 0, N, 1); gemm B[N,K] with trans_b: (0, 0, 1, K); conv
W[O,C/g,kh,kw]: (0, (O/g)·K, 1, K) i.e. ``B_g[k,n] = W[g·O/g + n].flat[k]``; a bias over N:
(0, N, 0, 1). The map is found by pushing an index array through the view chain, and checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from accelsim.errors import UserError
from accelsim.ir import Instruction, Program

FREE_VIEW_OPS = {"reshape", "flatten", "squeeze", "unsqueeze", "identity"}
PARAM_VIEW_OPS = FREE_VIEW_OPS | {"transpose", "expand", "slice", "gather"}
SHAPE_OPS = {"shape", "constant_of_shape", "range", "size"}


class ScheduleError(UserError, ValueError):
    """The program cannot be scheduled on this configuration; one line naming op and sizes."""


@dataclass(frozen=True)
class WeightView:
    """Affine map GEMM-view weight ``[g, k, n]`` -> parameter flat element (see module doc)."""

    param: str
    base: int
    sg: int
    sk: int
    sn: int

    def elements(self, g: int, k0: int, k1: int, n0: int, n1: int) -> np.ndarray:
        """Flat parameter indices of block ``[g, k0:k1, n0:n1]``, int64 of shape [k1-k0, n1-n0]."""
        k = np.arange(k0, k1, dtype=np.int64)[:, None]
        n = np.arange(n0, n1, dtype=np.int64)[None, :]
        return self.base + g * self.sg + k * self.sk + n * self.sn


@dataclass(frozen=True)
class GemmWork:
    """One GEMM-like instruction: ``groups`` × (M×K @ K×N).

    ``weight`` is None when B is an activation (attention); ``bias`` is a view over N (k unused)
    added when an output tile is finished. ``swapped`` is True for a matmul whose left operand
    is the parameter: it is scheduled as Yᵀ = Bᵀ·Aᵀ (M and N exchanged, weight = Aᵀ).
    """

    index: int
    name: str
    op: str
    groups: int
    m: int
    k: int
    n: int
    weight: WeightView | None
    bias: WeightView | None
    swapped: bool = False
    weight_scale: WeightView | None = None  # int8 scales read when an output tile is finished
    bias_scale: WeightView | None = None


@dataclass(frozen=True)
class GatherWork:
    """Embedding lookups: ``rows`` (int64, lookup order) of ``table`` [table_rows, dim]."""

    index: int
    name: str
    op: str
    table: str
    dim: int
    rows: np.ndarray
    out_elements: int
    scale: WeightView | None = None  # int8: row -> scale element (k = table row)


@dataclass(frozen=True)
class VectorWork:
    """A vector-unit op: ``elements`` processed, activation elements read / written, and the
    parameter elements it reads (param name -> sorted unique flat indices)."""

    index: int
    name: str
    op: str
    elements: int
    in_elements: int
    out_elements: int
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    scales: Mapping[str, np.ndarray] = field(default_factory=dict)  # int8: scale param -> elements


Work = GemmWork | GatherWork | VectorWork


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def is_table_lookup(program: Program, inst: Instruction) -> bool:
    """True for an embedding lookup: ``gather`` on a parameter (directly) along axis 0."""
    return inst.op == "gather" and inst.inputs[0] in program.parameters and inst.attr("axis") == 0


class _Tracer:
    """Follows tensors back through view ops to the parameter they show."""

    def __init__(self, program: Program, shapes: Mapping[str, tuple], values: Mapping[str, np.ndarray]):
        self.program = program
        self.shapes = shapes
        self.values = values
        self.producer: dict[str, Instruction] = {}
        for inst in program.instructions:
            for out in inst.outputs:
                self.producer[out] = inst
        self._cache: dict[str, tuple[str, tuple[Instruction, ...]] | None] = {}

    def shape(self, tensor: str) -> tuple[int, ...]:
        if tensor in self.program.parameters:
            return tuple(self.program.parameters[tensor].shape)
        if tensor in self.program.constants:
            return tuple(self.program.constants[tensor].shape)
        if tensor not in self.shapes:
            raise ScheduleError(f"no concrete shape for tensor {tensor!r}")
        return tuple(int(d) for d in self.shapes[tensor])

    def value(self, tensor: str) -> np.ndarray | None:
        if tensor in self.program.constants:
            return np.asarray(self.program.constants[tensor])
        if tensor in self.values:
            return np.asarray(self.values[tensor])
        return None

    def param_of(self, tensor: str) -> str | None:
        found = self.trace(tensor)
        return None if found is None else found[0]

    def trace(self, tensor: str) -> tuple[str, tuple[Instruction, ...]] | None:
        """(parameter, view instructions from it to ``tensor``) or None for an activation."""
        if tensor in self._cache:
            return self._cache[tensor]
        result = None
        if tensor in self.program.parameters:
            result = (tensor, ())
        elif tensor in self.producer and self.producer[tensor].op in PARAM_VIEW_OPS:
            inst = self.producer[tensor]
            src = None if is_table_lookup(self.program, inst) else self.trace(inst.inputs[0])
            if src is not None:
                result = (src[0], src[1] + (inst,))
        self._cache[tensor] = result
        return result

    def indices(self, param: str, chain: tuple[Instruction, ...], root: np.ndarray | None = None) -> np.ndarray:
        """Flat parameter indices shaped like the end of ``chain`` (``root``: the start array)."""
        shape = self.program.parameters[param].shape
        idx = (np.arange(_size(shape), dtype=np.int64) if root is None else root).reshape(shape)
        for inst in chain:
            idx = self._push(inst, idx, inst.outputs[0])
        return idx

    def affine(self, param: str, chain: tuple[Instruction, ...], to_gkn) -> WeightView:
        """Affine view of ``to_gkn(indices)`` ([G, K, N]). Pushed through views only, an
        uninitialised probe's strides give it directly; otherwise real indices are fitted."""
        probe = np.empty(_size(self.program.parameters[param].shape), dtype=np.int64)
        arr = to_gkn(self.indices(param, chain, probe))
        base = arr
        while base.base is not None and base is not probe:
            base = base.base
        if base is probe:
            offset = arr.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
            sg, sk, sn = (st // 8 if d > 1 else 0 for st, d in zip(arr.strides, arr.shape))
            return WeightView(param, offset // 8, sg, sk, sn)
        return fit_affine(param, to_gkn(self.indices(param, chain)))

    def elements(self, param: str, chain: tuple[Instruction, ...]) -> np.ndarray:
        """Sorted unique flat indices of ``param`` seen at the end of ``chain``."""
        if not chain:
            return np.arange(_size(self.program.parameters[param].shape), dtype=np.int64)
        return np.unique(self.indices(param, chain))

    def _push(self, inst: Instruction, idx: np.ndarray, out: str) -> np.ndarray:
        out_shape = self.shape(out)
        if inst.op in FREE_VIEW_OPS:
            return idx.reshape(out_shape)
        if inst.op == "transpose":
            return np.transpose(idx, inst.attr("perm"))
        if inst.op == "expand":
            return np.broadcast_to(idx, out_shape)
        args = [self.value(name) if name else None for name in inst.inputs[1:]]
        if any(a is None for a, name in zip(args, inst.inputs[1:]) if name):
            raise ScheduleError(
                f"op {inst.name!r} ({inst.op}) selects parameter elements by a tensor whose "
                "values are unknown; pass them in index_values"
            )
        if inst.op == "gather":
            return np.take(idx, args[0].astype(np.int64), axis=inst.attr("axis"))
        starts, ends = args[0], args[1]
        axes = args[2] if len(args) > 2 and args[2] is not None else np.arange(len(starts))
        steps = args[3] if len(args) > 3 and args[3] is not None else np.ones(len(starts), np.int64)
        index = [slice(None)] * idx.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            index[int(axis)] = slice(*slice(int(start), int(end), int(step)).indices(idx.shape[int(axis)]))
        return idx[tuple(index)]


def fit_affine(param: str, idx: np.ndarray) -> WeightView:
    """Affine view of an index array shaped [G, K, N]; error if the layout is not affine."""
    g, k, n = idx.shape
    base = int(idx[0, 0, 0])
    sg = int(idx[1, 0, 0] - base) if g > 1 else 0
    sk = int(idx[0, 1, 0] - base) if k > 1 else 0
    sn = int(idx[0, 0, 1] - base) if n > 1 else 0
    view = WeightView(param, base, sg, sk, sn)
    expect = base + np.arange(g)[:, None, None] * sg + np.arange(k)[None, :, None] * sk \
        + np.arange(n)[None, None, :] * sn
    if not np.array_equal(idx, expect):
        raise ScheduleError(f"parameter {param!r} reaches a GEMM in a layout that is not affine")
    return view


def extract_workload(
    program: Program,
    shapes: Mapping[str, tuple],
    index_values: Mapping[str, np.ndarray],
    convention: str,
) -> list[Work]:
    """Work items of ``program`` in execution order (free ops are left out).

    Args:
        shapes: tensor name -> concrete shape for every graph input and instruction output.
        index_values: tensor name -> values of index tensors that select parameter elements
            (gather/embedding_bag indices that are not program constants).
        convention: "accelsim" (conv M from the real output shape) or "scalesim" (conv output
            size ``ceil((H - eff_kernel + stride) / stride)`` ignoring pads, as SCALE-Sim does).
    """
    tracer = _Tracer(program, shapes, index_values)
    work: list[Work] = []
    for index, inst in enumerate(program.instructions):
        ins = [name for name in inst.inputs if name]
        if inst.op in FREE_VIEW_OPS | SHAPE_OPS or all(n in program.constants for n in ins):
            continue
        if inst.op in PARAM_VIEW_OPS and tracer.trace(inst.outputs[0]) is not None:
            continue  # a view of a parameter: its consumers read the parameter
        if inst.op in ("gemm", "matmul", "conv"):
            work.extend(_gemm_work(index, inst, tracer, convention))
        elif inst.op == "embedding_bag" or is_table_lookup(program, inst):
            work.append(_gather_work(index, inst, tracer))
        else:
            work.append(_vector_work(index, inst, tracer, inst.inputs))
    return work


def _gemm_work(index: int, inst: Instruction, tracer: _Tracer, convention: str) -> list[Work]:
    a_name, b_name = inst.inputs[0], inst.inputs[1]
    out_shape = tracer.shape(inst.outputs[0])
    bias = None
    extra: list[Work] = []
    if inst.op == "conv":
        x_shape, w_shape = tracer.shape(a_name), tracer.shape(b_name)
        groups = int(inst.attr("group"))
        n = w_shape[0] // groups
        k = _size(w_shape[1:])
        spatial = out_shape[2:]
        if convention == "scalesim":
            spatial = [
                -(-(x - (kd - 1) * d - 1 + s) // s)
                for x, kd, d, s in zip(x_shape[2:], w_shape[2:], inst.attr("dilations"), inst.attr("strides"))
            ]
        m = x_shape[0] * _size(spatial)
        found = tracer.trace(b_name)
        if found is None:
            raise ScheduleError(f"op {inst.name!r} (conv): weight {b_name!r} is not a parameter")
        weight = tracer.affine(*found, lambda x: x.reshape(groups, n, k).transpose(0, 2, 1))
        if len(inst.inputs) > 2 and inst.inputs[2]:
            bias = _bias_view(inst, tracer, inst.inputs[2], groups, n)
        return [GemmWork(index, inst.name, "conv", groups, m, k, n, weight, bias)] + extra
    a_shape, b_shape = list(tracer.shape(a_name)), list(tracer.shape(b_name))
    a_param, b_param = tracer.param_of(a_name), tracer.param_of(b_name)
    if a_param is not None and b_param is not None:
        raise ScheduleError(f"op {inst.name!r} ({inst.op}): both operands are parameters")
    if inst.op == "gemm":
        ta, tb = bool(inst.attr("trans_a")), bool(inst.attr("trans_b"))
        m, k = (a_shape[1], a_shape[0]) if ta else (a_shape[0], a_shape[1])
        n = b_shape[0] if tb else b_shape[1]
        groups = 1
        to_kn = (lambda x: x.T) if tb else (lambda x: x)
        to_mk = (lambda x: x.T) if ta else (lambda x: x)
        if len(inst.inputs) > 2 and inst.inputs[2]:
            c_param = tracer.param_of(inst.inputs[2])
            if c_param is not None and _size(tracer.shape(inst.inputs[2])) == n and b_param is not None:
                bias = _bias_view(inst, tracer, inst.inputs[2], 1, n)
            else:
                extra.append(_vector_work(index, inst, tracer, (inst.inputs[2],), m * n,
                                          name=f"{inst.name}.add_c", op="gemm_add_c"))
    else:
        if len(a_shape) == 1:
            a_shape = [1] + a_shape
        if len(b_shape) == 1:
            b_shape = b_shape + [1]
        k, n = b_shape[-2], b_shape[-1]
        if len(b_shape) == 2:
            groups, m = 1, _size(a_shape[:-1])
        else:
            batch = np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))
            groups, m = _size(batch), a_shape[-2]
        to_kn = lambda x: x.reshape(-1, k, n) if len(b_shape) > 2 else x.reshape(k, n)
        to_mk = lambda x: x.reshape(-1, a_shape[-1])
    weight = None
    if b_param is not None:
        batch_b = _size(b_shape[:-2])
        if batch_b not in (1, groups):
            raise ScheduleError(f"op {inst.name!r} (matmul): parameter batch does not match {groups}")
        weight = tracer.affine(*tracer.trace(b_name), lambda x: to_kn(x).reshape(-1, k, n))
    elif a_param is not None:
        if groups != 1:
            raise ScheduleError(f"op {inst.name!r} (matmul): batched parameter left operand")
        # A[M,K] -> weight of Y^T = B^T A^T: view [K, M]
        weight = tracer.affine(*tracer.trace(a_name), lambda x: to_mk(x).T[None])
        m, n = n, m
    gemm = GemmWork(index, inst.name, inst.op, int(groups), int(m), int(k), int(n), weight, bias,
                    swapped=a_param is not None)
    return [gemm] + extra


def _bias_view(inst: Instruction, tracer: _Tracer, name: str, groups: int, n: int) -> WeightView:
    found = tracer.trace(name)
    if found is None:
        raise ScheduleError(f"op {inst.name!r} ({inst.op}): bias {name!r} is not a parameter")
    return tracer.affine(*found, lambda x: x.reshape(groups, 1, n))


def _gather_work(index: int, inst: Instruction, tracer: _Tracer) -> GatherWork:
    table = inst.inputs[0]
    indices = tracer.value(inst.inputs[1])
    if indices is None:
        raise ScheduleError(
            f"op {inst.name!r} ({inst.op}) looks up table {table!r} with indices {inst.inputs[1]!r}"
            " whose values are unknown; pass them in index_values"
        )
    shape = tracer.shape(table)
    rows = np.asarray(indices, dtype=np.int64).reshape(-1)
    rows = np.where(rows < 0, rows + shape[0], rows)
    if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
        raise ScheduleError(f"op {inst.name!r}: index out of range for table {table!r} {list(shape)}")
    out = _size(tracer.shape(inst.outputs[0]))
    return GatherWork(index, inst.name, inst.op, table, _size(shape[1:]), rows, out)


def _vector_work(index: int, inst: Instruction, tracer: _Tracer, operands, elements: int = 0,
                 name: str | None = None, op: str | None = None) -> VectorWork:
    """Vector-unit work of ``inst`` reading the tensors ``operands``.

    The work item is named ``name`` (default: the instruction's name ``inst.name``) and has op
    ``op`` (default ``inst.op``); ``elements`` is a lower bound on the elements processed.
    """
    in_elems = 0
    params: dict[str, np.ndarray] = {}
    for tensor in operands:
        if not tensor or tensor in tracer.program.constants:
            continue
        found = tracer.trace(tensor)
        if found is not None:
            used = tracer.elements(*found)
            params[found[0]] = np.union1d(params[found[0]], used) if found[0] in params else used
        else:
            in_elems += _size(tracer.shape(tensor))
    out_elems = sum(_size(tracer.shape(o)) for o in inst.outputs if o)
    sizes = [in_elems, out_elems, elements] + [len(v) for v in params.values()]
    return VectorWork(index, inst.name if name is None else name, inst.op if op is None else op,
                      int(max(sizes)), int(in_elems), int(out_elems), params)
