"""Residency table: where every parameter copy lives, and when it is written, read and evicted.

One row per (parameter tile, structure, slot). Columns (numpy, struct of arrays):

* ``param`` — index into ``ResidencyTable.parameter_names``; ``structure`` — index into
  ``STRUCTURES`` (hbm, weight_sram, embedding_sram, pe); ``op`` — index of the work item
  (``Schedule.ops``) whose load or fold made the copy (for hbm: the first op that reads it).
* ``view``, ``g``, ``k0``, ``k1``, ``n0``, ``n1`` — the elements: block ``[g, k0:k1, n0:n1]``
  of view ``views[view]`` = (param, base, sg, sk, sn); element (g, k, n) is the parameter's
  flat C-order element ``base + g·sg + k·sk + n·sn`` (see ``workload.WeightView``). An
  embedding row r of a table [R, D] is block [0, r:r+1, 0:D] of view (table, 0, 0, D, 1); a
  run of a vector-unit operand is block [0, 0:1, a:b] of view (param, 0, 0, 0, 1).
  ``ResidencyTable.elements(i)`` returns the flat indices of row i.
* ``slot``, ``addr_lo``, ``addr_hi`` — byte range [addr_lo, addr_hi) in the structure. SRAM:
  ``slot·slot_bytes + offset``; inside a weight tile element (k, n) sits at
  ``addr_lo + ((k−k0)·(n1−n0) + (n−n0))·weight_bytes`` (bias of a GEMM right after its tile;
  embedding rows and vector runs back to back). HBM: parameter base (``Schedule.hbm``:
  burst-aligned, program order) + element·weight_bytes; for a strided tile [addr_lo, addr_hi)
  is the envelope. PE: PE (r, c) is byte (r·cols + c)·weight_bytes; ws: PE(r,c) holds
  (k0+r, n0+c) for the whole fold; os: B[k, n0+c] passes PE(r,c) (r < rows used) for one
  cycle each; is: B[k0+r, n] passes PE(r,c) (c < columns used) for one cycle each.
* ``bits`` — bits the copy occupies; ``write_cycle`` — last cycle of the write (the copy is
  readable from the next cycle; hbm: −1 = present before the inference); ``first_read``,
  ``last_read`` — first and last cycle any element of the row is read; ``read_count`` — reads
  of each element; ``evict_cycle`` — first cycle the slot is overwritten (or the end of the
  schedule).
* ``ace_bit_cycles`` — exact Σ over elements of (last read of that element − write_cycle) ×
  bits per element, under the read-cycle formulas of ``dataflow`` (array reads) and of the
  vector unit (operands read in the last cycle of each step that uses them).

A copy holds its bytes during cycles write_cycle+1 .. evict_cycle−1 (two copies of the same
structure that hold bytes at the same cycle never share a byte). A flip at cycle t (before that
cycle's reads) in a row's bits is read iff write_cycle < t ≤ (last read of that element): those
bit-cycles are ACE; after the last read and before eviction the bits are dead.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

STRUCTURES = ("hbm", "weight_sram", "embedding_sram", "pe")
COLUMNS = ("param", "structure", "op", "view", "g", "k0", "k1", "n0", "n1", "slot", "addr_lo",
           "addr_hi", "bits", "write_cycle", "first_read", "last_read", "read_count",
           "evict_cycle", "ace_bit_cycles")


@dataclass(frozen=True)
class ResidencyTable:
    """Struct-of-arrays residency table (columns ``COLUMNS``, module docstring)."""

    cols: dict[str, np.ndarray]
    parameter_names: tuple[str, ...]
    views: np.ndarray  # int64 [V, 5]: param, base, sg, sk, sn
    capacity_bits: dict[str, int]
    total_cycles: int
    ace_read_weighted: np.ndarray | None = None  # float64 [rows] bit-cycles (accelsim.schedule.reach)

    def __len__(self) -> int:
        return len(self.cols["param"])

    def __getitem__(self, column: str) -> np.ndarray:
        return self.cols[column]

    def elements(self, row: int) -> np.ndarray:
        """Flat element indices (C order of the parameter) of ``row``, shape [k1-k0, n1-n0]."""
        c = self.cols
        _, base, sg, sk, sn = self.views[c["view"][row]]
        k = np.arange(c["k0"][row], c["k1"][row], dtype=np.int64)[:, None]
        n = np.arange(c["n0"][row], c["n1"][row], dtype=np.int64)[None, :]
        return base + c["g"][row] * sg + k * sk + n * sn

    def select(self, structure: str) -> np.ndarray:
        """Row indices of one structure."""
        return np.flatnonzero(self.cols["structure"] == STRUCTURES.index(structure))

    def to_csv(self) -> str:
        """CSV text (header + one line per row; param/structure by name)."""
        out = io.StringIO()
        out.write(",".join(("param_name", "structure_name") + COLUMNS) + "\n")
        names = np.asarray(self.parameter_names, dtype=object)[self.cols["param"]].tolist()
        kinds = np.asarray(STRUCTURES, dtype=object)[self.cols["structure"]].tolist()
        columns = [self.cols[c].astype(np.int64).tolist() for c in COLUMNS]
        csv.writer(out, lineterminator="\n").writerows(zip(names, kinds, *columns))
        return out.getvalue()

    def save_npz(self, path) -> None:
        """Write the table (columns, names, views, capacities, total cycles) to ``path`` (.npz)."""
        np.savez_compressed(
            path, **{f"col_{c}": self.cols[c] for c in COLUMNS},
            parameter_names=np.asarray(self.parameter_names, dtype=str), views=self.views,
            capacity_names=np.asarray(list(self.capacity_bits), dtype=str),
            capacity_bits=np.asarray(list(self.capacity_bits.values()), dtype=np.int64),
            total_cycles=np.int64(self.total_cycles),
            **({} if self.ace_read_weighted is None else {"ace_read_weighted": self.ace_read_weighted}))

    @classmethod
    def load_npz(cls, path) -> "ResidencyTable":
        """Read a table written by :meth:`save_npz`."""
        with np.load(path) as data:
            cols = {c: data[f"col_{c}"] for c in COLUMNS}
            capacity = dict(zip(data["capacity_names"].tolist(), data["capacity_bits"].tolist()))
            rw = data["ace_read_weighted"] if "ace_read_weighted" in data.files else None
            return cls(cols, tuple(data["parameter_names"].tolist()), data["views"], capacity,
                       int(data["total_cycles"]), rw)

    def ace_by_parameter(self) -> dict[str, dict[str, int]]:
        """Parameter name -> structure -> ACE bit-cycles (sum over its rows)."""
        key = self.cols["param"] * len(STRUCTURES) + self.cols["structure"]
        sums = np.zeros(len(self.parameter_names) * len(STRUCTURES), dtype=np.int64)
        np.add.at(sums, key, self.cols["ace_bit_cycles"])
        sums = sums.reshape(len(self.parameter_names), len(STRUCTURES))
        return {name: {s: int(sums[p, i]) for i, s in enumerate(STRUCTURES) if sums[p, i]}
                for p, name in enumerate(self.parameter_names)}

    def occupancy(self, structure: str, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cycles, live_bits, dead_bits) at ``samples`` evenly spaced cycles of [0, total).

        Live: write_cycle < t ≤ last_read (envelope of the row); dead: last_read < t < evict.
        """
        rows = self.select(structure)
        grid = np.linspace(0, max(self.total_cycles - 1, 0), samples).astype(np.int64)
        c = self.cols
        bits = c["bits"][rows]

        def covered(lo, hi):  # Σ bits of rows with lo < t < hi, at every grid t
            starts = np.zeros(samples + 1, dtype=np.int64)
            first = np.searchsorted(grid, lo[:], side="right")
            last = np.searchsorted(grid, hi, side="left")
            np.add.at(starts, first, bits)
            np.add.at(starts, last, -bits * (last >= first))
            np.add.at(starts, first, -bits * (last < first))
            return np.cumsum(starts)[:samples]

        live = covered(c["write_cycle"][rows], c["last_read"][rows] + 1)
        dead = covered(c["last_read"][rows], c["evict_cycle"][rows])
        return grid, live, dead
