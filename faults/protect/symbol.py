"""Symbol ECC of the chipkill class: a shortened Reed–Solomon code over GF(2^8).

``ReedSolomonCode(K, R)`` has ``K`` data symbols and ``R ∈ {2, 3}`` check symbols of 8 bits
(``n = K + R ≤ 255`` symbols). Symbol ``i`` (data symbols ``0..K−1``, then the check symbols)
occupies codeword bits ``8i .. 8i+7`` (bit ``b`` of the symbol = coefficient of ``α^b`` in
GF(2^8), primitive polynomial 0x11D) and has error locator ``α^i``. The parity checks are
``S_j = Σ_i c_i·α^(i·j) = 0`` for ``j = 0..R−1`` (roots ``α^0 .. α^(R−1)``; ``S0`` is the XOR of
all symbols), so ``d_min = R + 1`` (the code is MDS):

* ``R = 3`` (e.g. ``symbol:16+3`` = RS(19,16), 24 check bits): single-symbol correcting,
  double-symbol detecting (SSC-DSD);
* ``R = 2`` (e.g. ``symbol:16+2`` = RS(18,16), 16 check bits): single-symbol correcting only;
  a double-symbol error is detected or miscorrected.

Decoding by syndromes (a single symbol error of value ``v ≠ 0`` at locator ``X = α^i`` gives
``S_j = v·X^j``):

* all ``S_j = 0`` → no error seen;
* every ``S_j ≠ 0`` and (``R = 3``) ``S1^2 = S0·S2`` → ``X = S1/S0``; if ``i = log X < n``
  the symbol ``i`` is XORed with ``v = S0`` (corrected), otherwise (a shortened position) detected;
* anything else → detected.

The code is linear over GF(2) too, so the 8R-bit binary syndrome ``H·e`` of a bit pattern ``e``
is the byte string ``S0, S1, ..``, and it is decoded from the pattern alone.

References: I. S. Reed, G. Solomon, "Polynomial codes over certain finite fields", J. SIAM 8(2),
1960; Lin & Costello, *Error Control Coding*, ch. 7; C. L. Chen, M. Y. Hsiao, "Error-correcting
codes for semiconductor memory applications: a state-of-the-art review", IBM J. Res. Dev. 1984.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faults.protect.gf import galois_field
from faults.protect.linear import BinaryLinearCode, CodeError

SYMBOL_BITS = 8


@dataclass(frozen=True)
class ReedSolomonCode(BinaryLinearCode):
    """RS over GF(2^8): ``data_symbols`` data + ``check_symbols`` (2 or 3) check symbols."""

    data_symbols: int = 16
    check_symbols: int = 3

    def __post_init__(self) -> None:
        k, r = self.data_symbols, self.check_symbols
        if r not in (2, 3):
            raise CodeError(f"symbol: {r} check symbols not supported; use 2 (SSC) or 3 (SSC-DSD)")
        if not 1 <= k <= 255 - r:
            raise CodeError(f"symbol: data symbols must be in 1..{255 - r} with {r} check symbols, got {k}")
        gf = galois_field(SYMBOL_BITS)
        n_symbols = k + r
        symbol = np.repeat(np.arange(n_symbols), SYMBOL_BITS)
        value = np.tile(1 << np.arange(SYMBOL_BITS), n_symbols)  # the error value of one bit
        columns = np.zeros(n_symbols * SYMBOL_BITS, dtype=np.int64)
        for j in range(r):
            columns |= gf.mul(value, gf.alpha_power(symbol * j)) << (SYMBOL_BITS * j)
        for attr, val in (("data_bits", k * SYMBOL_BITS), ("code_bits", n_symbols * SYMBOL_BITS), ("_gf", gf)):
            object.__setattr__(self, attr, val)
        self._set_parity_checks(columns.astype(np.uint64), r * SYMBOL_BITS)

    @property
    def name(self) -> str:
        return f"symbol:{self.data_symbols}+{self.check_symbols}"

    @property
    def description(self) -> str:
        kind = "SSC-DSD" if self.check_symbols == 3 else "SSC"
        n = self.data_symbols + self.check_symbols
        return f"RS({n},{self.data_symbols}) over GF(2^8), {kind}"

    @property
    def code_symbols(self) -> int:
        return self.data_symbols + self.check_symbols

    def symbol_syndromes(self, syndromes: np.ndarray) -> np.ndarray:
        """Split packed syndromes ``(N,)`` into GF(2^8) values ``S_j``, shape ``(N, R)``."""
        shifts = np.arange(self.check_symbols, dtype=np.uint64) * np.uint64(SYMBOL_BITS)
        return ((np.asarray(syndromes, dtype=np.uint64)[:, None] >> shifts) & np.uint64(0xFF)).astype(np.int64)

    def _correct(self, syndromes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gf, s = self._gf, self.symbol_syndromes(syndromes)
        single = (s != 0).all(axis=1)
        if self.check_symbols == 3:
            single &= gf.mul(s[:, 1], s[:, 1]) == gf.mul(s[:, 0], s[:, 2])
        where = np.mod(gf.log[s[:, 1]] - gf.log[s[:, 0]], gf.order)
        fixable = single & (where < self.code_symbols)
        flips = np.zeros((len(s), self.code_symbols, SYMBOL_BITS), dtype=bool)
        rows = np.nonzero(fixable)[0]
        flips[rows, where[rows]] = (s[rows, :1] >> np.arange(SYMBOL_BITS)) & 1
        return (syndromes != 0) & ~fixable, flips.reshape(len(s), self.code_bits)
