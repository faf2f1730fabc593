"""Stored-bit primitives shared by the fault models: the :class:`Corruption` record and the
helpers that build one from new bit patterns or from flipped positions of the bit stream (an
``n``-element, ``b``-bit parameter is the stream bits ``[e*b, (e+1)*b)`` of element ``e``; see
:mod:`faults.common.fault_models`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import UserError

_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


class FaultModelError(UserError, ValueError):
    """A fault model or fault site is invalid (one line, names what and where)."""


@dataclass(frozen=True)
class Corruption:
    """The effect of one fault on one parameter's stored bits.

    Attributes:
        index: flat element indices (sorted, unique, int64).
        old_bits / new_bits: stored bit patterns before / after (uint of the format's width).
        bit: bit position of the fault within its first element (-1 when not applicable).
        nflips: number of stored bits that actually changed.
    """

    index: np.ndarray
    old_bits: np.ndarray
    new_bits: np.ndarray
    bit: int
    nflips: int

    @property
    def masked(self) -> bool:
        """True when no stored bit changed (e.g. stuck-at on a bit already at that value)."""
        return self.nflips == 0

    @property
    def activated(self) -> bool:
        """The fault changed at least one stored bit (stuck-at: the bit had the other value)."""
        return self.nflips > 0


def single(flat: np.ndarray, width: int, element: int, bit: int, kind: str) -> Corruption:
    old = int(flat[element])
    mask = 1 << bit
    if kind == "sbf":
        new = old ^ mask
    elif kind == "stuck0":
        new = old & ~mask
    else:
        new = old | mask
    return make(flat, width, np.array([element]), np.array([new]), bit)


def make(flat: np.ndarray, width: int, index: np.ndarray, new: np.ndarray, bit: int) -> Corruption:
    dtype = _UINT[width]
    index = np.asarray(index, dtype=np.int64)
    old_bits = flat[index].astype(dtype)
    new_bits = (np.asarray(new, dtype=np.uint64) & np.uint64((1 << width) - 1)).astype(dtype)
    changed = np.bitwise_xor(old_bits.astype(np.uint64), new_bits.astype(np.uint64))
    nflips = sum(int(v).bit_count() for v in changed.tolist())
    return Corruption(index, old_bits, new_bits, int(bit), nflips)


def from_stream_bits(flat: np.ndarray, width: int, stream_bits: np.ndarray, bit: int) -> Corruption:
    """Flip the given stream bit positions (unique int64)."""
    stream_bits = np.asarray(stream_bits, dtype=np.int64)
    elements = stream_bits // width
    offsets = stream_bits % width
    index = np.unique(elements)
    masks = np.zeros(index.size, dtype=np.uint64)
    np.bitwise_or.at(masks, np.searchsorted(index, elements), np.uint64(1) << offsets.astype(np.uint64))
    new = flat[index].astype(np.uint64) ^ masks
    return make(flat, width, index, new, bit)
