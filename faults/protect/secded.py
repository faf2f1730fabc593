"""SECDED: Hsiao's odd-weight-column code (single error correcting, double error detecting).

Construction (Hsiao 1970): ``r`` check bits, the smallest with ``2^(r−1) − r ≥ k`` (the number of
distinct odd-weight columns of weight ≥ 3), so ``(n, k)`` = (13, 8), (22, 16), (39, 32),
(72, 64), (137, 128), (266, 256): 5, 6, 7, 8, 9, 10 check bits, the textbook SECDED counts.
Check bit ``i`` (codeword bit ``k + i``) has the unit column ``e_i``. The data columns are
distinct odd-weight columns of the smallest weights: every weight-3 column when they are not
enough, then weight 5, ...; within the last weight class used, columns are chosen greedily to
balance the row weights (Hsiao's second criterion; fewer XOR inputs per check bit): each step
takes the first candidate, in lexicographic order of its row set, minimising the largest row
weight after adding it and then the summed weight of its rows. The result is deterministic.

Why it works: all columns are distinct and of odd weight, so ``d_min = 4``: one error gives its
column (odd weight), two errors give a nonzero even-weight syndrome (never a column), three
errors give an odd-weight nonzero syndrome (never zero, sometimes a column: miscorrection).

Decoding by syndrome ``s = H·e``:

* ``s = 0`` → no error seen (``undetected`` if ``e ≠ 0``);
* ``s`` equals column ``j`` → bit ``j`` is flipped back (``corrected`` when ``e`` was that single
  bit, else ``miscorrected``: a wrong data or check bit is flipped);
* any other ``s`` → ``detected`` (uncorrectable).

Reference: M. Y. Hsiao, "A class of optimal minimum odd-weight-column SEC-DED codes",
IBM J. Res. Dev. 14(4), 1970, pp. 395-401.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numpy as np

from faults.protect.linear import BinaryLinearCode, CodeError


def hsiao_check_bits(data_bits: int) -> int:
    """Smallest ``r`` with at least ``data_bits`` odd-weight (≥ 3) columns: ``2^(r−1) − r ≥ k``."""
    r = 3
    while (1 << (r - 1)) - r < data_bits:
        r += 1
    return r


@cache
def hsiao_data_columns(data_bits: int, check_bits: int) -> tuple[int, ...]:
    """The data columns of the Hsiao matrix, packed as ints (bit ``i`` = row ``i``); see module doc."""
    chosen: list[int] = []
    load = np.zeros(check_bits, dtype=np.int64)  # ones per row so far (data columns only)
    for weight in range(3, check_bits + 1, 2):
        free = np.asarray(list(combinations(range(check_bits), weight)), dtype=np.int64)
        while len(free) and len(chosen) < data_bits:
            loads = load[free]
            largest = np.maximum(load.max(), loads.max(axis=1) + 1)
            best = np.lexsort((np.arange(len(free)), loads.sum(axis=1), largest))[0]
            load[free[best]] += 1
            chosen.append(sum(1 << int(i) for i in free[best]))
            free = np.delete(free, best, axis=0)
    if len(chosen) != data_bits:
        raise AssertionError(f"only {len(chosen)} odd-weight columns for {data_bits} data bits")
    return tuple(chosen)


@dataclass(frozen=True)
class SecdedCode(BinaryLinearCode):
    """Hsiao SECDED over ``data_bits`` data bits (1 ≤ k ≤ 1024); e.g. ``SecdedCode(64)`` is (72, 64)."""

    data_bits: int

    def __post_init__(self) -> None:
        if not 1 <= self.data_bits <= 1024:
            raise CodeError(f"secded: data bits must be in 1..1024, got {self.data_bits}")
        r = hsiao_check_bits(self.data_bits)
        columns = list(hsiao_data_columns(self.data_bits, r)) + [1 << i for i in range(r)]
        object.__setattr__(self, "code_bits", self.data_bits + r)
        self._set_parity_checks(np.asarray(columns, dtype=np.uint64), r)
        column_at = np.full(1 << r, -1, dtype=np.int64)  # syndrome -> the bit with that column
        column_at[np.asarray(columns, dtype=np.int64)] = np.arange(self.code_bits)
        column_at.flags.writeable = False
        object.__setattr__(self, "_column_at", column_at)

    @property
    def name(self) -> str:
        return f"secded:{self.data_bits}"

    @property
    def description(self) -> str:
        return f"({self.code_bits},{self.data_bits}) Hsiao SECDED"

    def _correct(self, syndromes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        position = self._column_at[syndromes.astype(np.int64)]
        detected = (syndromes != 0) & (position < 0)
        return detected, self._flips_at(np.where(syndromes != 0, position, -1))
