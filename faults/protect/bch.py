"""DECTED: shortened binary BCH code with t = 2 plus an overall parity bit (DEC-TED).

Construction (Lin & Costello ch. 6; MacWilliams & Sloane ch. 7). For ``k`` data bits take the
smallest ``m ≥ 3`` with ``k + 2m ≤ 2^m − 1``; the narrow-sense binary BCH code of length
``2^m − 1`` and designed distance 5 has generator ``g(x) = M1(x)·M3(x)`` (minimal polynomials of
α and α^3 in GF(2^m), degree 2m), shortened to ``k + 2m`` bits, and one overall parity bit
extends it to minimum distance 6. Lengths: (19,8), (27,16), (45,32), (79,64), (145,128),
(275,256); ``2m + 1`` check bits (11, 11, 13, 15, 17, 19).

Bit layout (systematic): data bit ``j`` is the coefficient of ``x^(2m+j)`` of the BCH codeword
polynomial ``c(x)``, BCH check bit ``i < 2m`` (codeword bit ``k + i``) the coefficient of
``x^i``; the last codeword bit is the overall parity of all the others. Degrees
``k+2m .. 2^m−2`` are shortened away (always zero).

Decoding (Peterson's direct solution for t = 2). With ``S1 = e(α)``, ``S3 = e(α^3)`` (the
syndrome rows of ``H``) and ``P`` the parity of all ``n`` error bits:

* ``S1 = S3 = 0``: ``P = 0`` → no error seen; ``P = 1`` → the overall parity bit is flipped back;
* ``S1 ≠ 0`` and ``S3 = S1^3`` (one BCH error at locator ``X = S1``): flip the bit of degree
  ``log X``, and also the parity bit when ``P = 0`` (the second error was the parity bit);
* ``S1 ≠ 0`` and ``S3 ≠ S1^3`` (two BCH errors): if ``P = 1`` → detected (odd weight ≥ 3);
  else solve the error-locator ``z^2 + σ1 z + σ2`` with ``σ1 = S1``, ``σ2 = S3/S1 + S1^2``:
  ``z = S1·y`` with ``y^2 + y = σ2/S1^2``; two roots → flip both bits, no root → detected;
* ``S1 = 0``, ``S3 ≠ 0`` → detected.

A located bit of a shortened-away degree is a decoder failure → detected. Every ≤ 2-bit error is
corrected and every 3-bit error detected; ≥ 4 errors end wherever this decoder takes them
(detected, or miscorrected to the nearest codeword; never undetected below weight 6).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faults.protect.gf import galois_field, gf2_poly_mul
from faults.protect.linear import BinaryLinearCode, CodeError


def dected_field_degree(data_bits: int) -> int:
    """Smallest ``m ≥ 3`` with ``data_bits + 2m ≤ 2^m − 1``."""
    m = 3
    while data_bits + 2 * m > (1 << m) - 1:
        m += 1
    return m


@dataclass(frozen=True)
class DectedCode(BinaryLinearCode):
    """BCH DEC-TED over ``data_bits`` data bits (1 ≤ k ≤ 1024); e.g. ``DectedCode(64)`` is (79, 64)."""

    data_bits: int

    def __post_init__(self) -> None:
        if not 1 <= self.data_bits <= 1024:
            raise CodeError(f"dected: data bits must be in 1..1024, got {self.data_bits}")
        k, m = self.data_bits, dected_field_degree(self.data_bits)
        gf = galois_field(m)
        generator = gf2_poly_mul(gf.minimal_polynomial(1), gf.minimal_polynomial(3))
        if generator.bit_length() - 1 != 2 * m:
            raise AssertionError(f"BCH generator of degree {generator.bit_length() - 1}, expected {2 * m}")
        bch_bits = k + 2 * m
        n = bch_bits + 1
        degree = np.concatenate([2 * m + np.arange(k), np.arange(2 * m)])  # of codeword bits 0..n-2
        columns = gf.alpha_power(degree) | (gf.alpha_power(3 * degree) << m) | (1 << 2 * m)
        columns = np.append(columns, 1 << 2 * m).astype(np.uint64)  # the overall parity bit
        bit_of_degree = np.full(gf.order, -1, dtype=np.int64)      # -1: shortened away
        bit_of_degree[degree] = np.arange(bch_bits)
        for attr, value in (("code_bits", n), ("m", m), ("generator_polynomial", generator),
                            ("_gf", gf), ("_degree", degree), ("_bit_of_degree", bit_of_degree),
                            ("_roots", gf.quadratic_roots())):
            object.__setattr__(self, attr, value)
        self._set_parity_checks(columns, 2 * m + 1)

    @property
    def name(self) -> str:
        return f"dected:{self.data_bits}"

    @property
    def description(self) -> str:
        return f"({self.code_bits},{self.data_bits}) BCH DEC-TED (GF(2^{self.m}), t=2, + overall parity)"

    def bit_degree(self) -> np.ndarray:
        """Degree in ``c(x)`` of each codeword bit but the last (the overall parity bit)."""
        return self._degree.copy()

    def _locate(self, locator: np.ndarray) -> np.ndarray:
        """Codeword bit of error locators ``X = α^degree``; −1 for 0 or a shortened degree."""
        log = self._gf.log[locator]
        return np.where(log >= 0, self._bit_of_degree[np.maximum(log, 0)], -1)

    def _correct(self, syndromes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gf, m, parity_bit = self._gf, self.m, self.code_bits - 1
        mask = np.uint64((1 << m) - 1)
        s1 = (syndromes & mask).astype(np.int64)
        s3 = ((syndromes >> np.uint64(m)) & mask).astype(np.int64)
        odd = ((syndromes >> np.uint64(2 * m)) & np.uint64(1)).astype(bool)
        flip = np.full((len(syndromes), 2), -1, dtype=np.int64)
        detected = (s1 == 0) & (s3 != 0)

        flip[(s1 == 0) & (s3 == 0) & odd, 0] = parity_bit            # the parity bit alone

        s1_cubed = gf.power(s1, 3)
        single = (s1 != 0) & (s3 == s1_cubed)
        where = self._locate(s1)
        fixable = single & (where >= 0)
        flip[fixable, 0] = where[fixable]
        flip[fixable & ~odd, 1] = parity_bit                         # one BCH bit + the parity bit
        detected |= single & (where < 0)

        double = (s1 != 0) & (s3 != s1_cubed)
        detected |= double & odd                                     # three (or more) errors
        s1_squared = gf.mul(s1, s1)
        sigma2 = gf.div(s3, s1) ^ s1_squared
        y = self._roots[gf.div(sigma2, s1_squared)]
        first = self._locate(gf.mul(s1, np.maximum(y, 0)))
        second = self._locate(gf.mul(s1, np.maximum(y, 0) ^ 1))
        fixable = double & ~odd & (y >= 0) & (first >= 0) & (second >= 0)
        flip[fixable, 0] = first[fixable]
        flip[fixable, 1] = second[fixable]
        detected |= double & ~odd & ~fixable
        return detected, self._flips_at(flip)
