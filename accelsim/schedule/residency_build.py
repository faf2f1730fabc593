"""Build the residency table from steps, load segments, the timeline and the fold table.

Rules (cycle semantics in ``residency`` and ``dataflow``):

* SRAM row = one load segment: written in the last cycle of its DMA transfer, evicted when the
  next transfer into the same slot starts. Array reads (weight tiles) follow the per-fold
  formulas of ``dataflow.sram_read_cycle``: ws row r of a block read at t0+r; os B[k, n0+c] at
  t0+k+c; is B[k0+r, n] at t0+R+n+r. Vector-unit reads (bias, vector operands, embedding rows)
  happen in the last cycle of each step that uses them.
* HBM row = one distinct block of a view (all loads of the same block merged): read at the
  start of each transfer, written at −1, evicted at the end of the schedule.
* PE row = one fold of a GEMM whose weight is a parameter (formulas in ``residency``).
"""
from __future__ import annotations

import numpy as np

from accelsim.schedule.hbm import HbmLayout
from accelsim.schedule.placement import PROTECTED, UNPROTECTED, ProtectedBank
from accelsim.schedule.reach import hbm_reach, pe_reach, segment_reach
from accelsim.schedule.residency import COLUMNS, STRUCTURES, ResidencyTable
from accelsim.schedule.table import Table
from accelsim.schedule.tiling import READER_ARRAY, READER_VECTOR

HBM, PE = STRUCTURES.index("hbm"), STRUCTURES.index("pe")


def _tri(x):
    return x * (x - 1) // 2


