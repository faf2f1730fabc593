"""Where the stored scales of int8 weights are read (``precision.stores_scales``).

An int8 parameter ``p`` keeps one fp32 scale per output channel (``accelsim.storage``): the
pseudo-parameter ``p#scale`` (``storage.scale_name``) with ``storage.scale_count`` elements,
laid out in HBM after all parameters (``hbm.hbm_layout``). Dequantisation happens where the
values are consumed:

* GEMM weight / bias: the output ``Y[m, n] = s_w(n)·Σ_k q[k, n]·A[m, k] + s_b·q_b[n]`` is scaled
  when an output tile is finished, so the scales of the tile's columns are loaded into the
  weight SRAM with the tile's last K step (beside the bias) and read, like the bias, in the
  last cycle of every step that finishes output rows (reader ``READER_SCALE``);
* embedding rows: the row's scale travels with the row (one more 4-byte transfer per lookup)
  into the embedding SRAM and is read with it;
* vector-unit operands: their scales are loaded with the op's first parameter piece and read by
  every chunk.

The GEMM-view map of a scale (:func:`gemm_scale_view`) is the affine view ``(g, n) -> scale
element`` (``sk = 0``): one element per output column for per-channel scales, element 0 for a
per-tensor scale (``sg = sn = 0``). A scale that varies along K (a weight quantised along its
input channels) cannot be applied after accumulation and is refused.
"""
from __future__ import annotations

import numpy as np

import dataclasses

from accelsim.ir import Program
from accelsim.storage import scale_count, scale_name
from accelsim.schedule.workload import GatherWork, GemmWork, ScheduleError, VectorWork, WeightView, fit_affine


def channel_of(program: Program, param: str, elements: np.ndarray) -> np.ndarray:
    """Scale index (channel) of flat ``elements`` of ``param`` (int64, same shape)."""
    spec = program.parameters[param]
    if spec.channel_axis is None or not spec.shape:
        return np.zeros(np.shape(elements), dtype=np.int64)
    axis = spec.channel_axis % len(spec.shape)
    return np.unravel_index(np.asarray(elements, dtype=np.int64), spec.shape)[axis].astype(np.int64)


def gemm_scale_view(program: Program, view: WeightView, groups: int, k: int, n: int) -> WeightView:
    """``(g, n) -> scale element`` of the weight or bias ``view`` of a GEMM ``groups × K × N``."""
    spec = program.parameters[view.param]
    name = scale_name(view.param)
    if spec.channel_axis is None or scale_count(spec.shape, spec.channel_axis) == 1:
        return WeightView(name, 0, 0, 0, 0)
    first = channel_of(program, view.param, np.stack([view.elements(g, 0, 1, 0, n) for g in range(groups)]))
    last = channel_of(program, view.param, np.stack([view.elements(g, k - 1, k, 0, n) for g in range(groups)]))
    if not np.array_equal(first, last):
        raise ScheduleError(f"int8 scales of {view.param!r} vary along the reduction (K) axis; "
                            "only per-output-channel or per-tensor scales are modelled")
    return fit_affine(name, first.reshape(groups, 1, n))


def table_scale_view(program: Program, table: str) -> WeightView:
    """``row -> scale element`` of an embedding table (k = table row, n = 0)."""
    spec = program.parameters[table]
    if spec.channel_axis is None or scale_count(spec.shape, spec.channel_axis) == 1:
        return WeightView(scale_name(table), 0, 0, 0, 0)
    if spec.channel_axis % len(spec.shape) != 0:
        raise ScheduleError(f"int8 scales of table {table!r} are not per row; not modelled")
    return WeightView(scale_name(table), 0, 0, 1, 0)


def vector_scales(program: Program, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scale pseudo-parameter -> sorted scale elements a vector op reads with ``params``."""
    return {scale_name(name): np.unique(channel_of(program, name, flat)) for name, flat in params.items()}


def scale_parameters(program: Program) -> list[tuple[str, int]]:
    """(scale pseudo-parameter, element count) of every parameter, in program order."""
    return [(scale_name(name), scale_count(p.shape, p.channel_axis)) for name, p in program.parameters.items()]


def with_scales(program: Program, works: list) -> list:
    """The work items with the scale views / elements they read (int8 with stored scales)."""
    out = []
    for w in works:
        if isinstance(w, GemmWork) and w.weight is not None:
            bias = gemm_scale_view(program, w.bias, w.groups, 1, w.n) if w.bias is not None else None
            w = dataclasses.replace(w, weight_scale=gemm_scale_view(program, w.weight, w.groups, w.k, w.n),
                                    bias_scale=bias)
        elif isinstance(w, GatherWork):
            w = dataclasses.replace(w, scale=table_scale_view(program, w.table))
        elif isinstance(w, VectorWork) and w.params:
            w = dataclasses.replace(w, scales=vector_scales(program, dict(w.params)))
        out.append(w)
    return out


def columns_of(view: WeightView) -> bool:
    """True when a GEMM scale view has one element per output column (per channel)."""
    return view.sg != 0 or view.sn != 0
