"""Decode outcomes and the syndrome-decoding base class shared by every code.

Every code here is a binary linear code of length ``n`` (``code_bits``) with ``k``
(``data_bits``) data bits, laid out **systematically**: codeword bit ``j < k`` is data bit
``j`` (bit 0 = least significant bit of the data word), bits ``k .. n−1`` are the stored check
bits. Check bits are stored bits too: an error pattern is a boolean mask over all ``n`` bits.

Column ``j`` of the parity-check matrix ``H`` (``r`` rows) is packed into one ``uint64``
(bit ``i`` = row ``i``). Since the code is linear, the syndrome of a stored word
``codeword XOR e`` is ``H·e``: decoding depends on the error pattern alone and no data is needed.

A decoder maps the syndrome to an action: nothing (zero syndrome), flip a set of bits
("correct"), or signal an uncorrectable error ("detect"). The :data:`OUTCOMES` of a pattern
``e`` after the decoder flipped the bits ``f`` (empty unless it corrected):

* ``clean``        — ``e`` is zero;
* ``corrected``    — the flips undo the error exactly (``e XOR f = 0``): the data is right;
* ``detected``     — the decoder signals an uncorrectable error (a DUE); nothing is flipped;
* ``undetected``   — wrong data passes silently and the decoder flipped no good bit: the syndrome
  is zero (``e`` is a nonzero codeword, or hits only unprotected bits), or the decoder undid
  part of ``e`` only (e.g. selective protection with errors in unprotected bits too);
* ``miscorrected`` — the decoder flipped at least one bit that was not in error (a data or a
  check bit); the data error is the data part of ``e XOR f``.

:class:`DecodeResult` (one pattern) and :class:`DecodeBatch` (many, vectorised) carry the
outcome and the data-bit error mask after the decoder acted (``(e XOR f)[:k]``: all zero for
``clean``/``corrected``, the data part of ``e`` for ``detected``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import UserError

from faults.protect.gf import columns_to_matrix, gf2_inverse

OUTCOMES = ("clean", "corrected", "detected", "undetected", "miscorrected")
CLEAN, CORRECTED, DETECTED, UNDETECTED, MISCORRECTED = range(len(OUTCOMES))
_CHUNK_ROWS = 1 << 16


class CodeError(UserError, ValueError):
    """A malformed code spec, an unsupported width, or an error pattern of the wrong shape."""


@dataclass(frozen=True, eq=False)
class DecodeResult:
    """What the decoder did with one error pattern.

    Attributes:
        outcome: one of :data:`OUTCOMES`.
        data_error: bool ``(k,)``, data bits still wrong after the decoder acted.
        flipped: bool ``(n,)``, codeword bits the decoder flipped.
    """

    outcome: str
    data_error: np.ndarray
    flipped: np.ndarray


@dataclass(frozen=True, eq=False)
class DecodeBatch:
    """What the decoder did with ``N`` error patterns (row ``i`` = pattern ``i``).

    Attributes:
        outcome_codes: uint8 ``(N,)``, index into :data:`OUTCOMES`.
        data_errors: bool ``(N, k)``, data bits still wrong after the decoder acted.
        flipped: bool ``(N, n)``, codeword bits the decoder flipped.
    """

    outcome_codes: np.ndarray
    data_errors: np.ndarray
    flipped: np.ndarray

    def __len__(self) -> int:
        return len(self.outcome_codes)

    def __getitem__(self, i: int) -> DecodeResult:
        return DecodeResult(OUTCOMES[self.outcome_codes[i]], self.data_errors[i], self.flipped[i])

    @property
    def outcomes(self) -> np.ndarray:
        """Outcome names, an array of str ``(N,)``."""
        return np.asarray(OUTCOMES)[self.outcome_codes]

    def counts(self) -> dict[str, int]:
        """Number of patterns per outcome (every outcome present, zeros included)."""
        tally = np.bincount(self.outcome_codes, minlength=len(OUTCOMES))
        return {name: int(c) for name, c in zip(OUTCOMES, tally)}


class BinaryLinearCode:
    """Base of every code: syndromes, systematic encoding and outcome classification.

    A subclass (a frozen dataclass) provides ``name``, ``data_bits``, ``code_bits``, calls
    :meth:`_set_parity_checks` in ``__post_init__`` with its packed ``H`` columns, and overrides
    :meth:`_correct` (the default detects every nonzero syndrome and corrects nothing).
    """

    name: str
    data_bits: int
    code_bits: int

    @property
    def check_bits(self) -> int:
        """Stored check bits, ``n − k``."""
        return self.code_bits - self.data_bits

    @property
    def syndrome_bits(self) -> int:
        """Rows of the parity-check matrix (``n − k`` for every code here)."""
        return self._syndrome_bits

    def _set_parity_checks(self, columns: np.ndarray, rows: int) -> None:
        columns = np.asarray(columns, dtype=np.uint64)
        if columns.shape != (self.code_bits,) or rows > 64 or rows != self.check_bits:
            raise AssertionError(f"{self.name}: bad parity-check columns {columns.shape}, {rows} rows")
        h = columns_to_matrix(columns, rows)
        encoder = np.zeros((rows, self.data_bits), dtype=np.int64)
        if rows:  # H = [A | B], H·(d, p) = 0  →  check bits p = B⁻¹·A·d
            encoder = (gf2_inverse(h[:, self.data_bits:]).astype(np.int64) @ h[:, :self.data_bits]) % 2
        for attr, value in (("_columns", columns), ("_syndrome_bits", rows), ("_h", h),
                            ("_h_float", h.T.astype(np.float32)), ("_encoder", encoder.astype(np.uint8)),
                            ("_weights", (np.uint64(1) << np.arange(rows, dtype=np.uint64)))):
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
            object.__setattr__(self, attr, value)

    def parity_check_matrix(self) -> np.ndarray:
        """``H`` as a uint8 0/1 matrix of shape ``(r, n)``; ``H·c = 0`` for every codeword ``c``."""
        return self._h.copy()

    def parity_check_columns(self) -> np.ndarray:
        """Columns of ``H`` packed as uint64 (bit ``i`` = row ``i``)."""
        return self._columns.copy()

    def _patterns(self, patterns) -> np.ndarray:
        e = np.asarray(patterns)
        if e.ndim == 1:
            e = e[None, :]
        if e.ndim != 2 or e.shape[1] != self.code_bits:
            raise CodeError(f"{self.name}: error patterns must have {self.code_bits} bits per row, "
                            f"got shape {np.shape(patterns)}")
        return e.astype(bool, copy=False)

    def syndromes(self, patterns) -> np.ndarray:
        """Packed syndromes ``H·e`` (uint64, bit ``i`` = row ``i``) of patterns ``(N, n)`` or ``(n,)``."""
        e = self._patterns(patterns)
        out = np.zeros(len(e), dtype=np.uint64)
        if self._syndrome_bits == 0:
            return out
        for lo in range(0, len(e), _CHUNK_ROWS):  # bounded temporaries for large batches
            counts = e[lo:lo + _CHUNK_ROWS].astype(np.float32) @ self._h_float  # exact: counts ≤ n < 2^24
            bits = (counts.astype(np.int64) & 1).astype(np.uint64)
            out[lo:lo + _CHUNK_ROWS] = (bits * self._weights).sum(axis=1, dtype=np.uint64)
        return out

    def encode(self, data) -> np.ndarray:
        """Codeword bits (uint8) of data bits ``(k,)`` or ``(N, k)``: data then check bits."""
        d = np.asarray(data).astype(np.uint8) & 1
        if d.shape[-1:] != (self.data_bits,):
            raise CodeError(f"{self.name}: data must have {self.data_bits} bits, got shape {d.shape}")
        checks = (d.astype(np.int64) @ self._encoder.T.astype(np.int64)) % 2
        return np.concatenate([d, checks.astype(np.uint8)], axis=-1)

    def _correct(self, syndromes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoder action per syndrome: (detected ``(N,)``, flips ``(N, n)``); zero syndrome → nothing."""
        detected = syndromes != 0
        return detected, np.zeros((len(syndromes), self.code_bits), dtype=bool)

    def _flips_at(self, positions: np.ndarray) -> np.ndarray:
        """Flip masks ``(N, n)`` from bit positions ``(N, t)``; −1 = no flip."""
        positions = np.asarray(positions, dtype=np.int64).reshape(len(positions), -1)
        flips = np.zeros((len(positions), self.code_bits), dtype=bool)
        rows, slots = np.nonzero(positions >= 0)
        flips[rows, positions[rows, slots]] = True
        return flips

    def decode_many(self, patterns) -> DecodeBatch:
        """Decode error patterns ``(N, n)`` (or one ``(n,)``), vectorised; see the module doc."""
        e = self._patterns(patterns)
        syndromes = self.syndromes(e)
        detected, flips = self._correct(syndromes)
        acted = flips.any(axis=1)
        if (detected & acted).any() or ((syndromes == 0) & (detected | acted)).any():
            raise AssertionError(f"{self.name}: decoder both detected and corrected, or acted on zero")
        residual = e ^ flips
        codes = np.full(len(e), CLEAN, dtype=np.uint8)
        codes[residual.any(axis=1)] = UNDETECTED
        codes[acted & ~residual.any(axis=1)] = CORRECTED
        codes[(flips & ~e).any(axis=1)] = MISCORRECTED
        codes[detected] = DETECTED
        return DecodeBatch(codes, residual[:, :self.data_bits], flips)

    def decode(self, error_pattern) -> DecodeResult:
        """Decode one error pattern (``n`` bits, data then check bits)."""
        e = np.asarray(error_pattern)
        if e.ndim != 1:
            raise CodeError(f"{self.name}: decode takes one pattern of {self.code_bits} bits, got shape {e.shape}")
        return self.decode_many(e[None, :])[0]
