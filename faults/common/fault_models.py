"""Fault models acting on the stored bits of a parameter (fp32, fp16, bf16, int8).

A parameter stored in format ``fmt`` is a flat stream of ``n`` elements of ``b`` bits
(``b`` = 32/16/16/8); element ``e`` occupies stream bits ``[e*b, (e+1)*b)``, bit 0 being its
least significant bit (for floats: mantissa LSB; bit ``b-1`` is the sign). A memory word of
``word_bits`` bits covers stream bits ``[w*W, (w+1)*W)``.

Fault models (``FaultModel.kind``):

* ``sbf``     single bit flip at one element and one bit position;
* ``mbf``     multiple bit flips: every stored bit of the scope flips independently with
  probability ``ber``, conditioned on at least one flip (the parameter *is* corrupted — PVF is
  a conditional probability); the count is drawn from the zero-truncated binomial. The BER is
  per stored bit *of the scope*: ``scope=tensor`` (default) — of the whole parameter, so the
  number of flips grows with the tensor's size and the PVF mixes sensitivity with size (a
  large embedding table at 1e-6 takes many flips, a bias one); ``scope=element`` — of one
  uniformly drawn element (its bits, or ``positions``), which does not depend on tensor size;
* ``kbit``    exactly ``k`` distinct bits flipped, uniformly among the bits of one element
  (``scope=element``, default; restricted to ``positions`` if given) or of one memory word of
  ``word_bits`` bits (``scope=word``; may span adjacent elements of the word; a partial last
  word counts with its own bits). Every ``k``-subset of a scope is equally likely: the fixed-
  count multi-bit model beside the BER model;
* ``burst``   ``length`` adjacent bits flipped inside one memory word of ``word_bits`` bits
  (never crossing a word boundary; it may span adjacent elements of the same word);
* ``stuck0`` / ``stuck1``  one bit forced to 0 / 1; when the bit already has that value the
  fault is *not activated* (``Corruption.activated`` is False, nothing changes, the outcome is
  masked). Reports give the activated share and the PVF among activated faults beside the
  unconditional PVF;
* ``random``  one element replaced by a uniformly random bit pattern.

Bit position (``sbf``, ``stuck*``: the bit; ``burst``: the lowest bit of the burst relative
to its element) is *drawn* uniformly from ``positions`` (all bits when empty) or *fixed* when
the campaign passes one (a sweep is a campaign whose strata are the positions).

``draw`` returns a :class:`Corruption`: flat element indices and their new stored bits, from
which :func:`apply` builds the faulty stored tensor. Every draw uses the given
``numpy.random.Generator``; nothing here keeps state.

Populations (:func:`population_size`, the ``N`` of sample-size formulas): ``sbf`` / ``stuck*``
``n·|positions|``; ``burst`` the (element, start bit) sites whose burst fits one word and the
tensor; ``kbit`` ``n·C(b, k)`` per element, ``full_words·C(W, k) + C(rem, k)`` per word; ``mbf``
and ``random`` unbounded (``inf``). For the bounded models every draw is uniform over the
population and :func:`fault_at` numbers it (index ``0..N-1``), so a small population can be
enumerated exhaustively (:func:`enumerable`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from accelsim.storage import BITS_PER_ELEMENT, StoredTensor, check_format

from faults.common.bitstream import _UINT, Corruption, FaultModelError, from_stream_bits, make, single
from faults.common.multibit import (burst_draw, burst_at, burst_positions, burst_sites, kbit_draw, kbit_make,
                                    kbit_scope, mbf_element, unrank_combination, burst_starts,
                                    zero_truncated_binomial)

__all__ = ["KINDS", "SCOPES", "FaultModel", "FaultModelError", "Corruption", "parse_fault", "parse_positions",
           "draw", "single_bit_flip", "burst_starts", "zero_truncated_binomial", "apply", "flip",
           "population_size", "enumerable", "fault_at"]

KINDS = ("sbf", "mbf", "kbit", "burst", "stuck0", "stuck1", "random")
SCOPES = {"mbf": ("tensor", "element"), "kbit": ("element", "word")}
_KIND_ALIASES = {"stuck-at-0": "stuck0", "stuck-at-1": "stuck1", "sa0": "stuck0", "sa1": "stuck1",
                 "bitflip": "sbf", "flip": "sbf", "rand": "random"}


@dataclass(frozen=True)
class FaultModel:
    """How the stored bits of a parameter are corrupted.

    Attributes:
        kind: one of :data:`KINDS`.
        positions: bit positions (within an element) the bit is drawn from; empty = all.
        ber: per-bit error rate (``mbf``), per stored bit of the scope.
        length: number of adjacent bits (``burst``).
        word_bits: memory word width in bits (``burst``, ``kbit`` with ``scope=word``).
        k: number of distinct bits flipped (``kbit``).
        scope: ``mbf``: ``tensor`` (default) or ``element``; ``kbit``: ``element`` (default) or
            ``word``; empty for the other models.
    """

    kind: str = "sbf"
    positions: tuple[int, ...] = ()
    ber: float = 1e-6
    length: int = 2
    word_bits: int = 64
    k: int = 2
    scope: str = ""

    def __post_init__(self) -> None:
        kind = _KIND_ALIASES.get(self.kind, self.kind)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
        if kind not in KINDS:
            raise FaultModelError(f"unknown fault model {self.kind!r}; choose one of {', '.join(KINDS)}")
        if kind == "mbf" and not 0.0 < self.ber <= 1.0:
            raise FaultModelError(f"mbf: ber must be in (0, 1], got {self.ber}")
        scope = str(self.scope).strip().lower()
        if kind in SCOPES:
            scope = scope or SCOPES[kind][0]
            if scope not in SCOPES[kind]:
                raise FaultModelError(f"{kind}: scope must be {' or '.join(SCOPES[kind])}, got {self.scope!r}")
        elif scope:
            raise FaultModelError(f"{kind}: no scope option (only mbf and kbit have one)")
        object.__setattr__(self, "scope", scope)
        if kind == "kbit":
            if self.k < 1:
                raise FaultModelError(f"kbit: k must be >= 1, got {self.k}")
            if scope == "word":
                if self.positions:
                    raise FaultModelError("kbit: bits= applies to scope=element only")
                if self.word_bits < 1 or self.k > self.word_bits:
                    raise FaultModelError(f"kbit: need 1 <= k <= word, got k={self.k} word={self.word_bits}")
            elif self.positions and self.k > len(set(self.positions)):
                raise FaultModelError(f"kbit: k={self.k} exceeds the {len(set(self.positions))} allowed bit positions")
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

    def bit_positions_for(self, width: int) -> tuple[int, ...]:
        """Candidate bit positions within a ``width``-bit element (``positions`` or all), checked."""
        positions = self.positions or tuple(range(width))
        bad = [p for p in positions if p >= width]
        if bad:
            raise FaultModelError(f"bit position {bad[0]} out of range for a {width}-bit element")
        if self.kind == "kbit" and self.scope == "element" and self.k > len(positions):
            raise FaultModelError(f"kbit: k={self.k} exceeds the {len(positions)} bits of one element")
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
        if self.kind == "kbit":
            parts.append(f"k={self.k}")
            if self.scope == "word":
                parts += ["scope=word", f"word={self.word_bits}"]
        if self.kind == "mbf" and self.scope != "tensor":
            parts.append(f"scope={self.scope}")
        return self.kind + (":" + ",".join(parts) if parts else "")


def parse_fault(text: str) -> FaultModel:
    """``sbf``, ``sbf:bits=23-30``, ``burst:len=4,word=64``, ``mbf:ber=1e-6[,scope=element]``,
    ``kbit:k=2[,scope=word,word=64]``, ``stuck1:bit=30``."""
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
            elif key == "k":
                kwargs["k"] = int(value)
            elif key == "scope":
                kwargs["scope"] = value.strip().lower()
            else:
                raise FaultModelError(f"unknown fault option {key!r} in {text!r} (bits, ber, len, word, k, scope)")
        except ValueError as exc:
            if isinstance(exc, FaultModelError):
                raise
            raise FaultModelError(f"bad value for {key!r} in fault {text!r}: {value!r}") from None
    return FaultModel(kind=kind.strip().lower(), **kwargs)  # type: ignore[arg-type]


def parse_positions(text: str) -> tuple[int, ...]:
    """``"30"``, ``"23-30"``, ``"0+7+15"`` -> sorted unique bit positions. An empty list, a
    reversed range (``30-23``) or a position past 63 is an error, never "all bits"."""
    out: set[int] = set()
    for part in filter(None, text.replace(" ", "").split("+")):
        lo, sep, hi = part.partition("-")
        first, last = int(lo), int(hi if sep else lo)
        if first > last:
            raise FaultModelError(f"bit range {part!r} is reversed; write {last}-{first}")
        if last > 63:
            raise FaultModelError(f"bit position {last} in {part!r}: stored elements have at most 32 bits")
        out.update(range(first, last + 1))
    if not out:
        raise FaultModelError(f"no bit positions in {text!r}; give e.g. bits=23-30 (or leave bits out for all)")
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
        return single(flat, width, element, bit, kind)
    if kind == "random":
        element = int(rng.integers(n))
        new = rng.integers(0, 1 << width, dtype=np.uint64)
        return make(flat, width, np.array([element]), np.array([new]), -1)
    if kind == "burst":
        return burst_draw(model, flat, width, rng, bit)
    if kind == "kbit":
        return kbit_draw(model, flat, width, rng)
    if model.scope == "element":
        return mbf_element(model, flat, width, rng)
    return _mbf(model, flat, width, rng)


def single_bit_flip(stored: StoredTensor, element: int, bit: int) -> Corruption:
    """The corruption that flips stored bit ``bit`` of flat element ``element`` (a hardware site)."""
    width = stored.bits_per_element
    flat = stored.bits.reshape(-1)
    if not 0 <= element < flat.size or not 0 <= bit < width:
        raise FaultModelError(f"element {element} bit {bit} outside a {flat.size}-element {stored.fmt} tensor")
    return single(flat, width, element, bit, "sbf")


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
    return from_stream_bits(flat, width, stream, first_bit)


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
    """Number of distinct faults of ``model`` in a parameter (``inf`` when unbounded; module
    docstring). ``bit`` fixes the bit position (a stratum)."""
    width = BITS_PER_ELEMENT[check_format(fmt)]
    if model.kind in ("sbf", "stuck0", "stuck1"):
        per = 1 if bit is not None else len(model.bit_positions(fmt))
        return float(n_elements * per)
    if model.kind == "burst":
        if bit is None and not model.positions:
            return float(burst_starts(n_elements, width, model.length, model.word_bits))
        positions = burst_positions(model, width, bit)
        return float(sum(c for _, _, c in burst_sites(n_elements, width, model.length, model.word_bits, positions)))
    if model.kind == "kbit":
        full, per, rem = kbit_scope(model, n_elements, width)
        return float(full * math.comb(per, model.k) + math.comb(rem, model.k))
    return float("inf")


def enumerable(model: FaultModel) -> bool:
    """Whether :func:`fault_at` numbers this model's faults (a bounded population drawn uniformly)."""
    return model.kind in ("sbf", "stuck0", "stuck1", "burst", "kbit")


