"""Fault models acting on the stored bits of a parameter (fp32, fp16, bf16, int8).

A parameter stored in format ``fmt`` is a flat stream of ``n`` elements of ``b`` bits
(``b`` = 32/16/16/8); element ``e`` occupies stream bits ``[e*b, (e+1)*b)``, bit 0 being its
least significant bit (for floats: mantissa LSB; bit ``b-1`` is the sign). A memory word of
``word_bits`` bits covers stream bits ``[w*W, (w+1)*W)``.

Fault models (``FaultModel.kind``):

* ``sbf``     single bit flip at one element and one bit position;
* ``mbf``     multiple bit flips: every bit of the parameter flips independently with
  probability ``ber``, conditioned on at least one flip (the parameter *is* corrupted — PVF is
  a conditional probability); the count is drawn from the zero-truncated binomial;
* ``burst``   ``length`` adjacent bits flipped inside one memory word of ``word_bits`` bits
  (never crossing a word boundary; it may span adjacent elements of the same word);
* ``stuck0`` / ``stuck1``  one bit forced to 0 / 1 (masked when it already has that value);
* ``random``  one element replaced by a uniformly random bit pattern.

Bit position (``sbf``, ``stuck*``: the bit; ``burst``: the lowest bit of the burst relative
to its element) is *drawn* uniformly from ``positions`` (all bits when empty) or *fixed* when
the campaign passes one (a sweep is a campaign whose strata are the positions).

``draw`` returns a :class:`Corruption`: flat element indices and their new stored bits, from
which :func:`apply` builds the faulty stored tensor. Every draw uses the given
``numpy.random.Generator``; nothing here keeps state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from accelsim.errors import UserError
from accelsim.storage import BITS_PER_ELEMENT, StoredTensor, check_format

KINDS = ("sbf", "mbf", "burst", "stuck0", "stuck1", "random")
_KIND_ALIASES = {"stuck-at-0": "stuck0", "stuck-at-1": "stuck1", "sa0": "stuck0", "sa1": "stuck1",
                 "bitflip": "sbf", "flip": "sbf", "rand": "random"}
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


class FaultModelError(UserError, ValueError):
    """A fault model or fault site is invalid (one line, names what and where)."""


@dataclass(frozen=True)
class FaultModel:
    """How the stored bits of a parameter are corrupted.

    Attributes:
        kind: one of :data:`KINDS`.
        positions: bit positions (within an element) the bit is drawn from; empty = all.
        ber: per-bit error rate (``mbf``).
        length: number of adjacent bits (``burst``).
        word_bits: memory word width in bits (``burst``).
    """

    kind: str = "sbf"
    positions: tuple[int, ...] = ()
    ber: float = 1e-6
    length: int = 2
    word_bits: int = 64

    def __post_init__(self) -> None:
        kind = _KIND_ALIASES.get(self.kind, self.kind)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
        if kind not in KINDS:
            raise FaultModelError(f"unknown fault model {self.kind!r}; choose one of {', '.join(KINDS)}")
        if kind == "mbf" and not 0.0 < self.ber <= 1.0:
            raise FaultModelError(f"mbf: ber must be in (0, 1], got {self.ber}")
        if kind == "burst":
            if self.length < 1 or self.word_bits < 1 or self.length > self.word_bits:
                raise FaultModelError(
                    f"burst: need 1 <= length <= word_bits, got length={self.length} word_bits={self.word_bits}"
                )
        if any(p < 0 for p in self.positions):
            raise FaultModelError(f"{kind}: negative bit position in {list(self.positions)}")

    @property
    def has_bit_position(self) -> bool:
        """Whether trials of this model have one bit position (a stratum key)."""
        return self.kind in ("sbf", "stuck0", "stuck1", "burst")

    def bit_positions(self, fmt: str) -> tuple[int, ...]:
        """Bit positions this model may hit in format ``fmt`` (checked against its width)."""
        width = BITS_PER_ELEMENT[check_format(fmt)]
        if not self.has_bit_position:
            return ()
        positions = self.positions or tuple(range(width))
        bad = [p for p in positions if p >= width]
        if bad:
            raise FaultModelError(f"bit position {bad[0]} out of range for {fmt} (bits 0..{width - 1})")
        return positions

    def describe(self) -> str:
        """Short text form, parseable by :func:`parse_fault`."""
        parts: list[str] = []
        if self.positions:
            parts.append("bits=" + "+".join(str(p) for p in self.positions))
        if self.kind == "mbf":
            parts.append(f"ber={self.ber:g}")
        if self.kind == "burst":
            parts.append(f"len={self.length}")
            parts.append(f"word={self.word_bits}")
        return self.kind + (":" + ",".join(parts) if parts else "")


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


def parse_fault(text: str) -> FaultModel:
    """``sbf``, ``sbf:bits=23-30``, ``burst:len=4,word=64``, ``mbf:ber=1e-6``, ``stuck1:bit=30``."""
    kind, _, rest = text.strip().partition(":")
    kwargs: dict[str, object] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise FaultModelError(f"fault option {item!r} is not key=value (in {text!r})")
        key = key.strip().lower()
        try:
            if key in ("bit", "bits", "positions"):
                kwargs["positions"] = parse_positions(value)
            elif key == "ber":
                kwargs["ber"] = float(value)
            elif key in ("len", "length"):
                kwargs["length"] = int(value)
            elif key in ("word", "word_bits"):
                kwargs["word_bits"] = int(value)
            else:
                raise FaultModelError(f"unknown fault option {key!r} in {text!r} (bits, ber, len, word)")
        except ValueError as exc:
            if isinstance(exc, FaultModelError):
                raise
            raise FaultModelError(f"bad value for {key!r} in fault {text!r}: {value!r}") from None
    return FaultModel(kind=kind.strip().lower(), **kwargs)  # type: ignore[arg-type]


def parse_positions(text: str) -> tuple[int, ...]:
    """``"30"``, ``"23-30"``, ``"0+7+15"`` -> sorted unique bit positions."""
    out: set[int] = set()
    for part in filter(None, text.replace(" ", "").split("+")):
        lo, sep, hi = part.partition("-")
        if sep:
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(lo))
    return tuple(sorted(out))


# ---------------------------------------------------------------------------- drawing
def draw(
    model: FaultModel,
    stored: StoredTensor,
    rng: np.random.Generator,
    bit: int | None = None,
) -> Corruption:
    """Draw one fault of ``model`` in the stored tensor ``stored``.

    ``bit`` fixes the bit position (a sweep stratum); otherwise it is drawn from
    ``model.positions`` (all bits when empty).
    """
    width = stored.bits_per_element
    flat = stored.bits.reshape(-1)
    n = flat.size
    if n == 0:
        raise FaultModelError("cannot inject into an empty parameter")
    if bit is not None and not 0 <= bit < width:
        raise FaultModelError(f"bit position {bit} out of range for {stored.fmt} (bits 0..{width - 1})")
    kind = model.kind
    if kind in ("sbf", "stuck0", "stuck1"):
        if bit is None:
            if model.positions:
                positions = model.bit_positions(stored.fmt)
                bit = int(positions[rng.integers(len(positions))])
            else:
                bit = int(rng.integers(width))
        element = int(rng.integers(n))
        return _single(flat, width, element, bit, kind)
    if kind == "random":
        element = int(rng.integers(n))
        new = rng.integers(0, 1 << width, dtype=np.uint64)
        return _make(flat, width, np.array([element]), np.array([new]), -1)
    if kind == "burst":
        return _burst(model, flat, width, rng, bit)
    return _mbf(model, flat, width, rng)


def single_bit_flip(stored: StoredTensor, element: int, bit: int) -> Corruption:
    """The corruption that flips stored bit ``bit`` of flat element ``element`` (a hardware site)."""
    width = stored.bits_per_element
    flat = stored.bits.reshape(-1)
    if not 0 <= element < flat.size or not 0 <= bit < width:
        raise FaultModelError(f"element {element} bit {bit} outside a {flat.size}-element {stored.fmt} tensor")
    return _single(flat, width, element, bit, "sbf")


def _single(flat: np.ndarray, width: int, element: int, bit: int, kind: str) -> Corruption:
    old = int(flat[element])
    mask = 1 << bit
    if kind == "sbf":
        new = old ^ mask
    elif kind == "stuck0":
        new = old & ~mask
    else:
        new = old | mask
    return _make(flat, width, np.array([element]), np.array([new]), bit)


def _make(flat: np.ndarray, width: int, index: np.ndarray, new: np.ndarray, bit: int) -> Corruption:
    dtype = _UINT[width]
    index = np.asarray(index, dtype=np.int64)
    old_bits = flat[index].astype(dtype)
    new_bits = (np.asarray(new, dtype=np.uint64) & np.uint64((1 << width) - 1)).astype(dtype)
    changed = np.bitwise_xor(old_bits.astype(np.uint64), new_bits.astype(np.uint64))
    nflips = sum(int(v).bit_count() for v in changed.tolist())
    return Corruption(index, old_bits, new_bits, int(bit), nflips)


def _from_stream_bits(flat: np.ndarray, width: int, stream_bits: np.ndarray, bit: int) -> Corruption:
    """Flip the given stream bit positions (unique int64)."""
    stream_bits = np.asarray(stream_bits, dtype=np.int64)
    elements = stream_bits // width
    offsets = stream_bits % width
    index = np.unique(elements)
    masks = np.zeros(index.size, dtype=np.uint64)
    np.bitwise_or.at(masks, np.searchsorted(index, elements), np.uint64(1) << offsets.astype(np.uint64))
    new = flat[index].astype(np.uint64) ^ masks
    return _make(flat, width, index, new, bit)


def burst_starts(n_elements: int, width: int, length: int, word_bits: int) -> int:
    """Number of valid burst start positions in a parameter of ``n_elements`` elements."""
    total = n_elements * width
    full, rem = divmod(total, word_bits)
    return full * (word_bits - length + 1) + max(0, rem - length + 1)


def _burst(
    model: FaultModel, flat: np.ndarray, width: int, rng: np.random.Generator, bit: int | None
) -> Corruption:
    W, L = model.word_bits, model.length
    n = flat.size
    total = n * width
    if bit is None and not model.positions:
        count = burst_starts(n, width, L, W)
        if count <= 0:
            raise FaultModelError(f"burst of {L} bits does not fit in a parameter of {total} bits")
        j = int(rng.integers(count))
        per_word = W - L + 1
        word, offset = divmod(j, per_word)
        start = word * W + offset
    else:
        if bit is None:
            bad = [p for p in model.positions if p >= width]
            if bad:
                raise FaultModelError(f"bit position {bad[0]} out of range for a {width}-bit element")
            bit = int(model.positions[rng.integers(len(model.positions))])
        start = _burst_start_at_bit(n, width, L, W, bit, rng)
    stream = np.arange(start, start + L, dtype=np.int64)
    return _from_stream_bits(flat, width, stream, int(start % width))


def _burst_start_at_bit(n: int, width: int, L: int, W: int, bit: int, rng: np.random.Generator) -> int:
    """Uniform element whose burst starting at ``bit`` stays in one word and in the parameter."""
    period = W // np.gcd(W, width)

    def fits(e: int) -> bool:
        start = e * width + bit
        return (start % W) + L <= W and start + L <= n * width

    if not any(fits(e) for e in range(min(period, n))) and not fits(n - 1):
        raise FaultModelError(
            f"burst of {L} bits at bit {bit} never fits a {W}-bit word of this {width}-bit format"
        )
    for _ in range(100_000):
        e = int(rng.integers(n))
        if fits(e):
            return e * width + bit
    raise FaultModelError(f"burst of {L} bits at bit {bit}: no fitting element found")


def _mbf(model: FaultModel, flat: np.ndarray, width: int, rng: np.random.Generator) -> Corruption:
    positions = model.positions
    per_element = len(positions) if positions else width
    total = flat.size * per_element
    k = zero_truncated_binomial(total, model.ber, rng)
    picks = rng.choice(total, size=k, replace=False) if k < total else np.arange(total)
    picks = np.sort(np.asarray(picks, dtype=np.int64))
    if positions:
        pos = np.asarray(positions, dtype=np.int64)
        stream = (picks // per_element) * width + pos[picks % per_element]
    else:
        stream = picks
    first_bit = int(stream[0] % width) if k == 1 else -1
    return _from_stream_bits(flat, width, stream, first_bit)


def zero_truncated_binomial(n: int, p: float, rng: np.random.Generator) -> int:
    """A draw of Binomial(n, p) conditioned on being >= 1 (inverse survival function)."""
    from scipy.stats import binom

    u = rng.random()
    sf0 = float(binom.sf(0, n, p))  # P(K >= 1)
    if sf0 <= 0.0:
        return 1
    k = int(binom.isf(u * sf0, n, p))  # smallest k with P(K > k) <= u P(K >= 1)
    return max(1, min(k, n))


# ---------------------------------------------------------------------------- applying
def apply(stored: StoredTensor, corruption: Corruption) -> StoredTensor:
    """The stored tensor with ``corruption`` applied (a copy; ``stored`` is unchanged)."""
    bits = stored.bits.copy()
    flat = bits.reshape(-1)
    flat[corruption.index] = corruption.new_bits
    return stored.with_bits(bits)


def flip(bits: np.ndarray | int, positions: Sequence[int], width: int) -> np.ndarray:
    """XOR the given bit positions into ``bits`` (helper for tests and sweeps)."""
    mask = 0
    for p in positions:
        if not 0 <= p < width:
            raise FaultModelError(f"bit position {p} out of range for a {width}-bit element")
        mask |= 1 << p
    arr = np.asarray(bits, dtype=_UINT[width])
    return arr ^ _UINT[width](mask)


def population_size(model: FaultModel, n_elements: int, fmt: str, bit: int | None = None) -> float:
    """Number of distinct faults of ``model`` in a parameter (``inf`` when unbounded)."""
    width = BITS_PER_ELEMENT[check_format(fmt)]
    if model.kind in ("sbf", "stuck0", "stuck1"):
        per = 1 if bit is not None else len(model.bit_positions(fmt))
        return float(n_elements * per)
    if model.kind == "burst":
        if bit is not None:
            return float(n_elements)
        return float(burst_starts(n_elements, width, model.length, model.word_bits))
    return float("inf")
