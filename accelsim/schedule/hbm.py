"""HBM model of the schedule: burst rounding, transfer cycles and the parameter layout.

Layout (:func:`hbm_layout`, the one allocator): the parameters in ``program.parameters`` order
from byte 0, each starting on a burst boundary (its size rounded up to whole bursts); the
activations live after them and are not tracked. Element e of parameter p (``weight_bytes``
bytes, little-endian) is bytes ``base_bytes[p] + e·weight_bytes ..`` of HBM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.config import HardwareConfig
from accelsim.ir import Program
from accelsim.schedule.workload import ScheduleError


def burst_bytes(nbytes, hw: HardwareConfig) -> np.ndarray:
    """``nbytes`` (int or int array, bytes) rounded up to whole HBM bursts (int64)."""
    burst = hw.hbm.burst_bytes
    return -(-np.asarray(nbytes, dtype=np.int64) // burst) * burst


def transfer_cycles(nbytes, hw: HardwareConfig) -> np.ndarray:
    """Cycles of transfers of ``nbytes`` (int64 array): latency + ⌈burst-rounded bytes / (bytes
    per cycle)⌉ (at least 1) for nonzero transfers, else 0."""
    nbytes = burst_bytes(nbytes, hw)
    stream = np.ceil(nbytes / hw.hbm_bytes_per_cycle - 1e-9).astype(np.int64)
    return np.where(nbytes > 0, hw.hbm_latency_cycles + np.maximum(stream, 1), 0)


@dataclass(frozen=True)
class HbmLayout:
    """Where the parameters live in HBM (module docstring).

    Attributes:
        parameter_names: the P parameters, in program order (residency ``param`` indexes it).
        base_bytes: int64 [P], first byte of each parameter (burst-aligned).
        size_bytes: int64 [P], bytes each parameter holds (elements × weight_bytes).
        region_bytes: bytes of the whole parameter region (sum of burst-rounded sizes); bytes
            in ``[base + size, next base)`` are padding.
    """

    parameter_names: tuple[str, ...]
    base_bytes: np.ndarray
    size_bytes: np.ndarray
    region_bytes: int

    def parameter_at(self, address: int) -> tuple[int, int]:
        """(parameter index, byte offset inside it) of region byte ``address``; the offset is
        ≥ ``size_bytes[index]`` when the byte is padding after that parameter."""
        index = int(np.searchsorted(self.base_bytes, address, side="right") - 1)
        return index, int(address - self.base_bytes[index])


def hbm_layout(program: Program, hw: HardwareConfig) -> HbmLayout:
    """The parameter layout of ``program`` on ``hw``; :class:`ScheduleError` if it exceeds HBM."""
    names = tuple(program.parameters)
    sizes = np.array([program.parameters[n].size * hw.precision.weight_bytes for n in names],
                     dtype=np.int64)
    padded = burst_bytes(sizes, hw)
    base = (np.cumsum(padded) - padded).astype(np.int64)
    region = int(padded.sum())
    if region > hw.hbm.size_bytes:
        raise ScheduleError(f"parameters need {region} B of HBM; {hw.name} has "
                            f"{hw.hbm.size_bytes} B (hbm.size_gib)")
    return HbmLayout(names, base, sizes, region)
