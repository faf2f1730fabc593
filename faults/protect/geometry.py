"""Physical layout of a protected structure: data bits, codewords, check bits, interleaved rows.

A structure's data bits (SRAM: its capacity; HBM: the parameter region; PE: the weight
registers) are split into areas — the weight SRAM's protected bank (``placement``) is an area of
its own — and each area into codewords of its code's ``k`` data bits: codeword w of an area
holds the area's data bits ``[w·k, (w+1)·k)`` (structure bit ``8·address + bit`` for memories,
``register·weight_bits + bit`` for PE registers), followed by its ``n − k`` check bits, which
are stored cells too. The ``W·n`` cells of an area sit in physical rows of ``degree`` codewords
interleaved bit by bit (``upsets.ColumnInterleaving``). The data bits of a last, partial
codeword beyond the area hold nothing and are never read.

:class:`Area` maps codeword data bits to fault sites (``faults.avf.sites.Site``);
:func:`structure_areas` lists a structure's areas with their schemes; upsets strike physical
cells uniformly over all areas of a structure (:func:`draw_area`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faults.avf.context import AvfContext
from faults.avf.sites import Site
from faults.protect.codes import NoCode
from faults.protect.scheme import NONE, Protection, Scheme
from faults.protect.upsets import ColumnInterleaving


@dataclass(frozen=True)
class Area:
    """One protected area: structure bits ``[bit_lo, bit_hi)`` under ``scheme``."""

    structure: str
    name: str
    bit_lo: int
    bit_hi: int
    scheme: Scheme
    register_bits: int = 8  # PE: bits per register (site address = register); memories: 8 (a byte)

    @property
    def data_bits(self) -> int:
        return self.bit_hi - self.bit_lo

    @property
    def codewords(self) -> int:
        return -(-self.data_bits // self.scheme.code.data_bits)

    @property
    def cells(self) -> int:
        """Physical cells: data and check bits of every codeword."""
        return self.codewords * self.scheme.code.code_bits

    @property
    def check_bits(self) -> int:
        return self.codewords * self.scheme.code.check_bits

    def layout(self) -> ColumnInterleaving:
        return ColumnInterleaving(self.scheme.code.code_bits, self.codewords, self.scheme.interleave)

    def sites(self, codeword: int, data_bits: np.ndarray, cycle: int) -> list[Site | None]:
        """The fault site of each data bit of ``codeword`` (None beyond the area's data)."""
        out: list[Site | None] = []
        for j in np.asarray(data_bits, dtype=np.int64):
            b = self.bit_lo + codeword * self.scheme.code.data_bits + int(j)
            if b >= self.bit_hi:
                out.append(None)
            else:
                out.append(Site(self.structure, b // self.register_bits, b % self.register_bits, int(cycle)))
        return out


def structure_areas(ctx: AvfContext, structure: str, protection: Protection) -> tuple[Area, ...]:
    """The areas of ``structure`` (the weight SRAM's protected bank apart) with their schemes."""
    bits = ctx.resolver.capacity_bits(structure)
    width = 8 * ctx.hw.precision.weight_bytes if structure == "pe" else 8
    bank = getattr(ctx, "bank", None)
    if structure == "weight_sram" and bank is not None and bank.weight_sram_bytes:
        split = bits - 8 * bank.weight_sram_bytes
        return (Area(structure, structure, 0, split, protection.scheme(structure), width),
                Area(structure, "weight_sram.bank", split, bits, protection.scheme("weight_sram.bank"), width))
    scheme = protection.scheme(structure)
    if structure == "pe" and scheme == NONE:
        scheme = Scheme(NoCode(width))  # unprotected registers: a row of one register
    return (Area(structure, structure, 0, bits, scheme, width),)


def draw_area(areas: tuple[Area, ...], rng: np.random.Generator) -> tuple[Area, int]:
    """(area, cell) of an upset striking a uniformly random physical cell of the structure."""
    cells = np.array([a.cells for a in areas], dtype=np.int64)
    pick = int(rng.integers(int(cells.sum())))
    index = int(np.searchsorted(np.cumsum(cells), pick, side="right"))
    return areas[index], pick - int(cells[:index].sum())
