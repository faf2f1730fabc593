"""Work items -> *steps* (one SRAM tile triple, vector chunk or gather chunk each) and the
parameter *segments* each step loads into an SRAM.

GEMM tiling: tile sizes (Mt, Kt, Nt) are multiples of the fold block (``dataflow.tile_units``)
or the whole dimension, chosen greedily so that one tile fits one slot of each buffer:

* weight_sram slot ≥ Kt·Nt·weight_bytes (+ Nt·weight_bytes of bias, loaded with the last K tile);
* input_sram slot ≥ Mt·Kt·activation_bytes (+ Kt·Nt·activation_bytes when B is an activation);
* output_sram slot ≥ Mt·Nt·accumulator_bytes.

K grows first (to the whole K if possible), then the streamed dimension (M for ws/os, N for is),
then the remaining one. Loop order over tiles: group → N tile → M tile → K tile; a weight tile is
(re)loaded whenever it differs from the previous step's (so it is loaded once per M tile when K
is split, once in all when K fits). Output tiles accumulate across K tiles and are written back
after the last one.

Vector op: split into S chunks so that each chunk's activation input fits an input slot and its
output an output slot; its parameter elements (as contiguous runs) are loaded once into the
weight SRAM if they fit one slot, else split into S pieces, piece s loaded and read by chunk s.
Gather: lookups split into chunks of as many rows as fit an embedding slot (and whose
``rows·dim·accumulator_bytes`` fit an output slot); each row is its own burst-aligned transfer.
Step byte counts are raw (element bytes), except gathers, where each row is its own transfer
and counts as its size rounded up to whole bursts; the timeline rounds every transfer up to
whole bursts.

Step columns (``STEP_FIELDS``, one row per step, program order): ``work`` (index of its work
item), ``kind`` (``KIND_*``), ``g``, ``m0:m1``, ``k0:k1``, ``n0:n1`` (the tile; vector and gather
chunks use m0:m1 for their chunk / lookup range), ``w_bytes``, ``a_bytes``, ``e_bytes`` (bytes
loaded into the weight / input / embedding SRAM before the step), ``compute`` (cycles),
``out_first`` / ``out_last`` (0/1: first / last step of its output tile), ``wb_bytes`` (bytes
written back after it), ``barrier`` (1: first step of its work item), ``folds``, ``fold_len``
(array folds and cycles per fold of a GEMM step).

Segment columns (``SEG_FIELDS``, one row per parameter block loaded into an SRAM slot):
``step`` (the step whose load fills it), ``op`` (its work item), ``structure`` (``WEIGHT_SRAM``
or ``EMBEDDING_SRAM``, an index into ``residency.STRUCTURES``), ``view`` (weight view id),
``g``, ``k0:k1``, ``n0:n1`` (the block of that view), ``offset`` / ``nbytes`` (byte range inside
the slot), ``read_first_step`` .. ``read_last_step`` (steps that read it), ``reader``
(``READER_*``: the array, the bias adder or the vector unit), ``lookup`` (embedding rows: the
row's position in its gather's lookup order; 0 otherwise).
"""
from __future__ import annotations

import numpy as np

from accelsim.config import HardwareConfig
from accelsim.schedule.dataflow import fold_cycles, fold_grid, tile_units
from accelsim.schedule.placement import UNPROTECTED, ProtectedBank
from accelsim.schedule.scales import columns_of
from accelsim.schedule.table import Table
from accelsim.schedule.workload import GatherWork, GemmWork, ScheduleError, VectorWork, WeightView

STEP_FIELDS = (
    "work", "kind", "g", "m0", "m1", "k0", "k1", "n0", "n1", "w_bytes", "a_bytes", "e_bytes",
    "compute", "out_first", "out_last", "wb_bytes", "barrier", "folds", "fold_len",
)
SEG_FIELDS = ("step", "op", "structure", "view", "g", "k0", "k1", "n0", "n1", "offset", "nbytes",
              "read_first_step", "read_last_step", "reader", "lookup")
