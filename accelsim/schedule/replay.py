"""Tile-by-tile reference execution of the scheduled GEMMs, reading weights only through the
residency table and only inside their residency windows (a check of the schedule, for tests).

For every GEMM whose weight is a parameter, in fold order: the fold's PE copy (``pe`` row) gives
the weight block; its elements are taken from the parameter through the row's element map
(``ResidencyTable.elements``), never from the op's operand. The copy must have been filled from
a ``weight_sram`` copy that was written before the fold started and still read by it, which in
turn must have been read from an ``hbm`` row before it was written. The fold then adds
``A[m0:m1, k0:k1] @ W[k0:k1, n0:n1]`` to its output block; the bias (if any) is read from its
``weight_sram`` copy. Summation order differs from BLAS, so results equal numpy's exactly only
for data whose partial sums are exact (e.g. small integers); otherwise to rounding.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from accelsim.ir import Program
from accelsim.schedule.core import Schedule
from accelsim.schedule.residency import STRUCTURES
from accelsim.schedule.workload import GemmWork


class ReplayError(AssertionError):
    """A weight was read outside its residency window, or a copy has no source."""


def gemm_operand_a(program: Program, work: GemmWork, cache: Mapping[str, np.ndarray]) -> np.ndarray:
    """The GEMM-view activation operand A as [G, M, K] (im2col for conv)."""
    inst = program.instructions[work.index]
    a = np.asarray(cache[inst.inputs[0]], dtype=np.float64)
    if work.op == "conv":
        from accelsim.kernels.conv import im2col, pad_spatial

        w_shape = program.parameters[work.weight.param].shape if work.weight.param in program.parameters \
            else cache[inst.inputs[1]].shape
        cols = im2col(pad_spatial(a, inst.attr("pads")), w_shape[2:], inst.attr("strides"),
                      inst.attr("dilations"))  # [N, C*k, P]
        kg = work.k
        parts = [cols[:, g * kg:(g + 1) * kg, :].transpose(0, 2, 1).reshape(-1, kg)
                 for g in range(work.groups)]
        return np.stack(parts)
    if work.op == "gemm":
        return (a.T if inst.attr("trans_a") else a)[None]
    return a.reshape(1, -1, a.shape[-1])


def replay(schedule: Schedule, program: Program, cache: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Op name -> replayed output (the op's output layout) for every GEMM with a parameter weight.

    ``cache`` holds the op inputs (e.g. a golden cache). Raises :class:`ReplayError` when a
    weight read falls outside a residency window.
    """
    res = schedule.residency
    c = res.cols
    pe, sram, hbm = (STRUCTURES.index(s) for s in ("pe", "weight_sram", "hbm"))
    results: dict[str, np.ndarray] = {}
    folds = schedule.folds
    for op_index, work in enumerate(schedule.works):
        if not isinstance(work, GemmWork) or work.weight is None:
            continue
        if work.swapped:
            raise ReplayError(f"op {work.name}: replay of a matmul with a parameter left operand is not implemented")
        values = np.asarray(program.parameter_values[work.weight.param], dtype=np.float64).reshape(-1)
        a = gemm_operand_a(program, work, cache)
        y = np.zeros((work.groups, work.m, work.n), dtype=np.float64)
        op_folds = folds.take(folds.work == op_index)
        pe_rows = np.flatnonzero((c["structure"] == pe) & (c["op"] == op_index))
        sram_rows = np.flatnonzero((c["structure"] == sram) & (c["op"] == op_index))
        hbm_rows = np.flatnonzero(c["structure"] == hbm)
        if len(pe_rows) != len(op_folds):
            raise ReplayError(f"op {work.name}: {len(pe_rows)} PE copies for {len(op_folds)} folds")
        blocks = op_folds.rows(("g", "m0", "m1", "k0", "k1", "n0", "n1", "start"))
        for (g, m0, m1, k0, k1, n0, n1, start), row in zip(blocks, pe_rows):
            if (c["k0"][row], c["k1"][row], c["n0"][row], c["n1"][row], c["g"][row]) != (k0, k1, n0, n1, g):
                raise ReplayError(f"op {work.name}: PE copy {row} does not match its fold")
            if not (c["write_cycle"][row] < c["first_read"][row] <= c["last_read"][row] < c["evict_cycle"][row]):
                raise ReplayError(f"op {work.name}: PE copy {row} read outside its window")
            src = _source(c, sram_rows, row, start, c["first_read"][row])
            _source(c, hbm_rows, src, 0, c["write_cycle"][src])
            w_block = values[res.elements(row)]
            y[g, m0:m1, n0:n1] += a[g, m0:m1, k0:k1] @ w_block
        bias = np.zeros((work.groups, work.n))
        if work.bias is not None:
            for row in sram_rows[c["view"][sram_rows] != c["view"][pe_rows[0]]]:
                bv = np.asarray(program.parameter_values[work.bias.param], dtype=np.float64).reshape(-1)
                bias[c["g"][row], c["n0"][row]:c["n1"][row]] = bv[res.elements(row)][0]
        results[work.name] = _to_output(program, work, y, bias[:, None, :], cache)
    return results


def _source(c, candidates: np.ndarray, row: int, read_from: int, read_to: int) -> int:
    """The copy among ``candidates`` that holds ``row``'s block and is read in [read_from, read_to]."""
    ok = ((c["view"][candidates] == c["view"][row]) & (c["g"][candidates] == c["g"][row])
          & (c["k0"][candidates] <= c["k0"][row]) & (c["k1"][candidates] >= c["k1"][row])
          & (c["n0"][candidates] <= c["n0"][row]) & (c["n1"][candidates] >= c["n1"][row])
          & (c["write_cycle"][candidates] < read_from) & (c["first_read"][candidates] <= read_to)
          & (c["last_read"][candidates] >= read_from) & (c["evict_cycle"][candidates] > read_to))
    hits = candidates[ok]
    if hits.size == 0:
        raise ReplayError(
            f"copy {row} (block k {c['k0'][row]}:{c['k1'][row]}, n {c['n0'][row]}:{c['n1'][row]}) "
            f"has no source copy readable at cycles {read_from}..{read_to}"
        )
    return int(hits[0])


def _to_output(program: Program, work: GemmWork, y: np.ndarray, bias: np.ndarray, cache) -> np.ndarray:
    inst = program.instructions[work.index]
    if work.op == "gemm":
        c_name = inst.inputs[2] if len(inst.inputs) > 2 else ""
        if work.bias is None and c_name:  # C not a bias parameter: added by the vector epilogue
            c_value = program.constants[c_name] if c_name in program.constants else cache[c_name]
            bias = np.asarray(c_value, dtype=np.float64)[None]
        y = float(inst.attr("alpha")) * y + float(inst.attr("beta")) * bias
    else:
        y = y + bias
    out_shape = np.shape(cache[inst.outputs[0]])
    if work.op == "conv":
        batch = out_shape[0]
        per = y.shape[1] // batch
        z = y.reshape(work.groups, batch, per, work.n).transpose(1, 0, 3, 2)
        return z.reshape(out_shape)
    return y[0].reshape(out_shape)
