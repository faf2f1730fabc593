"""Closed-form timing of one GEMM ``Y[M,N] = A[M,K] @ B[K,N]`` on an R×C systolic array.

These are the formulas of SCALE-Sim 3.0.0 (checked against it in tests/test_schedule_scalesim.py).
A *fold* is one mapping of an array-sized block onto the PEs; folds run back to back and all
take the same number of cycles:

======== ============================== ====================== =============================
dataflow stationary in the PEs          folds                  cycles per fold
======== ============================== ====================== =============================
ws       B block [≤R of K, ≤C of N]     ⌈K/R⌉·⌈N/C⌉            2R + C + M − 2 (M rows stream)
os       Y block [≤R of M, ≤C of N]     ⌈M/R⌉·⌈N/C⌉            K + R + C − 2  (K streams)
is       Aᵀ block [≤R of K, ≤C of M]    ⌈K/R⌉·⌈M/C⌉            2R + C + N − 2 (N cols stream)
======== ============================== ====================== =============================

Compute cycles = folds × cycles per fold; SCALE-Sim reports one less (``convention="scalesim"``).

Cycle of every MAC inside a fold that starts at cycle ``t0`` (PE row r, column c; i is the
position in the streamed dimension — M row for ws, K index for os, N column for is):

* ws: PE(r,c) holds B[k0+r, n0+c]; it is loaded during t0 .. t0+R−1 (row r of the block read
  from the weight SRAM at t0+r) and multiplies A[m0+i, k0+r] at ``t0 + R + i + r + c``.
* os: PE(r,c) accumulates Y[m0+r, n0+c]; B[k, n0+c] is read from the weight SRAM at t0+k+c
  and used by PE(r,c) at ``t0 + k + r + c`` (one cycle in that PE's weight register).
* is: PE(r,c) holds A[m0+c, k0+r]; B[k0+r, n] is read from the weight SRAM at
  ``t0 + R + n + r`` and used by PE(r,c) at ``t0 + R + n + r + c``.

So output row m of a ws fold receives B[k0+r, n0+c] at t0 + R + (m−m0) + r + c: a flip in a PE
weight register at cycle t reaches exactly the output rows whose MAC cycle is ≥ t.

Weight-SRAM read cycle of GEMM-view weight element B[k0+dk, n0+dn] by a fold starting at
``t0`` (``sram_read_cycle``; the reads above): ws ``t0 + dk`` (row dk of the block, once per
fold); os ``t0 + dk + dn`` (column dn of the array reads its B column one k per cycle); is
``t0 + R + dn + dk``. A flip of that SRAM copy at cycle t reaches the folds whose read cycle is
≥ t.

SRAM element accesses of one GEMM without SRAM tiling (SCALE-Sim's counts):
ws: input M·K·⌈N/C⌉, weight K·N, output writes M·N·⌈K/R⌉;
os: input M·K·⌈N/C⌉, weight K·N·⌈M/R⌉, output writes M·N (SCALE-Sim adds R+C per fold);
is: input M·K, weight K·N·⌈M/C⌉, output writes M·N·⌈K/R⌉.
"""
from __future__ import annotations

import numpy as np

DATAFLOW_CODES = {"ws": 0, "os": 1, "is": 2}
CONVENTIONS = ("accelsim", "scalesim")