def build_residency(steps: Table, segs: Table, times: Table, folds: Table, views: np.ndarray, hw,
                    layout: HbmLayout, total: int, gemm_with_weight: np.ndarray,
                    dense_reads: np.ndarray, bank: ProtectedBank | None = None) -> ResidencyTable:
    """All residency rows (SRAM rows first, one per segment in ``segs`` order; then HBM; then PE).

    Args:
        steps, times, folds: the schedule's step, timeline and fold tables (``core.Schedule``).
        segs: the load segments with their timing columns (``core.SEGMENT_TIMING_COLUMNS``).
        views: int64 [V, 5], rows (param, base, sg, sk, sn) of the weight views.
        layout: the parameter layout of HBM (addresses of the HBM rows).
        total: schedule length in cycles (eviction of rows never overwritten).
        gemm_with_weight: bool [works + 1], True for GEMMs whose B is a parameter.
        dense_reads: float64 [P], output rows reading each element of a GEMM weight or bias
            parameter (Σ of M over the GEMMs reading it; 1 for others): the read-weighted ACE
            (:mod:`accelsim.schedule.reach`) divides by it.
        bank: the protected weight-SRAM bank, if any (segment column ``bank``: its slots and
            base address for the tiles placed there).
    """
    rows_, cols_, code = hw.array.rows, hw.array.cols, ("ws", "os", "is").index(hw.array.dataflow)
    wbits = hw.precision.weight_bytes * 8
    wbytes = hw.precision.weight_bytes
    ebits_of = layout.element_bytes * 8  # per parameter (int8 scales are fp32)
    parts = []
    c_end = times.c_end

    # ---------------------------------------------------------------- SRAM rows (one per segment)
    n = len(segs)
    load_start, load_end, slot = segs.load_start, segs.load_end, segs.slot
    elements = (segs.k1 - segs.k0) * (segs.n1 - segs.n0)
    write = load_end - 1
    first = c_end[segs.read_first_step] - 1
    last = c_end[segs.read_last_step] - 1
    reads = segs.read_last_step - segs.read_first_step + 1
    ace = elements * (last - write)
    sbits = ebits_of[segs.param] if n else np.zeros(0, np.int64)
    evict = _next_load_start(segs.structure, segs.step, slot, load_start, total)
    arr = np.flatnonzero(segs.reader == READER_ARRAY)
    fold_segment = np.full(len(folds), -1, dtype=np.int64)
    fold_read_sum = np.zeros(len(folds), dtype=np.int64)
    if arr.size:
        f_first, f_last, f_reads, f_sum, fold_segment, fold_read_sum = _array_reads(
            steps, segs, arr, folds, code, rows_, cols_)
        first[arr], last[arr], reads[arr] = f_first, f_last, f_reads
        ace[arr] = f_sum - elements[arr] * write[arr]
    rw_sram, reach_sram = segment_reach(steps, segs, times, folds, fold_segment, fold_read_sum, write, ace,
                                        dense_reads, views)
    sram_bytes = np.array([0, hw.weight_sram.slot_bytes, hw.embedding_sram.slot_bytes])
    slot_bytes, base = sram_bytes[segs.structure], np.zeros(n, dtype=np.int64)
    if bank is not None and bank.weight_sram_bytes:
        for which in (UNPROTECTED, PROTECTED):
            sel = (segs.structure == 1) & (segs.bank == which)
            slot_bytes = np.where(sel, bank.bank_hw(hw, which).weight_sram.slot_bytes, slot_bytes)
            base = np.where(sel, bank.bank_base(hw, which), base)
    lo = base + slot * slot_bytes + segs.offset
    parts.append(dict(param=segs.param, structure=segs.structure, op=segs.op,
                      view=segs.view, g=segs.g, k0=segs.k0, k1=segs.k1, n0=segs.n0, n1=segs.n1,
                      slot=slot, addr_lo=lo, addr_hi=lo + segs.nbytes, bits=elements * sbits,
                      write_cycle=write, first_read=first, last_read=last, read_count=reads,
                      evict_cycle=evict, ace_bit_cycles=ace * sbits))
    read_weighted = [rw_sram * sbits]

    # ---------------------------------------------------------------- HBM rows (distinct blocks)
    if n:
        key = np.stack([segs.view, segs.g, segs.k0, segs.k1, segs.n0, segs.n1], axis=1)
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        count = len(uniq)
        h_first = np.full(count, np.iinfo(np.int64).max)
        h_last = np.full(count, -1, dtype=np.int64)
        h_reads = np.zeros(count, dtype=np.int64)
        h_op = np.full(count, np.iinfo(np.int64).max)
        np.minimum.at(h_first, inverse, load_start)
        np.maximum.at(h_last, inverse, load_start)
        np.add.at(h_reads, inverse, 1)
        np.minimum.at(h_op, inverse, segs.op)
        v, g, k0, k1, n0, n1 = uniq.T
        param, base, sg, sk, sn = views[v].T
        corners = [base + g * sg + kk * sk + nn * sn for kk in (k0, k1 - 1) for nn in (n0, n1 - 1)]
        e_lo, e_hi = np.minimum.reduce(corners), np.maximum.reduce(corners)
        h_elems = (k1 - k0) * (n1 - n0)
        vector_copy = (segs.reader == READER_VECTOR) & (segs.structure == 1)
        hbits = ebits_of[views[uniq[:, 0], 0]]
        read_weighted.append(hbm_reach(inverse, count, load_start, reach_sram, vector_copy, h_reads) * hbits)
        parts.append(dict(param=param, structure=np.full(count, HBM), op=h_op, view=v, g=g, k0=k0,
                          k1=k1, n0=n0, n1=n1, slot=np.zeros(count, np.int64),
                          addr_lo=layout.base_bytes[param] + e_lo * layout.element_bytes[param],
                          addr_hi=layout.base_bytes[param] + (e_hi + 1) * layout.element_bytes[param],
                          bits=h_elems * hbits,
                          write_cycle=np.full(count, -1), first_read=h_first, last_read=h_last,
                          read_count=h_reads, evict_cycle=np.full(count, total),
                          ace_bit_cycles=h_elems * (h_last + 1) * hbits))

    # ---------------------------------------------------------------- PE rows (one per fold)
    if len(folds):
        step = folds.step
        t0 = folds.start
        kb, nb, mb = folds.k1 - folds.k0, folds.n1 - folds.n0, folds.m1 - folds.m0
        evict = np.append(t0[1:], total)
        keep = gemm_with_weight[folds.work]
        seg_of_step = _seg_of_step(steps, segs)
        if code == 0:
            write = t0 + rows_ - 1
            first = t0 + rows_
            last = t0 + rows_ + mb - 1 + kb - 1 + nb - 1
            reads = mb
            ace = kb * nb * mb + nb * _tri(kb) + kb * _tri(nb)
            bits = kb * nb * wbits
            used_rows, used_cols = kb, nb
        elif code == 1:
            write, first = t0 - 1, t0
            last = t0 + kb - 1 + mb - 1 + nb - 1
            reads, ace, bits = mb, kb * nb * mb, mb * nb * wbits
            used_rows, used_cols = mb, nb
            evict = last + 1
        else:
            write, first = t0 + rows_ - 1, t0 + rows_
            last = t0 + rows_ + nb - 1 + kb - 1 + mb - 1
            reads, ace, bits = mb, kb * nb * mb, kb * mb * wbits
            used_rows, used_cols = kb, mb
            evict = last + 1
        sel = np.flatnonzero(keep)
        view = segs.view[seg_of_step[step[sel]]]
        pe_param = segs.param[seg_of_step[step[sel]]]
        read_weighted.append(pe_reach(code, kb[sel], nb[sel], mb[sel], dense_reads[pe_param]) * wbits)
        parts.append(dict(param=segs.param[seg_of_step[step[sel]]], structure=np.full(sel.size, PE),
                          op=folds.work[sel], view=view, g=folds.g[sel], k0=folds.k0[sel],
                          k1=folds.k1[sel], n0=folds.n0[sel], n1=folds.n1[sel],
                          slot=np.zeros(sel.size, np.int64), addr_lo=np.zeros(sel.size, np.int64),
                          addr_hi=((used_rows - 1) * cols_ + used_cols)[sel] * wbytes,
                          bits=bits[sel], write_cycle=write[sel], first_read=first[sel],
                          last_read=last[sel], read_count=reads[sel], evict_cycle=evict[sel],
                          ace_bit_cycles=(ace * wbits)[sel]))
    cols = {c: np.concatenate([np.broadcast_to(np.asarray(p[c], dtype=np.int64), (len(p["param"]),))
                               for p in parts]) for c in COLUMNS}
    capacity = {
        "hbm": hw.hbm.size_bytes * 8,
        "weight_sram": hw.weight_sram.size_bytes * 8,
        "embedding_sram": hw.embedding_sram.size_bytes * 8,
        "pe": rows_ * cols_ * wbits,
    }
    rw = np.concatenate(read_weighted) if read_weighted else np.zeros(0)
    return ResidencyTable(cols, layout.parameter_names, views, capacity, int(total), rw)


