"""Finite-field arithmetic for the codes: GF(2^m) by log/antilog tables, and GF(2) matrices.

An element of GF(2^m) is an integer in ``[0, 2^m)`` whose bit ``i`` is the coefficient of
``α^i`` in the polynomial basis, α being a root of the primitive polynomial
``PRIMITIVE_POLYNOMIALS[m]`` (the usual table choices, e.g. ``x^8+x^4+x^3+x^2+1`` = 0x11D for
GF(256), as in most Reed–Solomon texts and hardware). Multiplication and division go through
``log``/``exp`` tables and work elementwise on numpy integer arrays.

References: Lin & Costello, *Error Control Coding* (2nd ed., 2004), ch. 2;
MacWilliams & Sloane, *The Theory of Error-Correcting Codes* (1977), ch. 3-4.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

# x^m + ... + 1 as an integer with bit i = coefficient of x^i; primitive for each m.
PRIMITIVE_POLYNOMIALS = {
    3: 0b1011,             # x^3 + x + 1
    4: 0b10011,            # x^4 + x + 1
    5: 0b100101,           # x^5 + x^2 + 1
    6: 0b1000011,          # x^6 + x + 1
    7: 0b10001001,         # x^7 + x^3 + 1
    8: 0b100011101,        # x^8 + x^4 + x^3 + x^2 + 1  (0x11D)
    9: 0b1000010001,       # x^9 + x^4 + 1
    10: 0b10000001001,     # x^10 + x^3 + 1
    11: 0b100000000101,    # x^11 + x^2 + 1
    12: 0b1000001010011,   # x^12 + x^6 + x^4 + x + 1
}


@dataclass(frozen=True)
class GaloisField:
    """GF(2^m) with log/antilog tables; ``exp`` has length 2·(2^m − 1) so log sums need no modulo."""

    m: int
    exp: np.ndarray = field(init=False, repr=False, compare=False)
    log: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.m not in PRIMITIVE_POLYNOMIALS:
            raise ValueError(f"GF(2^{self.m}) not supported; m in {sorted(PRIMITIVE_POLYNOMIALS)}")
        order = self.order
        exp = np.zeros(2 * order, dtype=np.int64)
        log = np.full(order + 1, -1, dtype=np.int64)  # log[0] = -1: zero has no logarithm
        x = 1
        for i in range(order):
            exp[i] = x
            log[x] = i
            x <<= 1
            if x >> self.m:
                x ^= PRIMITIVE_POLYNOMIALS[self.m]
        if x != 1 or (log[1:] < 0).any():
            raise AssertionError(f"polynomial for GF(2^{self.m}) is not primitive")
        exp[order:] = exp[:order]
        exp.flags.writeable = False
        log.flags.writeable = False
        object.__setattr__(self, "exp", exp)
        object.__setattr__(self, "log", log)

    @property
    def order(self) -> int:
        """Number of nonzero elements, 2^m − 1 (the multiplicative order of α)."""
        return (1 << self.m) - 1

    def alpha_power(self, k):
        """α^k for any integer (array) k."""
        return self.exp[np.mod(k, self.order)]

    def mul(self, a, b):
        """Elementwise product of two arrays of field elements."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        product = self.exp[np.maximum(self.log[a], 0) + np.maximum(self.log[b], 0)]
        return np.where((a == 0) | (b == 0), 0, product)

    def div(self, a, b):
        """Elementwise ``a / b``; ``b`` must be nonzero where ``a`` is (0 where b == 0)."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        quotient = self.exp[np.mod(self.log[a] - self.log[b], self.order)]
        return np.where((a == 0) | (b == 0), 0, quotient)

    def power(self, a, k: int):
        """Elementwise ``a^k`` for an integer k ≥ 1."""
        a = np.asarray(a, dtype=np.int64)
        return np.where(a == 0, 0, self.exp[np.mod(self.log[a] * k, self.order)])

    def cyclotomic_coset(self, i: int) -> tuple[int, ...]:
        """Exponents of the conjugates of α^i: {i·2^j mod (2^m − 1)}."""
        coset, j = [], i % self.order
        while j not in coset:
            coset.append(j)
            j = (2 * j) % self.order
        return tuple(coset)

    def minimal_polynomial(self, i: int) -> int:
        """Minimal polynomial of α^i over GF(2), as an integer (bit d = coefficient of x^d)."""
        poly = [1]  # coefficients in GF(2^m), lowest degree first
        for j in self.cyclotomic_coset(i):
            root = int(self.exp[j])
            shifted = [0] + poly                                         # x · poly
            scaled = [int(self.mul(root, c)) for c in poly] + [0]         # root · poly
            poly = [s ^ t for s, t in zip(shifted, scaled)]
        if any(c not in (0, 1) for c in poly):
            raise AssertionError("minimal polynomial has coefficients outside GF(2)")
        return sum(c << d for d, c in enumerate(poly))

    def quadratic_roots(self) -> np.ndarray:
        """Table ``y = root[c]`` with ``y^2 + y = c`` (the other root is ``y ^ 1``), −1 if none."""
        ys = np.arange(self.order + 1, dtype=np.int64)
        cs = self.mul(ys, ys) ^ ys
        root = np.full(self.order + 1, -1, dtype=np.int64)
        root[cs[::-1]] = ys[::-1]  # the smaller of the two roots wins
        return root


@cache
def galois_field(m: int) -> GaloisField:
    """The (cached) field GF(2^m)."""
    return GaloisField(m)


def gf2_poly_mul(a: int, b: int) -> int:
    """Product of two GF(2) polynomials given as integers."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a <<= 1
        b >>= 1
    return out


def gf2_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a square 0/1 matrix over GF(2) (Gauss–Jordan); ValueError when singular."""
    a = np.asarray(matrix, dtype=np.uint8) & 1
    size = a.shape[0]
    if a.shape != (size, size):
        raise ValueError(f"need a square matrix, got shape {a.shape}")
    work = np.concatenate([a, np.eye(size, dtype=np.uint8)], axis=1)
    for col in range(size):
        pivots = np.nonzero(work[col:, col])[0]
        if pivots.size == 0:
            raise ValueError("matrix is singular over GF(2)")
        pivot = col + int(pivots[0])
        if pivot != col:
            work[[col, pivot]] = work[[pivot, col]]
        rows = np.nonzero(work[:, col])[0]
        rows = rows[rows != col]
        work[rows] ^= work[col]
    return work[:, size:].copy()


def columns_to_matrix(columns: np.ndarray, rows: int) -> np.ndarray:
    """0/1 matrix (rows × len(columns)) whose column j has bit i of ``columns[j]`` in row i."""
    columns = np.asarray(columns, dtype=np.uint64)
    shifts = np.arange(rows, dtype=np.uint64)[:, None]
    return ((columns[None, :] >> shifts) & np.uint64(1)).astype(np.uint8)

