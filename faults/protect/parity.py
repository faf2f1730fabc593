"""The two simplest codes: no protection, and one even-parity bit per word.

* :class:`NoCode` (``none:K``): ``K`` data bits, no check bit; every error passes ``undetected``.
* :class:`ParityCode` (``parity:K``): ``K`` data bits plus one stored parity bit (codeword bit
  ``K``) making the number of ones even. Decoding: the syndrome is the parity of the error
  pattern over all ``K + 1`` bits; odd → ``detected``, even and nonzero → ``undetected``.
  Nothing is ever corrected.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faults.protect.linear import BinaryLinearCode, CodeError


@dataclass(frozen=True)
class NoCode(BinaryLinearCode):
    """No protection of a ``data_bits``-bit word (``n = k``)."""

    data_bits: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.data_bits <= 4096:
            raise CodeError(f"none: data bits must be in 1..4096, got {self.data_bits}")
        object.__setattr__(self, "code_bits", self.data_bits)
        self._set_parity_checks(np.zeros(self.data_bits, dtype=np.uint64), 0)

    @property
    def name(self) -> str:
        return f"none:{self.data_bits}"

    @property
    def description(self) -> str:
        return f"no protection ({self.data_bits}-bit word)"


@dataclass(frozen=True)
class ParityCode(BinaryLinearCode):
    """One even-parity bit over a ``data_bits``-bit word (``n = k + 1``): detects odd-weight errors."""

    data_bits: int

    def __post_init__(self) -> None:
        if not 1 <= self.data_bits <= 4096:
            raise CodeError(f"parity: data bits must be in 1..4096, got {self.data_bits}")
        object.__setattr__(self, "code_bits", self.data_bits + 1)
        self._set_parity_checks(np.ones(self.code_bits, dtype=np.uint64), 1)

    @property
    def name(self) -> str:
        return f"parity:{self.data_bits}"

    @property
    def description(self) -> str:
        return f"({self.code_bits},{self.data_bits}) even parity"
