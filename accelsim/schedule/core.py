"""``simulate``: schedule an IR program on a hardware config; the :class:`Schedule` it returns.

Pipeline: workload (IR -> GEMM / vector / gather work) -> tiling (steps and parameter load
segments) -> timeline (Numba; HBM queue, double buffering, stalls) -> folds (Numba; every
array fold with its start cycle) -> residency table and per-op aggregates.

HBM layout (``hbm.hbm_layout``): parameters in ``program.parameters`` order from address 0,
each starting on a burst boundary; activations live after them (not tracked). Every op reads
its activation inputs from HBM and writes its outputs back (no on-chip forwarding between ops).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from accelsim.config import HardwareConfig
from accelsim.ir import Program
from accelsim.schedule import _kernels
from accelsim.schedule.dataflow import CONVENTIONS, DATAFLOW_CODES
from accelsim.schedule.hbm import HbmLayout, burst_bytes, hbm_layout, transfer_cycles
from accelsim.schedule.residency import ResidencyTable
from accelsim.schedule.placement import ProtectedBank
from accelsim.schedule.residency_build import build_residency
from accelsim.schedule.scales import columns_of, with_scales
from accelsim.schedule.table import Table
from accelsim.schedule.tiling import KIND_GATHER, KIND_GEMM, WEIGHT_SRAM, build_steps
from accelsim.schedule.workload import GatherWork, GemmWork, ScheduleError, WeightView, extract_workload

__all__ = ["Schedule", "simulate", "HbmLayout", "burst_bytes", "transfer_cycles",
           "FOLD_TABLE_COLUMNS", "SEGMENT_TIMING_COLUMNS"]

TRAFFIC_KEYS = ("hbm", "weight_sram", "input_sram", "output_sram", "embedding_sram")
FOLD_TABLE_COLUMNS = _kernels.FOLD_COLUMNS + ("work",)
SEGMENT_TIMING_COLUMNS = ("param", "load_start", "load_end", "slot")


@dataclass(frozen=True)
class Schedule:
    """The schedule of one program on one config. Cycles are accelerator clock cycles.

    Attributes:
        hw, convention: the inputs.
        works: the work items (``workload``), one per row of ``ops``.
        ops: per-op table, column name -> numpy array (see ``OP_COLUMNS`` in ``report``):
            cycles (incl. stalls) = compute_cycles + stall_cycles (accelsim convention; the
            "scalesim" convention lowers ``compute_cycles_reported`` of a GEMM by 1).
        total_cycles: end of the last compute or writeback.
        traffic: structure -> {"read_bytes", "write_bytes"} summed over the program.
        residency: the :class:`ResidencyTable`; its first ``len(segments)`` rows are the SRAM
            copies of ``segments``, in the same order.
        folds: :class:`Table` [F] of every array fold (``FOLD_TABLE_COLUMNS``): ``step``,
            ``g``, ``m0``, ``m1``, ``k0``, ``k1``, ``n0``, ``n1`` (its block), ``start`` (first
            cycle), ``work`` (work index), in schedule order; the MAC and weight-SRAM read
            cycles inside a fold are ``dataflow.mac_cycle`` / ``dataflow.sram_read_cycle``.
        steps: :class:`Table` [S] of tiling steps (``tiling.STEP_FIELDS``).
        times: :class:`Table` [S], the timeline of the steps (``_kernels.TIMELINE_COLUMNS``:
            ``w_start`` .. ``o_slot``; −1 where a step has no such transfer).
        tiles: (Mt, Kt, Nt) per work item (None for non-GEMM work).
        segments: :class:`Table` [G] of the parameter blocks loaded into an SRAM slot
            (``tiling.SEG_FIELDS``) plus ``SEGMENT_TIMING_COLUMNS``: ``param`` (index into
            ``hbm.parameter_names``), ``load_start`` / ``load_end`` (first cycle / end of the
            HBM transfer filling it: the step's ``w_*`` transfer for weight-SRAM segments, its
            ``e_*`` one for embedding-SRAM ones; HBM is read at ``load_start``), ``slot``.
        hbm: the parameter :class:`HbmLayout` (base and size of every parameter in bytes).
    """

    hw: HardwareConfig
    convention: str
    works: tuple
    ops: dict[str, np.ndarray]
    total_cycles: int
    traffic: dict[str, dict[str, int]]
    residency: ResidencyTable
    folds: Table
    steps: Table
    times: Table
    tiles: tuple
    segments: Table
    hbm: HbmLayout

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(w.name for w in self.works)

    def summary(self) -> dict:
        """Totals: cycles, seconds, compute, stalls, MACs, utilization, traffic."""
        hw = self.hw
        compute = int(self.ops["compute_cycles"].sum())
        macs = int(self.ops["macs"].sum())
        return {
            "model_ops": len(self.works), "hardware": hw.name, "dataflow": hw.array.dataflow,
            "array": f"{hw.array.rows}x{hw.array.cols}", "convention": self.convention,
            "total_cycles": self.total_cycles, "seconds": self.total_cycles / (hw.clock_ghz * 1e9),
            "compute_cycles": compute, "stall_cycles": int(self.ops["stall_cycles"].sum()),
            "macs": macs,
            "array_utilization": macs / max(1, self.total_cycles * hw.array.rows * hw.array.cols),
            "traffic": self.traffic, "residency_rows": len(self.residency),
        }


def simulate(program: Program, shapes: Mapping[str, tuple], hw: HardwareConfig, *,
             index_values: Mapping[str, np.ndarray] | None = None,
             convention: str = "accelsim", python: bool = False,
             bank: ProtectedBank | None = None, decode_cycles: Mapping[str, int] | None = None) -> Schedule:
    """Schedule ``program`` on ``hw``.

    Args:
        shapes: tensor name -> concrete shape of every graph input and instruction output
            (e.g. ``{k: v.shape for k, v in executor.run(..., keep_intermediates=True).cache}``).
        index_values: values of the index tensors of gathers / embedding bags on parameter
            tables (tensor name -> int array) when they are not program constants; a golden
            cache works as is.
        convention: "accelsim" or "scalesim" (``workload.extract_workload``, ``Schedule``).
        python: use the pure-Python twins of the Numba kernels (slow; for tests).
        bank: chosen parameters placed in a protected weight-SRAM bank / HBM region
            (``placement.ProtectedBank``); their residency and everyone's tiling change.
        decode_cycles: ECC decode latency per read, by structure (``hbm``: added to every
            parameter transfer; ``weight_sram`` / ``embedding_sram``: the pipeline of every step
            reading it starts that many cycles later).
    Raises:
        ScheduleError: one line naming the op, buffer and sizes when something cannot fit.
    """
    if convention not in CONVENTIONS:
        raise ScheduleError(f"unknown convention {convention!r}; choose accelsim or scalesim")
    works = extract_workload(program, shapes, index_values or {}, convention)
    if hw.precision.stores_scales:
        works = with_scales(program, works)
    if bank is not None:
        bank.check(hw)
        unknown = sorted(set(bank.params) - set(program.parameters))
        if unknown:
            raise ScheduleError(f"protected bank: unknown parameter {unknown[0]!r}")
    layout = hbm_layout(program, hw, first=bank.params if bank is not None and bank.hbm else ())
    pid = {name: i for i, name in enumerate(layout.parameter_names)}
    view_rows: dict[tuple, int] = {}

    def view_id(view: WeightView) -> int:
        key = (pid[view.param], view.base, view.sg, view.sk, view.sn)
        return view_rows.setdefault(key, len(view_rows))

    steps, segs, tiles = build_steps(works, hw, view_id, bank)
    views = np.array(list(view_rows) or np.zeros((0, 5)), dtype=np.int64).reshape(-1, 5)
    count = len(steps)
    w_use = np.zeros(count + 1, dtype=np.int64)
    wsel = np.flatnonzero(segs.structure == WEIGHT_SRAM)
    np.add.at(w_use, segs.read_first_step[wsel], 1)
    np.add.at(w_use, segs.read_last_step[wsel] + 1, -1)
    flags = {"out_first": steps.out_first, "out_last": steps.out_last, "barrier": steps.barrier,
             "w_use": (np.cumsum(w_use)[:count] > 0).astype(np.int64),
             "a_use": (steps.kind != KIND_GATHER).astype(np.int64),
             "e_use": (steps.e_bytes > 0).astype(np.int64)}
    decode = _decode_latency(decode_cycles or {})
    lead = decode["weight_sram"] * flags["w_use"] + decode["embedding_sram"] * flags["e_use"]
    cycles = {"w": transfer_cycles(steps.w_bytes, hw) + decode["hbm"] * (steps.w_bytes > 0),
              "a": transfer_cycles(steps.a_bytes, hw),
              "e": transfer_cycles(steps.e_bytes, hw) + decode["hbm"] * (steps.e_bytes > 0),
              "wb": transfer_cycles(steps.wb_bytes, hw), "compute": steps.compute + lead}
    slots = (hw.weight_sram.slots, hw.input_sram.slots, hw.embedding_sram.slots, hw.output_sram.slots)
    times = Table.from_array(_kernels.timeline(cycles, flags, slots, python=python),
                             _kernels.TIMELINE_COLUMNS)
    total = int(max(times.c_end.max(initial=0), times.wb_end.max(initial=0)))
    gsel = np.flatnonzero(steps.kind == KIND_GEMM)
    fold_in = {k: steps.cols[k][gsel] for k in ("g", "m0", "m1", "k0", "k1", "n0", "n1", "fold_len")}
    fold_in.update(step=gsel, start=times.c_start[gsel] + lead[gsel])
    folds = Table.from_array(
        _kernels.expand_folds(fold_in, steps.folds[gsel], hw.array.rows, hw.array.cols,
                              DATAFLOW_CODES[hw.array.dataflow], python=python),
        _kernels.FOLD_COLUMNS)
    folds = folds.with_columns(work=steps.work[folds.step])
    segments = _time_segments(segs, times, views)
    with_weight = np.array([isinstance(w, GemmWork) and w.weight is not None for w in works] + [False])
    dense_reads = np.zeros(len(layout.parameter_names))
    for w in works:
        if isinstance(w, GemmWork):
            for view in (w.weight, w.bias):
                if view is not None:
                    dense_reads[pid[view.param]] += w.m
            for view in (w.weight_scale, w.bias_scale):  # rows × columns sharing one scale element
                if view is not None:
                    dense_reads[pid[view.param]] += w.m * (1 if columns_of(view) else w.groups * w.n)
    residency = build_residency(steps, segments, times, folds, views, hw, layout, total, with_weight,
                                np.maximum(dense_reads, 1.0), bank)
    ops, traffic = _aggregate(works, steps, times, folds, tiles, hw, convention, total, cycles["compute"])
    return Schedule(hw, convention, tuple(works), ops, total, traffic, residency, folds, steps,
                    times, tuple(tiles), segments, layout)


def _decode_latency(decode_cycles: Mapping[str, int]) -> dict[str, int]:
    """Decode latency per structure (cycles >= 0; unknown structures refused)."""
    out = {"hbm": 0, "weight_sram": 0, "embedding_sram": 0}
    for key, value in decode_cycles.items():
        if key not in out or int(value) < 0:
            raise ScheduleError(f"decode latency {key}={value}: structures {', '.join(out)}, cycles >= 0")
        out[key] = int(value)
    return out


def _time_segments(segs: Table, times: Table, views: np.ndarray) -> Table:
    """``segs`` plus ``SEGMENT_TIMING_COLUMNS`` (see :class:`Schedule`); ``views`` int64 [V, 5]
    rows (param, base, sg, sk, sn)."""
    is_w = segs.structure == WEIGHT_SRAM
    step = segs.step
    param, _, _, _, _ = views[segs.view].T
    return segs.with_columns(
        param=param,
        load_start=np.where(is_w, times.w_start[step], times.e_start[step]),
        load_end=np.where(is_w, times.w_end[step], times.e_end[step]),
        slot=np.where(is_w, times.w_slot[step], times.e_slot[step]))


def _aggregate(works, steps: Table, times: Table, folds: Table, tiles, hw, convention, total, compute):
    """Per-op table and program traffic (byte counts per structure)."""
    n_ops = len(works)
    rows_, cols_ = hw.array.rows, hw.array.cols
    wb, ab, cb = hw.precision.weight_bytes, hw.precision.activation_bytes, hw.precision.accumulator_bytes
    work = steps.work
    prev_end = np.concatenate([[0], times.c_end[:-1]])
    stall = times.c_start - prev_end

    def per_op(values):
        return np.bincount(work, weights=values, minlength=n_ops).astype(np.int64)

    ops: dict[str, np.ndarray] = {}
    ops["compute_cycles"] = per_op(compute)  # decode latency (if any) counts as compute
    ops["stall_cycles"] = per_op(stall)
    if n_ops:
        ops["stall_cycles"][-1] += total - int(times.c_end[-1])
    ops["cycles"] = ops["compute_cycles"] + ops["stall_cycles"]
    ops["end_cycle"] = np.cumsum(ops["cycles"])
    ops["start_cycle"] = ops["end_cycle"] - ops["cycles"]
    ops["steps"] = np.bincount(work, minlength=n_ops)
    ops["folds"] = per_op(steps.folds)
    is_gemm = np.array([isinstance(w, GemmWork) for w in works], dtype=bool)
    dims = np.array([(w.groups, w.m, w.k, w.n) if isinstance(w, GemmWork) else (0, 0, 0, 0)
                     for w in works], dtype=np.int64).reshape(-1, 4)
    ops["groups"], ops["m"], ops["k"], ops["n"] = dims.T
    ops["macs"] = dims.prod(axis=1) if n_ops else np.zeros(0, np.int64)
    elems = np.array([0 if isinstance(w, GemmWork) else
                      (w.rows.size * w.dim if isinstance(w, GatherWork) else w.elements) for w in works],
                     dtype=np.int64)
    ops["vector_elements"] = elems
    ops["compute_cycles_reported"] = ops["compute_cycles"] - (is_gemm & (convention == "scalesim"))
    unit = np.where(is_gemm, rows_ * cols_, hw.vector_unit.lanes)
    work_done = np.where(is_gemm, ops["macs"], elems)
    ops["utilization"] = work_done / np.maximum(1, ops["compute_cycles"] * unit)
    ops["overall_utilization"] = work_done / np.maximum(1, ops["cycles"] * unit)
    tile = np.array([t if t is not None else (0, 0, 0) for t in tiles], dtype=np.int64).reshape(-1, 3)
    ops["tile_m"], ops["tile_k"], ops["tile_n"] = tile.T
    # ---- traffic (bytes)
    fw = folds.work
    mb, kb, nb = folds.m1 - folds.m0, folds.k1 - folds.k0, folds.n1 - folds.n0
    b_reads, a_reads, o_writes = kb * nb, mb * kb, mb * nb  # per fold, any dataflow
    act_b = np.array([isinstance(w, GemmWork) and w.weight is None for w in works] + [False])[fw]

    def fold_op(values):
        return np.bincount(fw, weights=values, minlength=n_ops).astype(np.int64)

    ops["hbm_read_bytes"] = per_op(burst_bytes(steps.w_bytes, hw) + burst_bytes(steps.a_bytes, hw)
                                   + burst_bytes(steps.e_bytes, hw))
    ops["hbm_write_bytes"] = per_op(burst_bytes(steps.wb_bytes, hw))
    ops["weight_sram_write_bytes"] = per_op(steps.w_bytes)
    ops["weight_sram_read_bytes"] = fold_op(np.where(act_b, 0, b_reads) * wb)
    ops["input_sram_write_bytes"] = per_op(steps.a_bytes)
    ops["input_sram_read_bytes"] = fold_op(a_reads * ab + np.where(act_b, b_reads, 0) * ab) + \
        np.where(is_gemm, 0, per_op(steps.a_bytes))
    ops["output_sram_write_bytes"] = fold_op(o_writes * cb) + np.where(is_gemm, 0, per_op(steps.wb_bytes))
    ops["output_sram_read_bytes"] = per_op(steps.wb_bytes)
    ops["embedding_sram_write_bytes"] = per_op(steps.e_bytes)
    ops["embedding_sram_read_bytes"] = per_op(steps.e_bytes)
    vec_w = (steps.kind != KIND_GEMM)
    ops["weight_sram_read_bytes"] += per_op(np.where(vec_w, steps.w_bytes, 0))
    traffic = {s: {"read_bytes": int(ops[f"{s}_read_bytes"].sum()),
                   "write_bytes": int(ops[f"{s}_write_bytes"].sum())} for s in TRAFFIC_KEYS}
    return ops, traffic