KIND_GEMM, KIND_VECTOR, KIND_GATHER = 0, 1, 2
READER_ARRAY, READER_BIAS, READER_VECTOR, READER_SCALE = 0, 1, 2, 3
WEIGHT_SRAM, EMBEDDING_SRAM = 1, 2


def _burst(nbytes, burst: int):
    return -(-np.asarray(nbytes, dtype=np.int64) // burst) * burst


def _largest(dim: int, unit: int, per_unit_bytes: int, avail: int) -> int:
    """Largest x ≤ dim, x == dim or a multiple of unit, with x·per_unit_bytes ≤ avail."""
    if per_unit_bytes <= 0:
        return dim
    cap = avail // per_unit_bytes
    return dim if cap >= dim else (cap // unit) * unit


def choose_gemm_tile(w: GemmWork, hw: HardwareConfig) -> tuple[int, int, int]:
    """(Mt, Kt, Nt) for ``w`` (rules in the module docstring); error if one fold block misfits."""
    rows, cols, df = hw.array.rows, hw.array.cols, hw.array.dataflow
    wb, ab, cb = hw.precision.weight_bytes, hw.precision.activation_bytes, hw.precision.accumulator_bytes
    um, uk, un = tile_units(rows, cols, df)
    mt, kt, nt = min(um, w.m), min(uk, w.k), min(un, w.n)
    act_b = w.weight is None
    bias = 1 if w.bias is not None else 0
    sb = hw.precision.scale_bytes
    views = [v for v in (w.weight_scale, w.bias_scale) if v is not None]
    scale_cols = sum(columns_of(v) for v in views)  # scale elements per output column
    scale_fixed = sum(not columns_of(v) for v in views) * sb  # per-tensor scales

    def need(m, k, n):
        wneed = 0 if act_b else (k * n + bias * n) * wb + scale_cols * n * sb + scale_fixed
        ineed = m * k * ab + (k * n * ab if act_b else 0)
        return (("weight_sram", wneed, hw.weight_sram.slot_bytes),
                ("input_sram", ineed, hw.input_sram.slot_bytes),
                ("output_sram", m * n * cb, hw.output_sram.slot_bytes))

    for buffer, needed, have in need(mt, kt, nt):
        if needed > have:
            raise ScheduleError(
                f"{buffer} slot of {have} B cannot hold one tile of op {w.name!r} ({w.op} "
                f"M={w.m} K={w.k} N={w.n}): needs {needed} B for a {mt}x{kt}x{nt} (MxKxN) tile"
            )

    def grow(dim, m, k, n):
        full, unit = {"m": (w.m, um), "k": (w.k, uk), "n": (w.n, un)}[dim]
        current = {"m": m, "k": k, "n": n}[dim]

        def at(x):
            return need(*(x if d == dim else v for d, v in zip("mkn", (m, k, n))))

        x = full
        for (_, base, have), (_, one, _) in zip(at(0), at(1)):
            x = min(x, _largest(full, unit, one - base, have - base))
        return max(x, current)

    kt = grow("k", mt, kt, nt)
    order = ("n", "m") if df == "is" else ("m", "n")
    for dim in order:
        if dim == "m":
            mt = grow("m", mt, kt, nt)
        else:
            nt = grow("n", mt, kt, nt)
    return mt, kt, nt


def build_steps(works, hw: HardwareConfig, view_id, bank: ProtectedBank | None = None) -> tuple[Table, Table, list]:
    """Steps and load segments of all ``works`` (program order).

    ``view_id(view: WeightView) -> int`` registers a weight view and returns its id. With a
    protected ``bank`` (``placement``), a work's weight-SRAM tiles are sized for, and recorded in
    (segment column ``bank``), the bank its parameters are placed in.
    Returns (steps, segments, tiles) where ``tiles[i]`` is the (Mt, Kt, Nt) of GEMM work i
    (None for other work).
    """
    step_chunks: list[dict[str, np.ndarray]] = []
    seg_chunks: list[dict[str, np.ndarray]] = []
    tiles: list = []
    first = 0
    full_hw = hw
    for index, w in enumerate(works):
        which = bank.bank_of(w) if bank is not None else UNPROTECTED
        hw = bank.bank_hw(full_hw, which) if bank is not None and bank.weight_sram_bytes else full_hw
        if isinstance(w, GemmWork):
            tile = choose_gemm_tile(w, hw)
            steps, segs = _gemm_steps(index, w, tile, hw, view_id)
            tiles.append(tile)
        elif isinstance(w, VectorWork):
            steps, segs = _vector_steps(index, w, hw, view_id)
            tiles.append(None)
        else:
            steps, segs = _gather_steps(index, w, hw, view_id)
            tiles.append(None)
        count = len(steps["m0"])
        steps["work"] = np.full(count, index, dtype=np.int64)
        steps["barrier"] = np.zeros(count, dtype=np.int64)
        steps["barrier"][0] = 1
        for key in ("step", "read_first_step", "read_last_step"):
            segs[key] = segs[key] + first
        segs["bank"] = np.where(segs["structure"] == WEIGHT_SRAM, which, UNPROTECTED)
        first += count
        step_chunks.append(steps)
        seg_chunks.append(segs)
    steps = Table({f: np.concatenate([c[f] for c in step_chunks]).astype(np.int64) if step_chunks
                   else np.zeros(0, np.int64) for f in STEP_FIELDS})
    segs = Table({f: np.concatenate([c[f] for c in seg_chunks]).astype(np.int64) if seg_chunks
                  else np.zeros(0, np.int64) for f in SEG_FIELDS + ("bank",)})
    return steps, segs, tiles


def _empty_segs() -> dict[str, np.ndarray]:
    return {f: np.zeros(0, dtype=np.int64) for f in SEG_FIELDS}


def _segs(**cols) -> dict[str, np.ndarray]:
    size = max(np.size(v) for v in cols.values())
    return {f: np.broadcast_to(np.asarray(cols[f], dtype=np.int64), (size,)).copy() for f in SEG_FIELDS}


def _gemm_steps(index, w: GemmWork, tile, hw: HardwareConfig, view_id):
    mt, kt, nt = tile
    rows, cols, df = hw.array.rows, hw.array.cols, hw.array.dataflow
    wb, ab = hw.precision.weight_bytes, hw.precision.activation_bytes
    n_n, n_m, n_k = -(-w.n // nt), -(-w.m // mt), -(-w.k // kt)
    g, ni, mi, ki = (a.reshape(-1).astype(np.int64) for a in np.indices((w.groups, n_n, n_m, n_k)))
    m0, k0, n0 = mi * mt, ki * kt, ni * nt
    m1, k1, n1 = np.minimum(m0 + mt, w.m), np.minimum(k0 + kt, w.k), np.minimum(n0 + nt, w.n)
    count = len(g)
    wkey = (g * n_k + ki) * n_n + ni
    wnew = np.ones(count, dtype=bool)
    wnew[1:] = wkey[1:] != wkey[:-1]
    akey = (g * n_m + mi) * n_k + ki
    anew = np.ones(count, dtype=bool)
    anew[1:] = akey[1:] != akey[:-1]
    wtile = (k1 - k0) * (n1 - n0)
    bias_n = np.where(ki == n_k - 1, n1 - n0, 0) if w.bias is not None else np.zeros(count, np.int64)
    scale_n = _scale_elements(w, n1 - n0) if w.weight_scale is not None else np.zeros(count, np.int64)
    scale_n = np.where(ki == n_k - 1, scale_n, 0)
    sb = hw.precision.scale_bytes
    if w.weight is None:
        anew = anew | wnew
        a_bytes = np.where(anew, ((m1 - m0) * (k1 - k0) + wtile) * ab, 0)
        w_bytes = np.zeros(count, dtype=np.int64)
    else:
        a_bytes = np.where(anew, (m1 - m0) * (k1 - k0) * ab, 0)
        w_bytes = np.where(wnew, (wtile + bias_n) * wb + scale_n * sb, 0)
    fa, fb, stream = fold_grid(m1 - m0, k1 - k0, n1 - n0, rows, cols, df)
    fold_len = fold_cycles(stream, rows, cols, df)
    steps = {
        "kind": np.full(count, 0), "g": g, "m0": m0, "m1": m1, "k0": k0, "k1": k1, "n0": n0,
        "n1": n1, "w_bytes": w_bytes, "a_bytes": a_bytes, "e_bytes": np.zeros(count, np.int64),
        "compute": fa * fb * fold_len, "out_first": (ki == 0).astype(np.int64),
        "out_last": (ki == n_k - 1).astype(np.int64),
        "wb_bytes": np.where(ki == n_k - 1, (m1 - m0) * (n1 - n0) * ab, 0),
        "folds": fa * fb, "fold_len": fold_len,
    }
    if w.weight is None:
        return steps, _empty_segs()
    load = np.flatnonzero(wnew)
    last = np.append(load[1:], count) - 1  # last step using each loaded tile
    wid = view_id(w.weight)
    segs = [_segs(step=load, op=index, structure=WEIGHT_SRAM, view=wid, g=g[load], k0=k0[load],
                  k1=k1[load], n0=n0[load], n1=n1[load], offset=0, nbytes=wtile[load] * wb,
                  read_first_step=load, read_last_step=last, reader=READER_ARRAY, lookup=0)]
    if w.bias is not None:
        sel = load[bias_n[load] > 0]
        lst = last[bias_n[load] > 0]
        bid = view_id(w.bias)
        first_out = np.array([s + np.flatnonzero(steps["out_last"][s:l + 1])[0] for s, l in zip(sel, lst)],
                             dtype=np.int64)
        segs.append(_segs(step=sel, op=index, structure=WEIGHT_SRAM, view=bid, g=g[sel], k0=0, k1=1,
                          n0=n0[sel], n1=n1[sel], offset=wtile[sel] * wb,
                          nbytes=(n1[sel] - n0[sel]) * wb, read_first_step=first_out,
                          read_last_step=lst, reader=READER_BIAS, lookup=0))
    if w.weight_scale is not None:
        segs += _gemm_scale_segments(index, w, steps, load, last, g, n0, n1, (wtile + bias_n) * wb, sb, view_id)
    return steps, {f: np.concatenate([s[f] for s in segs]) for f in SEG_FIELDS}


def _scale_elements(w: GemmWork, width: np.ndarray) -> np.ndarray:
    """Scale elements loaded with a tile of ``width`` columns (weight scales, then the bias's)."""
    total = np.zeros_like(width)
    for view in (w.weight_scale, w.bias_scale):
        if view is not None:
            total = total + (width if columns_of(view) else 1)
    return total


def _gemm_scale_segments(index, w: GemmWork, steps, load, last, g, n0, n1, offset, sb, view_id) -> list:
    """Scale segments (``scales`` module): loaded with the last K tile after tile and bias, read
    like the bias by the steps that finish output rows; one element per column of the tile, or
    one for a per-tensor scale."""
    keep = np.array([steps["out_last"][s:l + 1].any() for s, l in zip(load, last)], dtype=bool)
    sel, lst = load[keep], last[keep]
    first_out = np.array([s + np.flatnonzero(steps["out_last"][s:l + 1])[0] for s, l in zip(sel, lst)],
                         dtype=np.int64)
    out, at = [], offset[sel]
    for view in (w.weight_scale, w.bias_scale):
        if view is None:
            continue
        if columns_of(view):
            lo, hi = n0[sel], n1[sel]
        else:  # one per-tensor scale, whatever the tile's columns
            lo, hi = np.zeros(sel.size, np.int64), np.ones(sel.size, np.int64)
        out.append(_segs(step=sel, op=index, structure=WEIGHT_SRAM, view=view_id(view), g=g[sel], k0=0, k1=1,
                         n0=lo, n1=hi, offset=at, nbytes=(hi - lo) * sb, read_first_step=first_out,
                         read_last_step=lst, reader=READER_SCALE, lookup=0))
        at = at + (hi - lo) * sb
    return out


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal contiguous runs [start, end) of sorted unique indices."""
    if flat.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    breaks = np.flatnonzero(np.diff(flat) != 1) + 1
    starts = flat[np.concatenate([[0], breaks])]
    ends = flat[np.concatenate([breaks - 1, [flat.size - 1]])] + 1
    return starts.astype(np.int64), ends.astype(np.int64)


def _vector_steps(index, w: VectorWork, hw: HardwareConfig, view_id):
    ab, cb, wb = hw.precision.activation_bytes, hw.precision.accumulator_bytes, hw.precision.weight_bytes
    lanes = hw.vector_unit.lanes
    param_elems = sum(int(v.size) for v in w.params.values())
    chunks = max(1, -(-w.in_elements * ab // hw.input_sram.slot_bytes),
                 -(-w.out_elements * cb // hw.output_sram.slot_bytes))
    fits = param_elems * wb <= hw.weight_sram.slot_bytes
    if not fits:
        chunks = max(chunks, -(-param_elems * wb // hw.weight_sram.slot_bytes))
    s = np.arange(chunks, dtype=np.int64)
    share = lambda total: (total * (s + 1)) // chunks - (total * s) // chunks  # noqa: E731
    elems = share(w.elements)
    compute = -(-elems // lanes)
    compute[0] += hw.vector_unit.latency_cycles
    # parameter runs laid out back to back; piece p = elements [p·E/S, (p+1)·E/S) of that list
    views, starts, ends = [], [], []
    for name, flat in w.params.items():
        st, en = _runs(flat)
        vid = view_id(WeightView(name, 0, 0, 0, 1))
        views += [vid] * len(st)
        starts.append(st)
        ends.append(en)
    views = np.asarray(views, dtype=np.int64)
    starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    ends = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    pieces = 1 if fits else chunks
    cum = np.concatenate([[0], np.cumsum(ends - starts)])
    bounds = (param_elems * np.arange(pieces + 1)) // pieces
    seg = {f: [] for f in SEG_FIELDS}
    w_bytes = np.zeros(chunks, dtype=np.int64)
    for p in range(pieces):
        lo, hi = bounds[p], bounds[p + 1]
        for r in np.flatnonzero((cum[1:] > lo) & (cum[:-1] < hi)):
            a, b = max(lo, cum[r]), min(hi, cum[r + 1])
            row = dict(step=p, op=index, structure=WEIGHT_SRAM, view=views[r], g=0, k0=0, k1=1,
                       n0=starts[r] + a - cum[r], n1=starts[r] + b - cum[r], offset=(a - lo) * wb,
                       nbytes=(b - a) * wb, read_first_step=p,
                       read_last_step=p if not fits else chunks - 1, reader=READER_VECTOR,
                       lookup=0)
            for key, value in row.items():
                seg[key].append(value)
        w_bytes[p] = (hi - lo) * wb
    # int8 scales of the operands: loaded with the first piece, read by every chunk
    offset = int(bounds[1] - bounds[0]) * wb
    sb = hw.precision.scale_bytes
    for name, flat in w.scales.items():
        vid = view_id(WeightView(name, 0, 0, 0, 1))
        for a, b in zip(*_runs(flat)):
            row = dict(step=0, op=index, structure=WEIGHT_SRAM, view=vid, g=0, k0=0, k1=1, n0=a, n1=b,
                       offset=offset, nbytes=(b - a) * sb, read_first_step=0, read_last_step=chunks - 1,
                       reader=READER_VECTOR, lookup=0)
            for key, value in row.items():
                seg[key].append(value)
            offset += (b - a) * sb
            w_bytes[0] += (b - a) * sb
    zeros = np.zeros(chunks, dtype=np.int64)
    steps = {
        "kind": np.full(chunks, 1), "g": zeros, "m0": s, "m1": s + 1, "k0": zeros, "k1": zeros,
        "n0": zeros, "n1": zeros, "w_bytes": w_bytes, "a_bytes": share(w.in_elements) * ab,
        "e_bytes": zeros, "compute": compute, "out_first": np.ones(chunks, np.int64),
        "out_last": np.ones(chunks, np.int64), "wb_bytes": share(w.out_elements) * ab,
        "folds": zeros, "fold_len": zeros,
    }
    return steps, {f: np.asarray(v, dtype=np.int64) for f, v in seg.items()}


def _gather_steps(index, w: GatherWork, hw: HardwareConfig, view_id):
    wb, ab, cb = hw.precision.weight_bytes, hw.precision.activation_bytes, hw.precision.accumulator_bytes
    row_bytes = w.dim * wb
    sb = hw.precision.scale_bytes if w.scale is not None else 0  # the row's int8 scale travels with it
    per_chunk = min(hw.embedding_sram.slot_bytes // (row_bytes + sb), hw.output_sram.slot_bytes // (w.dim * cb))
    if per_chunk < 1:
        raise ScheduleError(
            f"embedding_sram slot of {hw.embedding_sram.slot_bytes} B or output_sram slot of "
            f"{hw.output_sram.slot_bytes} B cannot hold one row of table {w.table!r} for op "
            f"{w.name!r}: needs {row_bytes} B / {w.dim * cb} B"
        )
    lookups = max(1, w.rows.size)
    chunks = -(-lookups // per_chunk)
    s = np.arange(chunks, dtype=np.int64)
    lo, hi = s * per_chunk, np.minimum((s + 1) * per_chunk, w.rows.size)
    out = (w.out_elements * hi) // lookups - (w.out_elements * lo) // lookups
    compute = -(-(hi - lo) * w.dim // hw.vector_unit.lanes)
    compute[0] += hw.vector_unit.latency_cycles
    zeros = np.zeros(chunks, dtype=np.int64)
    row_burst = int(_burst(row_bytes, hw.hbm.burst_bytes)) + (int(_burst(sb, hw.hbm.burst_bytes)) if sb else 0)
    steps = {
        "kind": np.full(chunks, 2), "g": zeros, "m0": lo, "m1": hi, "k0": zeros, "k1": zeros,
        "n0": zeros, "n1": zeros, "w_bytes": zeros, "a_bytes": zeros,
        "e_bytes": (hi - lo) * row_burst, "compute": compute, "out_first": np.ones(chunks, np.int64),
        "out_last": np.ones(chunks, np.int64), "wb_bytes": out * ab, "folds": zeros, "fold_len": zeros,
    }
    pos = np.arange(w.rows.size, dtype=np.int64)
    step = pos // per_chunk
    vid = view_id(WeightView(w.table, 0, 0, w.dim, 1))
    slot_pos = (pos - step * per_chunk) * (row_bytes + sb)
    segs = _segs(step=step, op=index, structure=EMBEDDING_SRAM, view=vid, g=0, k0=w.rows, k1=w.rows + 1,
                 n0=0, n1=w.dim, offset=slot_pos, nbytes=row_bytes,
                 read_first_step=step, read_last_step=step, reader=READER_VECTOR, lookup=pos)
    if sb and w.rows.size:
        scale = _segs(step=step, op=index, structure=EMBEDDING_SRAM, view=view_id(w.scale), g=0, k0=w.rows,
                      k1=w.rows + 1, n0=0, n1=1, offset=slot_pos + row_bytes, nbytes=sb, read_first_step=step,
                      read_last_step=step, reader=READER_VECTOR, lookup=pos)
        segs = {f: np.concatenate([segs[f], scale[f]]) for f in SEG_FIELDS}
    if w.rows.size == 0:
        segs = _empty_segs()
    return steps, segs
