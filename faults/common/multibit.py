"""The multi-bit fault models on stored bits: bursts inside one memory word, exactly ``k``
flipped bits per element or word (``kbit``), and BER per bit of one element (``mbf`` with
``scope=element``) — their draws, fault sites and enumeration (see
:mod:`faults.common.fault_models` for the models' definitions and populations)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from faults.common.bitstream import Corruption, FaultModelError, from_stream_bits

# ``model`` arguments are faults.common.fault_models.FaultModel (not imported: that module
# imports this one).


def burst_starts(n_elements: int, width: int, length: int, word_bits: int) -> int:
    """Number of valid burst start positions in a parameter of ``n_elements`` elements."""
    total = n_elements * width
    full, rem = divmod(total, word_bits)
    return full * (word_bits - length + 1) + max(0, rem - length + 1)


def burst_draw(
    model, flat: np.ndarray, width: int, rng: np.random.Generator, bit: int | None
) -> Corruption:
    W, L = model.word_bits, model.length
    n = flat.size
    total = n * width
    if bit is None and not model.positions:
        count = burst_starts(n, width, L, W)
        if count <= 0:
            raise FaultModelError(f"burst of {L} bits does not fit in a parameter of {total} bits")
        return burst_at(model, flat, width, int(rng.integers(count)), None)
    sites = burst_sites(n, width, L, W, burst_positions(model, width, bit))
    count = sum(c for _, _, c in sites)
    if count <= 0:
        where = f"at bit {bit}" if bit is not None else f"at bits {list(model.positions)}"
        raise FaultModelError(f"burst of {L} bits {where} never fits a {W}-bit word of this {width}-bit format")
    return burst_at(model, flat, width, int(rng.integers(count)), bit)


def burst_positions(model, width: int, bit: int | None) -> tuple[int, ...]:
    positions = (bit,) if bit is not None else model.positions
    bad = [p for p in positions if p >= width]
    if bad:
        raise FaultModelError(f"bit position {bad[0]} out of range for a {width}-bit element")
    return tuple(positions)


def burst_sites(n: int, width: int, L: int, W: int, positions: Sequence[int]) -> list[tuple[int, list[int], int]]:
    """Per start bit ``b``: (b, residues r of the elements e ≡ r (mod period) whose burst stays in
    one word, number of such elements whose burst also ends inside the tensor)."""
    period = W // math.gcd(W, width)
    out = []
    for b in positions:
        residues = [r for r in range(period) if (r * width + b) % W + L <= W]
        last = (n * width - L - b) // width  # largest element whose burst ends inside the tensor
        count = sum((last - r) // period + 1 for r in residues if r <= last) if last >= 0 else 0
        out.append((b, residues, count))
    return out


def burst_at(model, flat: np.ndarray, width: int, index: int, bit: int | None) -> Corruption:
    """The ``index``-th burst site (starts in word order; with positions: by bit, then element)."""
    W, L = model.word_bits, model.length
    if bit is None and not model.positions:
        word, offset = divmod(index, W - L + 1)
        start = word * W + offset
    else:
        period = W // math.gcd(W, width)
        for b, residues, count in burst_sites(flat.size, width, L, W, burst_positions(model, width, bit)):
            if index < count:
                q, t = divmod(index, len(residues))
                start = (q * period + residues[t]) * width + b
                break
            index -= count
        else:
            raise FaultModelError("burst site index out of range")
    stream = np.arange(start, start + L, dtype=np.int64)
    return from_stream_bits(flat, width, stream, int(start % width))


def mbf_element(model, flat: np.ndarray, width: int, rng: np.random.Generator) -> Corruption:
    """BER per bit of one uniformly drawn element, conditioned on at least one flip."""
    candidates = np.asarray(model.bit_positions_for(width), dtype=np.int64)
    element = int(rng.integers(flat.size))
    count = zero_truncated_binomial(candidates.size, model.ber, rng)
    bits = np.sort(rng.choice(candidates, size=count, replace=False)) if count < candidates.size else candidates
    return from_stream_bits(flat, width, element * width + bits, int(bits[0]) if count == 1 else -1)


def kbit_scope(model, n: int, width: int) -> tuple[int, int, int]:
    """(full scopes, bits per full scope, bits of a partial last scope) of a ``kbit`` model."""
    if model.scope == "word":
        full, rem = divmod(n * width, model.word_bits)
        return full, model.word_bits, rem
    return n, len(model.bit_positions_for(width)), 0


def kbit_draw(model, flat: np.ndarray, width: int, rng: np.random.Generator) -> Corruption:
    full, per, rem = kbit_scope(model, flat.size, width)
    k = model.k
    if k > per and k > rem:
        raise FaultModelError(f"kbit: k={k} exceeds the {per} bits of one {model.scope}")
    whole = full * math.comb(per, k) if k <= per else 0
    part = math.comb(rem, k)
    if part and (not whole or rng.random() < part / (whole + part)):
        scope, size = full, rem
    else:
        scope, size = int(rng.integers(full)), per
    bits = np.sort(rng.choice(size, size=k, replace=False)).astype(np.int64)
    return kbit_make(model, flat, width, scope, bits)


def kbit_make(model, flat: np.ndarray, width: int, scope: int, bits: np.ndarray) -> Corruption:
    if model.scope == "word":
        stream = scope * model.word_bits + bits
    else:
        stream = scope * width + np.asarray(model.bit_positions_for(width), dtype=np.int64)[bits]
    stream = np.sort(stream)
    return from_stream_bits(flat, width, stream, int(stream[0] % width) if stream.size == 1 else -1)


def unrank_combination(rank: int, n: int, k: int) -> np.ndarray:
    """The ``rank``-th k-subset of ``range(n)`` in lexicographic order."""
    out = []
    x = 0
    for i in range(k, 0, -1):
        while math.comb(n - x - 1, i - 1) <= rank:
            rank -= math.comb(n - x - 1, i - 1)
            x += 1
        out.append(x)
        x += 1
    return np.asarray(out, dtype=np.int64)


def zero_truncated_binomial(n: int, p: float, rng: np.random.Generator) -> int:
    """A draw of Binomial(n, p) conditioned on being >= 1 (inverse survival function)."""
    from scipy.stats import binom

    u = rng.random()
    sf0 = float(binom.sf(0, n, p))  # P(K >= 1)
    if sf0 <= 0.0:
        return 1
    k = int(binom.isf(u * sf0, n, p))  # smallest k with P(K > k) <= u P(K >= 1)
    return max(1, min(k, n))