def _next_load_start(structure, step, slot, start, total):
    """For each segment: start of the next transfer into the same slot of the same SRAM."""
    evict = np.full(len(step), total, dtype=np.int64)
    for s in np.unique(structure):
        for sl in np.unique(slot[structure == s]):
            idx = np.flatnonzero((structure == s) & (slot == sl))
            loads, first_of = np.unique(step[idx], return_index=True)
            starts = start[idx][first_of]
            nxt = np.append(starts[1:], total)
            evict[idx] = nxt[np.searchsorted(loads, step[idx])]
    return evict


def _seg_of_step(steps: Table, segs: Table) -> np.ndarray:
    """Step -> index of the weight-tile segment (array reader) it computes with, −1 if none."""
    out = np.full(len(steps), -1, dtype=np.int64)
    arr = np.flatnonzero(segs.reader == READER_ARRAY)
    lengths = segs.read_last_step[arr] - segs.read_first_step[arr] + 1
    idx = np.repeat(arr, lengths)
    pos = np.repeat(segs.read_first_step[arr], lengths) + (
        np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    out[pos] = idx
    return out


def _array_reads(steps: Table, segs: Table, arr: np.ndarray, folds: Table, code: int,
                 rows_: int, cols_: int):
    """(first read, last read, reads per element, Σ last-read cycles) of weight-tile segments
    ``arr`` (int64 arrays [len(arr)]; cycles per ``dataflow.sram_read_cycle``), and per fold
    the segment it reads (−1: none) and Σ of its block elements' read cycles."""
    seg_of_step = _seg_of_step(steps, segs)
    fstep = folds.step
    fseg = seg_of_step[fstep]
    t0 = folds.start
    kb, nb = folds.k1 - folds.k0, folds.n1 - folds.n0
    if code == 0:
        fr, lr = t0, t0 + kb - 1
        block_sum = kb * nb * t0 + nb * _tri(kb)
        covering = np.ones(len(folds), dtype=bool)
    elif code == 1:
        fr, lr = t0, t0 + kb - 1 + nb - 1
        block_sum = kb * nb * t0 + nb * _tri(kb) + kb * _tri(nb)
        covering = folds.m1 == steps.m1[fstep]
    else:
        fr, lr = t0 + rows_, t0 + rows_ + nb - 1 + kb - 1
        block_sum = kb * nb * (t0 + rows_) + kb * _tri(nb) + nb * _tri(kb)
        covering = folds.m1 == steps.m1[fstep]
    valid = fseg >= 0
    size = len(segs)
    first = np.full(size, np.iinfo(np.int64).max)
    last = np.full(size, -1, dtype=np.int64)
    total_sum = np.zeros(size, dtype=np.int64)
    in_first = valid & (fstep == segs.read_first_step[np.maximum(fseg, 0)])
    in_last = valid & (fstep == segs.read_last_step[np.maximum(fseg, 0)])
    np.minimum.at(first, fseg[in_first], fr[in_first])
    np.maximum.at(last, fseg[in_last], lr[in_last])
    sel = in_last & covering
    np.add.at(total_sum, fseg[sel], block_sum[sel])
    per_step = np.ones(len(steps), dtype=np.int64)
    if code == 1:
        per_step = -(-(steps.m1 - steps.m0) // rows_)
    elif code == 2:
        per_step = -(-(steps.m1 - steps.m0) // cols_)
    cum = np.concatenate([[0], np.cumsum(per_step)])
    reads = cum[segs.read_last_step[arr] + 1] - cum[segs.read_first_step[arr]]
    return first[arr], last[arr], reads, total_sum[arr], np.where(valid, fseg, -1), block_sum