def _ceil(a, b):
    return -(-np.asarray(a, dtype=np.int64) // b)


def check_dataflow(dataflow: str) -> int:
    """Numeric code of ``dataflow``; one-line error if unknown."""
    if dataflow not in DATAFLOW_CODES:
        raise ValueError(f"unknown dataflow {dataflow!r}; choose ws, os or is")
    return DATAFLOW_CODES[dataflow]


def fold_grid(m, k, n, rows: int, cols: int, dataflow: str):
    """(folds along the array rows, folds along the array columns, streamed length).

    ws: (⌈K/R⌉, ⌈N/C⌉, M); os: (⌈M/R⌉, ⌈N/C⌉, K); is: (⌈K/R⌉, ⌈M/C⌉, N). Array-valued inputs
    broadcast (int64 results).
    """
    code = check_dataflow(dataflow)
    if code == 0:
        return _ceil(k, rows), _ceil(n, cols), np.asarray(m, dtype=np.int64)
    if code == 1:
        return _ceil(m, rows), _ceil(n, cols), np.asarray(k, dtype=np.int64)
    return _ceil(k, rows), _ceil(m, cols), np.asarray(n, dtype=np.int64)


def fold_cycles(stream, rows: int, cols: int, dataflow: str):
    """Cycles of one fold streaming ``stream`` rows/columns (see module table)."""
    code = check_dataflow(dataflow)
    stream = np.asarray(stream, dtype=np.int64)
    if code == 1:
        return stream + rows + cols - 2
    return 2 * rows + cols + stream - 2


def compute_cycles(m, k, n, rows: int, cols: int, dataflow: str, convention: str = "accelsim"):
    """Stall-free cycles of the whole GEMM: folds × cycles per fold (− 1 for "scalesim")."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose accelsim or scalesim")
    fa, fb, stream = fold_grid(m, k, n, rows, cols, dataflow)
    total = fa * fb * fold_cycles(stream, rows, cols, dataflow)
    return total - 1 if convention == "scalesim" else total


def sram_accesses(m, k, n, rows: int, cols: int, dataflow: str):
    """(input reads, weight reads, output writes) in elements, untiled (module docstring)."""
    code = check_dataflow(dataflow)
    m, k, n = (np.asarray(x, dtype=np.int64) for x in (m, k, n))
    if code == 0:
        return m * k * _ceil(n, cols), k * n, m * n * _ceil(k, rows)
    if code == 1:
        return m * k * _ceil(n, cols), k * n * _ceil(m, rows), m * n
    return m * k, k * n * _ceil(m, cols), m * n * _ceil(k, rows)


def mac_cycle(dataflow: str, t0, rows: int, i, r, c):
    """Cycle at which PE(r, c) does the MAC of streamed position ``i`` in a fold starting at t0."""
    code = check_dataflow(dataflow)
    base = np.asarray(t0, dtype=np.int64) + np.asarray(i) + np.asarray(r) + np.asarray(c)
    return base if code == 1 else base + rows


def tile_units(rows: int, cols: int, dataflow: str) -> tuple[int, int, int]:
    """(M, K, N) granularity of one fold block: SRAM tiles are multiples of these."""
    code = check_dataflow(dataflow)
    return ((1, rows, cols), (rows, 1, cols), (cols, rows, 1))[code]


def first_affected(dataflow: str, t0, rows: int, r, c, cycle):
    """First streamed position whose MAC in PE(r, c) happens at or after ``cycle``.

    A flip of PE(r, c)'s weight register at ``cycle`` (before that cycle's MACs) in a fold
    starting at ``t0`` reaches the streamed positions ≥ this value (clipped at 0): output rows
    m0 + i for ws, the K terms k0 + i of output (m0+r, n0+c) for os, output columns n0 + i of
    output row m0 + c for is. Positions ≥ the fold's streamed length are not reached at all.
    """
    return np.maximum(0, np.asarray(cycle, dtype=np.int64) - mac_cycle(dataflow, t0, rows, 0, r, c))


def sram_read_cycle(dataflow: str, t0, rows: int, dk, dn):
    """Cycle at which a fold starting at ``t0`` reads weight element (k0+dk, n0+dn) from the
    weight SRAM (module docstring): ws t0+dk, os t0+dk+dn, is t0+R+dn+dk. Array-valued
    ``t0`` / ``dk`` / ``dn`` broadcast (int64 result)."""
    code = check_dataflow(dataflow)
    t0, dk, dn = (np.asarray(v, dtype=np.int64) for v in (t0, dk, dn))
    if code == 0:
        return t0 + dk
    if code == 1:
        return t0 + dk + dn
    return t0 + rows + dn + dk
