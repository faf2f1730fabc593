"""HBM model of the schedule: burst rounding, transfer cycles and the parameter layout.

Layout (:func:`hbm_layout`, the one allocator): the parameters in ``program.parameters`` order
from byte 0, each starting on a burst boundary (its size rounded up to whole bursts), then —
for int8 weights whose scales are stored (``precision.stores_scales``) — the scale
pseudo-parameters ``<name>#scale`` in the same order (fp32, ``precision.scale_bytes`` each); the
activations live after them and are not tracked. Element e of parameter p (``element_bytes[p]``
bytes, little-endian) is bytes ``base_bytes[p] + e·element_bytes[p] ..`` of HBM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.config import HardwareConfig
from accelsim.ir import Program
from accelsim.schedule.scales import scale_parameters
from accelsim.storage import scale_name
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
        parameter_names: the P parameters (program order, then their scales if stored; the
            residency ``param`` column indexes it).
        base_bytes: int64 [P], first byte of each parameter (burst-aligned).
        size_bytes: int64 [P], bytes each parameter holds (elements × element_bytes).
        element_bytes: int64 [P], bytes of one element (weight_bytes; scale_bytes for scales).
        region_bytes: bytes of the whole parameter region (sum of burst-rounded sizes); bytes
            in ``[base + size, next base)`` are padding.
    """

    parameter_names: tuple[str, ...]
    base_bytes: np.ndarray
    size_bytes: np.ndarray
    region_bytes: int
    element_bytes: np.ndarray

    def parameter_at(self, address: int) -> tuple[int, int]:
        """(parameter index, byte offset inside it) of region byte ``address``; the offset is
        ≥ ``size_bytes[index]`` when the byte is padding after that parameter."""
        index = int(np.searchsorted(self.base_bytes, address, side="right") - 1)
        return index, int(address - self.base_bytes[index])


def hbm_layout(program: Program, hw: HardwareConfig, first=()) -> HbmLayout:
    """The parameter layout of ``program`` on ``hw``; :class:`ScheduleError` if it exceeds HBM.

    ``first``: parameters laid out before all others (a protected region, ``placement``);
    the rest keep program order.
    """
    first = set(first)
    names = [n for n in program.parameters if n in first] + [n for n in program.parameters if n not in first]
    counts = [program.parameters[n].size for n in names]
    element = [hw.precision.weight_bytes] * len(names)
    if hw.precision.stores_scales:
        scales = dict(scale_parameters(program))
        for name, count in ((scale_name(n), scales[scale_name(n)]) for n in list(names)):
            names.append(name)
            counts.append(count)
            element.append(hw.precision.scale_bytes)
    element_bytes = np.array(element, dtype=np.int64)
    sizes = np.array(counts, dtype=np.int64) * element_bytes
    names = tuple(names)
    padded = burst_bytes(sizes, hw)
    base = (np.cumsum(padded) - padded).astype(np.int64)
    region = int(padded.sum())
    if region > hw.hbm.size_bytes:
        raise ScheduleError(f"parameters need {region} B of HBM; {hw.name} has "
                            f"{hw.hbm.size_bytes} B (hbm.size_gib)")
    return HbmLayout(names, base, sizes, region, element_bytes)
