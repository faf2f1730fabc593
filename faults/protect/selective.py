"""Selective protection: a code over chosen bit positions of every element of a data word.

``SelectiveCode(kind, word_bits, element_bits, positions)`` protects, in a data word of
``word_bits`` bits holding ``word_bits / element_bits`` elements, the data bits whose position
within their element is in ``positions`` (e.g. the sign and exponent of fp32: positions 23..31 of
each 32-bit element). Element ``e`` holds data bits ``e·element_bits .. (e+1)·element_bits − 1``.
The protected bits, in increasing order, are the data bits of an inner code ``kind`` ∈
{``parity``, ``secded``, ``dected``} of exactly that many data bits (e.g. 18 bits of a 64-bit
word → Hsiao SECDED (24,18), 6 check bits); the other data bits are stored unprotected.

Layout: codeword bits ``0 .. word_bits−1`` are the data word, then the inner code's check bits
(``check_bits`` = the inner code's). As a binary linear code its parity-check column of an
unprotected bit is zero, so decoding is the inner decoder acting on the protected bits and check
bits. Outcomes (as everywhere, see :mod:`faults.protect.linear`): an error in unprotected bits
only is ``undetected``; inner ``corrected`` with unprotected bits also wrong is ``undetected``
(the decoder undid part of the error and flipped no good bit); inner ``detected`` /
``miscorrected`` stay so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faults.protect.bch import DectedCode
from faults.protect.linear import BinaryLinearCode, CodeError
from faults.protect.parity import ParityCode
from faults.protect.secded import SecdedCode

INNER_CODES = {"parity": ParityCode, "secded": SecdedCode, "dected": DectedCode}


def format_positions(positions) -> str:
    """Bit positions as ``HI-LO`` ranges, highest first, joined by ``+`` (e.g. ``31-23+15``)."""
    ranges: list[list[int]] = []
    for p in sorted(set(positions), reverse=True):
        if ranges and ranges[-1][1] == p + 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    return "+".join(f"{hi}-{lo}" if hi != lo else f"{hi}" for hi, lo in ranges)


@dataclass(frozen=True)
class SelectiveCode(BinaryLinearCode):
    """Inner code ``kind`` over the data bits at ``positions`` of each element (see module doc)."""

    kind: str
    word_bits: int
    element_bits: int
    positions: tuple[int, ...]

    def __post_init__(self) -> None:
        positions = tuple(sorted(int(p) for p in self.positions))
        object.__setattr__(self, "positions", positions)
        if self.kind not in INNER_CODES:
            raise CodeError(f"selective protection with {self.kind!r}: use one of {', '.join(INNER_CODES)}")
        if self.element_bits < 1 or self.word_bits < 1 or self.word_bits % self.element_bits:
            raise CodeError(f"{self.kind}: element of {self.element_bits} bits does not divide "
                            f"a word of {self.word_bits} bits")
        if not positions or len(set(positions)) != len(positions):
            raise CodeError(f"{self.kind}: protected positions must be distinct and not empty")
        outside = [p for p in positions if not 0 <= p < self.element_bits]
        if outside:
            raise CodeError(f"{self.kind}: bit {outside[0]} outside an element of {self.element_bits} bits")
        elements = self.word_bits // self.element_bits
        protected = (np.arange(elements)[:, None] * self.element_bits + np.asarray(positions)).ravel()
        protected.flags.writeable = False
        inner = INNER_CODES[self.kind](len(protected))
        inner_columns = inner.parity_check_columns()
        columns = np.zeros(self.word_bits + inner.check_bits, dtype=np.uint64)
        columns[protected] = inner_columns[: inner.data_bits]
        columns[self.word_bits:] = inner_columns[inner.data_bits:]
        for attr, value in (("data_bits", self.word_bits), ("code_bits", len(columns)),
                            ("inner", inner), ("protected_bits", protected)):
            object.__setattr__(self, attr, value)
        self._set_parity_checks(columns, inner.syndrome_bits)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.word_bits},bits={format_positions(self.positions)},elem={self.element_bits}"

    @property
    def description(self) -> str:
        return (f"{self.inner.description} over {len(self.protected_bits)} of {self.word_bits} data bits "
                f"(positions {format_positions(self.positions)} of each {self.element_bits}-bit element)")

    def _correct(self, syndromes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        detected, inner_flips = self.inner._correct(syndromes)
        flips = np.zeros((len(syndromes), self.code_bits), dtype=bool)
        flips[:, self.protected_bits] = inner_flips[:, : self.inner.data_bits]
        flips[:, self.word_bits:] = inner_flips[:, self.inner.data_bits:]
        return detected, flips
