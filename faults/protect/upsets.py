"""Hardware upset models (single cell, multi-cell clusters) and column interleaving.

**Upset models.** A particle strike at a physical cell upsets a *cluster* of adjacent cells of
the same physical row. :class:`UpsetModel` is the cluster-size distribution:

* ``single`` — one cell (size 1 with probability 1);
* ``mcu:1=0.6,2=0.25,3=0.1,4=0.05`` — multi-cell upset: size ``s`` with probability ``f_s``
  (sizes distinct integers ≥ 1, fractions ≥ 0 summing to 1 within 1e-9).

Sizes are drawn with an explicit ``numpy.random.Generator`` (:meth:`UpsetModel.draw_sizes`).

**Row-end rule: shift to fit.** A cluster of size ``c`` struck at cell ``p`` covers
``[p, p + c)``; when that would cross the end of ``p``'s row it is shifted back to end at the last
cell of the row: ``start = min(p, row_end − c)``. So every cluster has exactly its drawn size,
lies in one row, and contains the struck cell (:meth:`ColumnInterleaving.place_clusters`).
A cluster larger than its row is an error. (Consequence: the last ``c − 1`` cells of a row are
covered a little more often than the others; negligible for rows of hundreds of cells.)

**Column interleaving.** A structure stores ``codewords`` codewords of ``code_bits`` (n) bits
in physical rows of ``degree`` codewords each, interleaved bit by bit. Cell ``x`` (the physical
bit index, row-major) lies in row ``x // (degree·n)``, column ``p = x mod (degree·n)``; in a
full row, column ``p`` holds bit ``p // degree`` of codeword ``row·degree + p % degree``.
When ``codewords`` is not a multiple of ``degree`` the last row holds the ``q`` remaining
codewords, interleaved with degree ``q`` in ``q·n`` cells, so cells ``0 .. codewords·n − 1``
and (codeword, bit) pairs are in one-to-one correspondence. Degree 1 = no interleaving (a row is
one codeword). A cluster of ``c`` adjacent cells thus hits ``min(c, degree)`` codewords (each
with ``⌈c/degree⌉`` or ``⌊c/degree⌋`` bits, adjacent codeword bits);
:meth:`ColumnInterleaving.cluster_errors` turns clusters into per-codeword error patterns,
ready for ``code.decode_many``.

Not modelled: clusters spanning several rows (two-dimensional MCUs), and bit-line or word-line
failures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accelsim.errors import UserError

FRACTION_TOLERANCE = 1e-9


class UpsetError(UserError, ValueError):
    """A malformed upset model, a cell outside its structure, or a cluster that does not fit."""


@dataclass(frozen=True)
class UpsetModel:
    """Cluster-size distribution: size ``sizes[i]`` with probability ``fractions[i]`` (see module doc)."""

    sizes: tuple[int, ...] = (1,)
    fractions: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        sizes, fractions = tuple(self.sizes), tuple(float(f) for f in self.fractions)
        if not sizes or len(sizes) != len(fractions):
            raise UpsetError(f"upset model: need one fraction per size, got {len(sizes)} sizes "
                             f"and {len(fractions)} fractions")
        if any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1 for s in sizes):
            raise UpsetError(f"upset model: cluster sizes must be integers >= 1, got {list(sizes)}")
        if len(set(sizes)) != len(sizes):
            raise UpsetError(f"upset model: a cluster size is given twice in {list(sizes)}")
        if any(not math.isfinite(f) or f < 0 for f in fractions):
            raise UpsetError(f"upset model: fractions must be finite and >= 0, got {list(fractions)}")
        if abs(math.fsum(fractions) - 1.0) > FRACTION_TOLERANCE:
            raise UpsetError(f"upset model: fractions sum to {math.fsum(fractions):.12g}, not 1")
        order = sorted(range(len(sizes)), key=lambda i: sizes[i])
        object.__setattr__(self, "sizes", tuple(int(sizes[i]) for i in order))
        object.__setattr__(self, "fractions", tuple(fractions[i] for i in order))

    @property
    def kind(self) -> str:
        return "single" if self.sizes == (1,) else "mcu"

    @property
    def name(self) -> str:
        """Canonical spec: ``single`` or ``mcu:1=0.6,2=0.4``."""
        if self.kind == "single":
            return "single"
        return "mcu:" + ",".join(f"{s}={f:.12g}" for s, f in zip(self.sizes, self.fractions))

    @property
    def max_size(self) -> int:
        return max(s for s, f in zip(self.sizes, self.fractions) if f > 0)

    @property
    def mean_size(self) -> float:
        return math.fsum(s * f for s, f in zip(self.sizes, self.fractions))

    def draw_sizes(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` cluster sizes (int64) drawn independently from the distribution."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"need a numpy.random.Generator, got {type(rng).__name__}")
        p = np.asarray(self.fractions) / math.fsum(self.fractions)
        return rng.choice(np.asarray(self.sizes, dtype=np.int64), size=int(count), p=p)


SINGLE = UpsetModel()


def parse_upset_model(text: str) -> UpsetModel:
    """``single`` or ``mcu:SIZE=FRACTION,...`` (e.g. ``mcu:1=0.6,2=0.25,3=0.1,4=0.05``)."""
    spec = str(text).strip()
    kind, colon, body = (s.strip() for s in spec.lower().partition(":"))
    if kind == "single" and not colon:
        return SINGLE
    if kind != "mcu":
        raise UpsetError(f"unknown upset model {spec!r}; use single or mcu:1=0.6,2=0.25,3=0.1,4=0.05")
    sizes, fractions = [], []
    for part in body.split(","):
        size_text, eq, fraction_text = (s.strip() for s in part.partition("="))
        if not eq or not size_text.isascii() or not size_text.isdigit():
            raise UpsetError(f"upset model {spec!r}: {part.strip()!r} is not SIZE=FRACTION")
        try:
            fraction = float(fraction_text)
        except ValueError:
            raise UpsetError(f"upset model {spec!r}: fraction {fraction_text!r} is not a number") from None
        sizes.append(int(size_text))
        fractions.append(fraction)
    try:
        return UpsetModel(tuple(sizes), tuple(fractions))
    except UpsetError as error:
        raise UpsetError(f"upset model {spec!r}: {str(error).removeprefix('upset model: ')}") from None


@dataclass(frozen=True, eq=False)
class ClusterErrors:
    """Per-codeword error patterns of clusters (row ``j`` = one codeword hit by one cluster).

    Attributes:
        start: int64 ``(U,)``, first cell of each cluster.
        size: int64 ``(U,)``, cells of each cluster.
        upset: int64 ``(M,)``, the cluster (index into ``start``) of each hit codeword.
        codeword: int64 ``(M,)``, the codeword hit.
        patterns: bool ``(M, n)``, its error pattern (codeword bits flipped).
    """

    start: np.ndarray
    size: np.ndarray
    upset: np.ndarray
    codeword: np.ndarray
    patterns: np.ndarray


@dataclass(frozen=True)
class ColumnInterleaving:
    """``codewords`` codewords of ``code_bits`` bits, ``degree`` per physical row, bit-interleaved."""

    code_bits: int
    codewords: int
    degree: int = 1

    def __post_init__(self) -> None:
        for key in ("code_bits", "codewords", "degree"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise UpsetError(f"interleaving: {key} must be an integer >= 1, got {value!r}")

    @property
    def row_cells(self) -> int:
        """Cells of a full row, ``degree · code_bits``."""
        return self.degree * self.code_bits

    @property
    def rows(self) -> int:
        return -(-self.codewords // self.degree)

    @property
    def cells(self) -> int:
        """Physical cells of the structure, ``codewords · code_bits``."""
        return self.codewords * self.code_bits

    def _cells(self, cells) -> np.ndarray:
        x = np.asarray(cells, dtype=np.int64)
        if x.size and (x.min() < 0 or x.max() >= self.cells):
            bad = int(x.min()) if x.min() < 0 else int(x.max())
            raise UpsetError(f"cell {bad} outside a structure of {self.cells} cells")
        return x

    def _row_degree(self, row: np.ndarray) -> np.ndarray:
        return np.minimum(self.degree, self.codewords - row * self.degree)

    def cell_to_codeword(self, cells) -> tuple[np.ndarray, np.ndarray]:
        """(codeword index, codeword bit) of physical cells (int or array)."""
        x = self._cells(cells)
        row, column = np.divmod(x, self.row_cells)
        degree = self._row_degree(row)
        return row * self.degree + column % degree, column // degree

    def codeword_to_cell(self, codeword, bit) -> np.ndarray:
        """Physical cell of (codeword index, codeword bit); the inverse of :meth:`cell_to_codeword`."""
        w, b = np.asarray(codeword, dtype=np.int64), np.asarray(bit, dtype=np.int64)
        if w.size and (w.min() < 0 or w.max() >= self.codewords):
            raise UpsetError(f"codeword index outside 0..{self.codewords - 1}")
        if b.size and (b.min() < 0 or b.max() >= self.code_bits):
            raise UpsetError(f"codeword bit outside 0..{self.code_bits - 1}")
        row, slot = np.divmod(w, self.degree)
        return row * self.row_cells + b * self._row_degree(row) + slot

    def row_span(self, cells) -> tuple[np.ndarray, np.ndarray]:
        """(first cell, number of cells) of the row of each cell."""
        row = self._cells(cells) // self.row_cells
        return row * self.row_cells, self._row_degree(row) * self.code_bits

    def place_clusters(self, struck_cells, sizes) -> np.ndarray:
        """First cell of clusters struck at ``struck_cells`` (row-end rule: shift to fit)."""
        struck = self._cells(struck_cells)
        size = np.broadcast_to(np.asarray(sizes, dtype=np.int64), struck.shape)
        first, width = self.row_span(struck)
        self._check_fits(size, width)
        return np.minimum(struck, first + width - size)

    @staticmethod
    def _check_fits(size: np.ndarray, width: np.ndarray) -> None:
        size, width = np.broadcast_arrays(size, width)
        if size.size and size.min() < 1:
            raise UpsetError(f"cluster size {int(size.min())} < 1")
        too_big = np.flatnonzero(size > width)
        if too_big.size:
            i = too_big[0]
            raise UpsetError(f"cluster of {int(size.flat[i])} cells larger than its row of {int(width.flat[i])} cells")

    def cluster_errors(self, start_cells, sizes) -> ClusterErrors:
        """Per-codeword error patterns of clusters ``[start, start + size)``, each within one row."""
        start = np.atleast_1d(self._cells(start_cells))
        size = np.broadcast_to(np.asarray(sizes, dtype=np.int64), start.shape).copy()
        first, width = self.row_span(start)
        self._check_fits(size, width)
        if (start + size > first + width).any():
            i = int(np.argmax(start + size > first + width))
            raise UpsetError(f"cluster of {int(size[i])} cells at cell {int(start[i])} crosses the end "
                             f"of its row (place it with place_clusters)")
        upset = np.repeat(np.arange(len(start), dtype=np.int64), size)
        offset = np.arange(len(upset), dtype=np.int64) - np.repeat(np.cumsum(size) - size, size)
        codeword, bit = self.cell_to_codeword(start[upset] + offset)
        order = np.lexsort((codeword, upset))
        upset, codeword, bit = upset[order], codeword[order], bit[order]
        new = np.ones(len(upset), dtype=bool)
        new[1:] = (upset[1:] != upset[:-1]) | (codeword[1:] != codeword[:-1])
        group = np.cumsum(new) - 1
        patterns = np.zeros((int(new.sum()), self.code_bits), dtype=bool)
        patterns[group, bit] = True
        return ClusterErrors(start, size, upset[new], codeword[new], patterns)


def draw_cluster_errors(model: UpsetModel, layout: ColumnInterleaving, struck_cells,
                        rng: np.random.Generator) -> ClusterErrors:
    """Draw a cluster size per struck cell, place it (shift to fit), and map it to codewords."""
    struck = np.atleast_1d(np.asarray(struck_cells, dtype=np.int64))
    sizes = model.draw_sizes(rng, len(struck))
    return layout.cluster_errors(layout.place_clusters(struck, sizes), sizes)
