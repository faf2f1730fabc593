"""Read-weighted ACE: ACE bit-cycles weighted by the share of an element's reads a flip reaches.

A flip in a copy at cycle t reaches only the reads of that copy at cycles ≥ t (HBM: the
transfers that start at ≥ t, and every read of the copies they make). The plain ACE time
counts every bit-cycle up to the element's last read at full weight; here each read ρ of an
element e counts for the cycles (write, cycle(ρ)] with the weight ``share(ρ) = rows(ρ) /
reads(e)``: the output rows (of the GEMM view) or lookups it serves, over all such reads of the
element in the inference. Summed over the element's reads this is

    ACE_rw(e, copy) = Σ_ρ share(ρ) · (cycle(ρ) − write)  ≤  ACE(e, copy),

and a flip uniformly drawn from the copy's bits × cycles reaches on average ACE_rw / (bits ×
cycles) of the element's reads — the quantity a PVF measured with every read corrupted must be
scaled by. Reads per element:

* GEMM weight / bias views: every output row of the GEMM reads each element once, so
  ``reads(e)`` = Σ over the GEMMs reading the parameter of their M; a fold or output tile
  serves ``m1 − m0`` rows; int8 scales (``accelsim.schedule.scales``) likewise, a per-tensor
  scale element serving every column of the tile;
* embedding rows: one read per lookup; ``reads(e)`` = lookups of that table row in the inference
  (the number of embedding-SRAM copies of the row);
* vector-unit operands: the op reads the element as a whole (share 1 while any read of the copy
  remains: ACE_rw = ACE), like the site resolver's ``whole`` uses.

Read cycles follow ``dataflow`` (array reads), the vector unit (last cycle of each step using an
operand) and the HBM transfer starts; the closed forms per fold are in :func:`pe_reach`.
"""
from __future__ import annotations

import numpy as np

from accelsim.schedule.table import Table
from accelsim.schedule.tiling import EMBEDDING_SRAM, READER_BIAS, READER_SCALE, READER_VECTOR


def _tri(x):
    return x * (x - 1) // 2


def segment_reach(steps: Table, segs: Table, times: Table, folds: Table, fold_segment: np.ndarray,
                  fold_read_sum: np.ndarray, write: np.ndarray, ace_cycles: np.ndarray,
                  dense_reads: np.ndarray, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ACE_rw element-cycles, reached reads) of every SRAM copy (one per segment), float64 [S].

    Args:
        fold_segment: int64 [F], the weight-tile segment each fold reads (−1: none).
        fold_read_sum: int64 [F], Σ over the fold's block elements of their SRAM read cycle.
        write: int64 [S], write cycle of each copy; ace_cycles: its plain ACE (element-cycles).
        dense_reads: float64 [P], output rows reading each element of a GEMM parameter (for a
            per-tensor int8 scale: rows × columns).
        views: int64 [V, 5] weight views (param, base, sg, sk, sn).
    Returns ``(cycles, reach)``: Σ_e Σ_ρ share(ρ)·(cycle(ρ) − write) and Σ_e Σ_ρ share(ρ).
    """
    size = len(segs)
    cycles = np.zeros(size)
    reach = np.zeros(size)
    elements = ((segs.k1 - segs.k0) * (segs.n1 - segs.n0)).astype(np.float64)
    rows_of = dense_reads[segs.param] if size else np.zeros(0)
    # array reads: fold f serves its mb rows with each element of its kb x nb block
    f = np.flatnonzero(fold_segment >= 0)
    if f.size:
        s = fold_segment[f]
        kb, nb, mb = (folds.k1 - folds.k0)[f], (folds.n1 - folds.n0)[f], (folds.m1 - folds.m0)[f]
        share = mb / rows_of[s]
        np.add.at(cycles, s, share * (fold_read_sum[f] - kb * nb * write[s]))
        np.add.at(reach, s, share * kb * nb)
    # bias and int8-scale reads: the last K step of each output tile applies them to its
    # m1 - m0 rows (a per-tensor scale element to every column of the tile)
    for reader, per_tensor in ((READER_BIAS, False), (READER_SCALE, False), (READER_SCALE, True)):
        sel = segs.reader == reader
        if reader == READER_SCALE:
            shared = (views[segs.view, 2] == 0) & (views[segs.view, 4] == 0) if size else sel
            sel = sel & (shared if per_tensor else ~shared)
        idx = np.flatnonzero(sel)
        if not idx.size:
            continue
        rows = ((steps.m1 - steps.m0) * steps.out_last).astype(np.float64)
        if per_tensor:
            rows = rows * (steps.n1 - steps.n0)
        at = rows * (times.c_end - 1)
        prefix_rows, prefix_at = np.concatenate([[0.0], np.cumsum(rows)]), np.concatenate([[0.0], np.cumsum(at)])
        lo, hi = segs.read_first_step[idx], segs.read_last_step[idx] + 1
        served, served_at = prefix_rows[hi] - prefix_rows[lo], prefix_at[hi] - prefix_at[lo]
        cycles[idx] = elements[idx] / rows_of[idx] * (served_at - write[idx] * served)
        reach[idx] = elements[idx] / rows_of[idx] * served
    # vector operands: read as a whole (share 1 until the copy's last read)
    vector = np.flatnonzero((segs.reader == READER_VECTOR) & (segs.structure != EMBEDDING_SRAM))
    cycles[vector] = ace_cycles[vector]
    reach[vector] = elements[vector]
    # embedding rows: one lookup per copy, out of all lookups of that table row
    emb = np.flatnonzero(segs.structure == EMBEDDING_SRAM)
    if emb.size:
        key = segs.param[emb] * (int(segs.k0.max(initial=0)) + 1) + segs.k0[emb]
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        lookups = counts[inverse.reshape(-1)].astype(np.float64)
        cycles[emb] = ace_cycles[emb] / lookups
        reach[emb] = elements[emb] / lookups
    return cycles, reach


def hbm_reach(inverse: np.ndarray, count: int, load_start: np.ndarray, reach: np.ndarray,
              vector_copy: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """ACE_rw element-cycles of the HBM rows (merged blocks), float64 [count].

    A flip at cycle t ∈ [0, load_start] reaches copy s (the transfer starting at load_start)
    and every read that copy serves (``reach[s]``). Vector-operand copies serve their op as a
    whole: each of a block's ``copies`` counts ``1 / copies`` of its reads.
    """
    per_copy = np.where(vector_copy, reach / np.maximum(copies[inverse], 1), reach)
    out = np.zeros(count)
    np.add.at(out, inverse, (load_start + 1) * per_copy)
    return out


def pe_reach(code: int, kb: np.ndarray, nb: np.ndarray, mb: np.ndarray, rows_of: np.ndarray) -> np.ndarray:
    """ACE_rw element-cycles of PE copies (one per fold), float64.

    ws: PE(r, c) holds B[k0+r, n0+c] from write = t0+R−1; row i's MAC at t0+R+i+r+c reaches 1
    row, so Σ_{r,c,i} (1 + i + r + c) / reads. os / is: the weight passes PE(r, c) for one
    cycle, and a flip then reaches the outputs of that PE and the PEs after it in its column
    (os: rows r..mb−1) / row (is: m-columns c..mb−1): Σ (mb − r) over the passes / reads.
    """
    kb, nb, mb = (np.asarray(x, dtype=np.float64) for x in (kb, nb, mb))
    if code == 0:
        total = kb * nb * mb + kb * nb * _tri(mb) + nb * mb * _tri(kb) + kb * mb * _tri(nb)
    else:
        total = kb * nb * mb * (mb + 1) / 2
    return total / rows_of
