"""What an AVF study of one model on one hardware config works on.

:class:`AvfContext` holds the program and its evaluation batch, the hardware config, the golden
run in the stored dtype, the schedule (with its residency table), the site resolver and the
partial injector, the incorrect-output criterion, and the fingerprints that stores record.
"""
from __future__ import annotations

from functools import cached_property
from typing import Mapping

import numpy as np

from accelsim.config import HardwareConfig
from accelsim.errors import UserError
from accelsim.ir import Program
from accelsim.schedule import simulate
from accelsim.schedule.placement import ProtectedBank

from faults.common import outcome as oc
from faults.common.fingerprint import fingerprint_inputs, fingerprint_program
from faults.inject import FastInjector, PartialInjector
from faults.pvf.plan import CampaignConfig, resolve_criterion
from faults.pvf.targets import labels, scale_parameters
from faults.avf.sites import SiteResolver

DTYPE_OF_BYTES = {4: "fp32", 2: "fp16", 1: "int8"}
BYTES_OF_DTYPE = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


class AvfError(UserError, ValueError):
    """Bad AVF study input (one line)."""


class AvfContext:
    """Program + inputs + hardware: golden run, schedule, site resolver, partial injector.

    Args:
        dtype: stored weight format; default from ``hw.precision.weight_bytes`` (4 fp32,
            2 fp16, 1 int8). It must store as many bytes per weight as the config says.
        criterion: incorrect-output criterion (default: top1 for classifiers, CTR otherwise).
        output: the graph output judged (default: the first).
        bank: parameters placed in a protected weight-SRAM bank / HBM region (their residency
            and everyone's tiling change; ``accelsim.schedule.placement``).
        nonfinite: how a NaN/Inf output counts ("sdc", "due" or "apart";
            :mod:`faults.common.outcome`), here and in the joined PVF campaign.
        decode_cycles: ECC decode latency per read by structure (``accelsim.schedule.simulate``).
    """

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], hw: HardwareConfig,
                 dtype: str | None = None, criterion: str | None = None, output: str | None = None,
                 bank: ProtectedBank | None = None, nonfinite: str = oc.DEFAULT_NONFINITE,
                 decode_cycles: Mapping[str, int] | None = None):
        wb = hw.precision.weight_bytes
        self.dtype = dtype or DTYPE_OF_BYTES[wb]
        if BYTES_OF_DTYPE.get(self.dtype) != wb:
            raise AvfError(f"dtype {self.dtype} stores {BYTES_OF_DTYPE.get(self.dtype)} bytes per weight but "
                           f"{hw.name} has precision.weight_bytes={wb}; pass --set precision.weight_bytes="
                           f"{BYTES_OF_DTYPE.get(self.dtype)}")
        self.program, self.inputs, self.hw = program, dict(inputs), hw
        self.fast = FastInjector(program, inputs, self.dtype, output)
        cache = self.fast.golden
        self.bank = bank
        self.decode_cycles = dict(decode_cycles or {})
        self.schedule = simulate(program, {k: np.shape(v) for k, v in cache.items()}, hw, index_values=cache,
                                 bank=bank, decode_cycles=self.decode_cycles)
        self.resolver = SiteResolver(self.schedule, program)
        self.injector = PartialInjector(self.fast, self.schedule)
        self.criterion = oc.parse_criterion(resolve_criterion(
            program, inputs, CampaignConfig(criterion=criterion, output=output, dtypes=(self.dtype,)),
            output_value=self.fast.golden_output))
        self.output = output
        self.nonfinite = oc.check_nonfinite(nonfinite)
        self.batch = self.fast.batch
        self.layer_of = {p.name: labels(p)["layer"] for p in [*program.parameters.values(),
                                                              *scale_parameters(program)]}

    def variant(self, *, bank: ProtectedBank | None = None,
                decode_cycles: Mapping[str, int] | None = None) -> "AvfContext":
        """This context re-scheduled with another protected bank / decode latency: the golden
        run, inputs and criterion are shared (never mutated), the schedule, site resolver and
        partial injector are new."""
        other = object.__new__(AvfContext)
        other.__dict__.update(self.__dict__)
        other.bank = bank
        other.decode_cycles = dict(decode_cycles or {})
        cache = self.fast.golden
        other.schedule = simulate(self.program, {k: np.shape(v) for k, v in cache.items()}, self.hw,
                                  index_values=cache, bank=bank, decode_cycles=other.decode_cycles)
        other.resolver = SiteResolver(other.schedule, self.program)
        other.injector = PartialInjector(self.fast, other.schedule)
        return other

    @property
    def total_cycles(self) -> int:
        return int(self.schedule.total_cycles)

    @cached_property
    def program_fingerprint(self) -> str:
        return fingerprint_program(self.program)

    @cached_property
    def inputs_fingerprint(self) -> str:
        return fingerprint_inputs(self.inputs)

    def ace_fraction(self, structure: str) -> float:
        """Σ ACE bit-cycles / (bits × T): the share of (bit, cycle) that is live (exact)."""
        rows = self.schedule.residency.select(structure)
        ace = float(self.schedule.residency["ace_bit_cycles"][rows].sum())
        return ace / (self.resolver.capacity_bits(structure) * self.total_cycles)
