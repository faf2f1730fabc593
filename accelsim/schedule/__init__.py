"""Cycle-approximate schedule of an IR program on a hardware config: timing, traffic, residency.

Public API::

    simulate(program, shapes, hw, *, index_values=None, convention="accelsim") -> Schedule
    write_report(schedule, out_dir) -> dict[str, Path]
    Schedule.summary(), Schedule.ops, Schedule.residency (ResidencyTable),
    Schedule.folds / .steps / .times / .segments (named-column Tables), Schedule.hbm (HbmLayout)

Modules: ``workload`` (IR -> work items), ``dataflow`` (closed-form fold formulas: fold cycles,
MAC and SRAM read cycles), ``hbm`` (burst rounding, transfer cycles, parameter layout),
``tiling`` (SRAM tiles -> steps and load segments), ``table`` (the struct-of-arrays type),
``_kernels`` (Numba loops + Python twins), ``residency`` / ``residency_build`` (the residency
table), ``replay`` (tile-by-tile reference execution), ``report`` (CSV / JSON / PNG).
"""
from accelsim.schedule.core import Schedule, simulate
from accelsim.schedule.residency import STRUCTURES, ResidencyTable
from accelsim.schedule.workload import ScheduleError

__all__ = ["Schedule", "simulate", "ResidencyTable", "STRUCTURES", "ScheduleError", "write_report"]


def write_report(schedule, out_dir):
    """Write CSV/JSON/PNG reports of ``schedule`` into ``out_dir`` (see ``report``)."""
    from accelsim.schedule.report import write_report as _write

    return _write(schedule, out_dir)