def fault_at(model: FaultModel, stored: StoredTensor, index: int, bit: int | None = None) -> Corruption:
    """Fault number ``index`` (``0 <= index < population_size``) of ``model`` in ``stored``: the
    enumeration behind exhaustive cells. sbf/stuck: element-major over the positions; burst:
    start sites in word order (with positions: by bit, then element); kbit: scope-major, then
    the k-subsets in lexicographic order."""
    if not enumerable(model):
        raise FaultModelError(f"{model.kind} faults cannot be enumerated")
    width = stored.bits_per_element
    flat = stored.bits.reshape(-1)
    total = population_size(model, flat.size, stored.fmt, bit)
    if not 0 <= index < total:
        raise FaultModelError(f"fault index {index} outside a population of {int(total)}")
    if model.kind in ("sbf", "stuck0", "stuck1"):
        positions = (bit,) if bit is not None else model.bit_positions(stored.fmt)
        element, j = divmod(int(index), len(positions))
        return single(flat, width, element, int(positions[j]), model.kind)
    if model.kind == "burst":
        return burst_at(model, flat, width, int(index), bit)
    full, per, rem = kbit_scope(model, flat.size, width)
    per_scope = math.comb(per, model.k)
    scope, rank = divmod(int(index), per_scope) if index < full * per_scope else (full, int(index) - full * per_scope)
    size = per if scope < full else rem
    return kbit_make(model, flat, width, scope, unrank_combination(rank, size, model.k))
