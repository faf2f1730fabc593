"""Naive reference for hardware sites: tile-by-tile execution in schedule order with the
corrupted value swapped in at the flip's cycle (a check of :mod:`faults.avf.sites` +
:mod:`faults.inject.partial`, for tests and benchmarks; slow by design).

It follows the values forward through the schedule, never through ``SiteResolver``'s uses:

* HBM holds every parameter byte at ``base + element·weight_bytes``; a flip at cycle t changes
  what every transfer that starts at ≥ t copies into SRAM;
* each SRAM copy (residency row) is filled by its transfer; a flip of a byte it holds at cycle
  t (``write < t < evict``) changes what its later reads return;
* every fold of every GEMM reading the parameter (``accelsim.schedule.replay`` order) reads its
  block from the SRAM copy that holds it at the fold's read cycle, loads it into the PEs and
  multiplies; a PE register flip changes the MACs at cycles ≥ t (os / is: the passing value,
  forwarded down the column / along the row);
* gathers read every looked-up row from its embedding SRAM copy at the end of its step.

The op output is accumulated tile by tile in float64 (``replay``); the rest of the network runs
with ``executor.resume`` from that output. The golden reference is the same replay without the
flip, so the outcome is compared against a like-for-like baseline.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from accelsim import executor
from accelsim.ir import Program
from accelsim.schedule.dataflow import mac_cycle, sram_read_cycle
from accelsim.schedule.replay import _to_output, gemm_operand_a
from accelsim.schedule.residency import STRUCTURES
from accelsim.schedule.tiling import EMBEDDING_SRAM, READER_ARRAY, READER_BIAS
from accelsim.schedule.workload import GatherWork, GemmWork
from accelsim.storage import SCALE_SUFFIX

from faults.avf.sites import FOLD_BLOCK, Site, SiteResolver


class NaiveUnsupported(ValueError):
    """The site reaches an op the naive replay does not model (e.g. a vector-unit parameter)."""


def _hit_element(rv: SiteResolver, site: Site):
    """(param index, element, bit in element) hit by the flip at its cycle, or None."""
    c = rv.c
    if site.structure == "hbm":
        p, off = rv.schedule.hbm.parameter_at(site.address)
        if off >= rv.schedule.hbm.size_bytes[p]:
            return None
        wb = int(rv.element_bytes[p])
        return p, off // wb, 8 * (off % wb) + site.bit
    if site.structure == "pe":
        return None  # found per fold
    s = STRUCTURES.index(site.structure)
    for row in range(rv.nseg):
        if c["structure"][row] == s and c["addr_lo"][row] <= site.address < c["addr_hi"][row] \
                and c["write_cycle"][row] < site.cycle < c["evict_cycle"][row]:
            local, byte = divmod(site.address - int(c["addr_lo"][row]), int(rv.element_bytes[c["param"][row]]))
            width = int(c["n1"][row] - c["n0"][row])
            e = rv.element_of(row, int(c["k0"][row]) + local // width, int(c["n0"][row]) + local % width)
            return int(c["param"][row]), e, 8 * byte + site.bit, row
    return None


def naive_outputs(rv: SiteResolver, program: Program, cache: Mapping[str, np.ndarray],
                  site: Site, new_value: float, old_value: float, element_hint=None):
    """(golden-replay output, faulty-replay output) of the graph for ``site``, or None if masked.

    ``new_value`` / ``old_value``: the fp32 value of the hit element with / without the flip
    (the caller flips the stored bit). ``element_hint``: (param index, element) for PE sites.
    """
    sched = rv.schedule
    hit = _hit_element(rv, site) if site.structure != "pe" else element_hint
    if hit is None:
        return None
    p, e = hit[0], hit[1]
    if rv.param_names[p].endswith(SCALE_SUFFIX):
        raise NaiveUnsupported(f"naive replay of int8 scale {rv.param_names[p]!r} is not implemented")
    sram_row = hit[3] if site.structure in ("weight_sram", "embedding_sram") else -1
    name = rv.param_names[p]
    d = np.float64(new_value) - np.float64(old_value)
    changed = False
    replaced_gold, replaced_bad, first = {}, {}, None
    for op, work in enumerate(sched.works):
        if isinstance(work, GemmWork) and work.weight is not None and name in (work.weight.param,
                                                                              getattr(work.bias, "param", None)):
            gold, bad, hit_any = _gemm(rv, program, cache, op, work, site, p, e, sram_row, d)
        elif isinstance(work, GatherWork) and work.table == name:
            gold, bad, hit_any = _gather(rv, program, cache, op, work, site, p, e, sram_row, new_value)
        else:
            if name in getattr(work, "params", {}):
                raise NaiveUnsupported(f"parameter {name!r} is read by vector op {work.name!r}")
            continue
        if not hit_any:
            continue
        out = program.instructions[work.index].outputs[0]
        replaced_gold[out], replaced_bad[out] = gold, bad
        first = max(work.index, first or 0)
        changed |= hit_any
    if not changed:
        return None
    start = first + 1
    g = executor.resume(program, cache, start, replaced_gold).outputs[program.output_names[0]]
    b = executor.resume(program, cache, start, replaced_bad).outputs[program.output_names[0]]
    return g, b


def _source(rv: SiteResolver, op: int, k: int, n: int, g: int, when: int, reader: int) -> int:
    """SRAM segment of ``op`` holding (g, k, n) and read (by ``reader``) at cycle ``when``."""
    c, segs = rv.c, rv.schedule.segments
    memo = rv.__dict__.setdefault("_naive_segs", {})
    if (op, reader) not in memo:
        memo[op, reader] = np.flatnonzero((segs.op == op) & (segs.reader == reader))
    cand = memo[op, reader]
    idx = cand[(segs.g[cand] == g) & (segs.k0[cand] <= k) & (segs.k1[cand] > k) & (segs.n0[cand] <= n)
               & (segs.n1[cand] > n) & (c["write_cycle"][cand] < when) & (c["evict_cycle"][cand] > when)]
    if idx.size != 1:
        raise AssertionError(f"op {op}: {idx.size} SRAM copies hold ({g},{k},{n}) at cycle {when}")
    return int(idx[0])


def _copy_bad(rv: SiteResolver, site: Site, seg: int, p: int, e: int, sram_row: int, read: int) -> bool:
    """Does SRAM copy ``seg`` return the corrupted value of element e when read at ``read``?"""
    if site.structure == "hbm":
        return rv.schedule.segments.load_start[seg] >= site.cycle
    if site.structure in ("weight_sram", "embedding_sram"):
        return seg == sram_row and site.cycle <= read
    return False


def _golden_gemm(rv: SiteResolver, program, cache, op: int, work: GemmWork):
    """Tile-by-tile golden accumulation of one GEMM (cached per resolver and op)."""
    memo = rv.__dict__.setdefault("_naive_memo", {})
    key = (id(cache), op)
    if key not in memo:
        a = gemm_operand_a(program, work, cache)
        w = np.asarray(program.parameter_values[work.weight.param], dtype=np.float64).reshape(-1)
        y = np.zeros((work.groups, work.m, work.n))
        folds = rv.schedule.folds.take(rv.schedule.folds.work == op)
        for g, m0, m1, k0, k1, n0, n1 in folds.rows(("g", "m0", "m1", "k0", "k1", "n0", "n1")):
            y[g, m0:m1, n0:n1] += a[g, m0:m1, k0:k1] @ w[work.weight.elements(g, k0, k1, n0, n1)]
        emap = np.stack([work.weight.elements(g, 0, work.k, 0, work.n) for g in range(work.groups)])
        bias = np.zeros((work.groups, 1, work.n))
        if work.bias is not None:
            bv = np.asarray(program.parameter_values[work.bias.param], dtype=np.float64).reshape(-1)
            for g in range(work.groups):
                bias[g, 0] = bv[work.bias.elements(g, 0, 1, 0, work.n)[0]]
        memo[key] = (a, y, folds, emap, bias)
    return memo[key]


def _gemm(rv, program, cache, op, work: GemmWork, site, p, e, sram_row, d):
    a, y, folds, emap, bias = _golden_gemm(rv, program, cache, op, work)
    corr = np.zeros_like(y)
    hit_any = False
    is_weight = rv.param_names[p] == work.weight.param
    for g, k, n in (np.argwhere(emap == e) if is_weight else []):
        mine = folds.take((folds.g == g) & (folds.k0 <= k) & (folds.k1 > k) & (folds.n0 <= n)
                          & (folds.n1 > n))
        for fold in mine.rows(FOLD_BLOCK):  # schedule order
            _, m0, m1, k0, _, n0, _, t0, _ = fold
            r, col = int(k) - k0, int(n) - n0
            read = int(sram_read_cycle(rv.dataflow, t0, rv.rows_, r, col))
            seg = _source(rv, op, int(k), int(n), int(g), read, READER_ARRAY)
            i = np.arange(m1 - m0)
            if _copy_bad(rv, site, seg, p, e, sram_row, read):
                bad = np.ones(m1 - m0, dtype=bool)
            elif site.structure == "pe":
                bad = _pe_hits(rv, site, fold, r, col, i)
            else:
                bad = np.zeros(m1 - m0, dtype=bool)
            if bad.any():
                hit_any = True
                corr[g, m0 + i[bad], n] += a[g, m0 + i[bad], k] * d
    bias_bad = np.zeros_like(y)
    if work.bias is not None and not is_weight:
        steps = rv.schedule.steps
        for s in np.flatnonzero((steps.work == op) & (steps.out_last == 1)):
            g, m0, m1, n0, n1 = steps.row(s, ("g", "m0", "m1", "n0", "n1"))
            elems = work.bias.elements(g, 0, 1, n0, n1)[0]
            read = int(rv.schedule.times.c_end[s]) - 1
            for col in np.flatnonzero(elems == e):
                seg = _source(rv, op, 0, n0 + int(col), g, read, READER_BIAS)
                if _copy_bad(rv, site, seg, p, e, sram_row, read):
                    hit_any = True
                    bias_bad[g, m0:m1, n0 + int(col)] += d
    if not hit_any:
        return None, None, False
    gold = _to_output(program, work, y, bias, cache).astype(np.float32)
    bad = _to_output(program, work, y + corr + bias_bad, bias, cache).astype(np.float32)
    return gold, bad, hit_any


def _pe_hits(rv: SiteResolver, site: Site, fold, r: int, col: int, i: np.ndarray) -> np.ndarray:
    """Rows i of ``fold`` (a ``FOLD_BLOCK`` tuple) whose MAC with PE block element (r, col) sees
    the PE register flip."""
    g, m0, m1, k0, k1, n0, n1, t0, _ = fold
    pr, pc = divmod(site.address, rv.cols_)
    R = rv.rows_
    if "_naive_starts" not in rv.__dict__:
        rv.__dict__["_naive_starts"] = np.unique(rv.schedule.folds.start)
    starts = rv.__dict__["_naive_starts"]
    j = int(np.searchsorted(starts, t0, side="right"))
    end = int(starts[j]) if j < starts.size else rv.total_cycles
    if rv.dataflow == "ws":  # PE(r, col) holds the weight from t0+R until the next fold starts
        if (pr, pc) != (r, col) or not (t0 + R - 1 < site.cycle < end):
            return np.zeros(i.size, dtype=bool)
        return mac_cycle("ws", t0, R, i, r, col) >= site.cycle
    if rv.dataflow == "os":  # B[k0+r, n0+col] passes PE(i, col) at t0 + r + i + col
        passing = t0 + r + pr + col
        if pc != col or passing != site.cycle or pr >= m1 - m0:
            return np.zeros(i.size, dtype=bool)
        return i >= pr
    passing = t0 + R + col + r + pc  # is: B[k0+r, n0+col] passes PE(r, c) at t0+R+col+r+c
    if pr != r or passing != site.cycle or pc >= m1 - m0:
        return np.zeros(i.size, dtype=bool)
    return i >= pc


def _gather(rv, program, cache, op, work: GatherWork, site, p, e, sram_row, new_value):
    inst = program.instructions[work.index]
    table = np.asarray(program.parameter_values[work.table], dtype=np.float32).reshape(-1, work.dim)
    r_e, pos = divmod(e, work.dim)
    looked = table[work.rows].copy()
    bad = looked.copy()
    segments = rv.schedule.segments
    segs = np.flatnonzero((segments.op == op) & (segments.structure == EMBEDDING_SRAM) & (segments.param == p))
    hit_any = False
    for j, seg in enumerate(segs):
        if work.rows[j] != r_e:
            continue
        read = int(rv.schedule.times.c_end[segments.step[seg]]) - 1
        if _copy_bad(rv, site, int(seg), p, e, sram_row, read):
            bad[j, pos] = np.float32(new_value)
            hit_any = True
    if inst.op != "gather":
        raise NaiveUnsupported(f"naive replay of {inst.op} lookups is not implemented")
    shape = np.shape(cache[inst.outputs[0]])
    return looked.reshape(shape), bad.reshape(shape), hit_any
