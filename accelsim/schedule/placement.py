"""Placement of chosen parameters in a protected bank (for protection studies).

A :class:`ProtectedBank` reserves the top ``weight_sram_bytes`` of the weight SRAM's address
space as a separate bank (e.g. with ECC) and places there every tile of the chosen parameters
(GEMM weights with their bias and scales; the operands of a vector op reading one of them); the
other tiles use the rest of the weight SRAM. Each bank keeps the weight SRAM's slot count, so a
bank's slot is its capacity ÷ slots, and tiles are sized for the bank they go to — placing a
parameter in a small bank changes its tiling, and shrinking the unprotected bank changes the
others': the residency of everything changes, as it would on the chip. Both banks load through
the same DMA queue and slot rotation. With ``hbm=True`` the chosen parameters are also laid out
first in HBM (``[0, protected_hbm_bytes)`` holds exactly them), so an HBM region can be
protected too. Embedding-SRAM banks are not modelled.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from accelsim.config import HardwareConfig
from accelsim.schedule.workload import GemmWork, ScheduleError, VectorWork

UNPROTECTED, PROTECTED = 0, 1


@dataclass(frozen=True)
class ProtectedBank:
    """The parameters placed in the protected bank and the bank's size.

    Attributes:
        params: names of the parameters placed there.
        weight_sram_bytes: bytes of the weight SRAM given to the bank (0: none).
        hbm: lay the parameters out first in HBM (a protected HBM region).
    """

    params: frozenset[str]
    weight_sram_bytes: int = 0
    hbm: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", frozenset(self.params))
        if self.weight_sram_bytes < 0:
            raise ScheduleError(f"protected bank size must be >= 0 bytes, got {self.weight_sram_bytes}")

    def check(self, hw: HardwareConfig) -> None:
        """One-line :class:`ScheduleError` unless both banks are whole words per bank and slot."""
        sram = hw.weight_sram
        unit = sram.word_bytes * sram.banks * sram.slots
        if self.weight_sram_bytes % unit or self.weight_sram_bytes >= sram.size_bytes:
            raise ScheduleError(f"protected bank of {self.weight_sram_bytes} B: must be a multiple of "
                                f"{unit} B (word_bytes × banks × slots) and below the weight SRAM's "
                                f"{sram.size_bytes} B")

    def bank_hw(self, hw: HardwareConfig, bank: int) -> HardwareConfig:
        """``hw`` whose weight SRAM is the given bank (its capacity; everything else unchanged)."""
        size = self.weight_sram_bytes if bank == PROTECTED else hw.weight_sram.size_bytes - self.weight_sram_bytes
        sram = dataclasses.replace(hw.weight_sram, size_kib=size / 1024)
        return dataclasses.replace(hw, weight_sram=sram)

    def bank_base(self, hw: HardwareConfig, bank: int) -> int:
        """First weight-SRAM byte of the bank (the protected bank is the top of the space)."""
        return hw.weight_sram.size_bytes - self.weight_sram_bytes if bank == PROTECTED else 0

    def bank_of(self, work) -> int:
        """The bank a work item's weight-SRAM tiles go to."""
        if self.weight_sram_bytes == 0:
            return UNPROTECTED
        if isinstance(work, GemmWork) and work.weight is not None and work.weight.param in self.params:
            return PROTECTED
        if isinstance(work, VectorWork) and any(p in self.params for p in work.params):
            return PROTECTED
        return UNPROTECTED
