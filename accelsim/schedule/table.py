"""``Table``: the struct-of-arrays type of the schedule (steps, segments, timeline, folds).

A table is an ordered set of named, equal-length 1-D numpy int64 columns. Columns are read as
attributes (``schedule.times.c_end``, ``schedule.folds.work``) so that no consumer indexes a
2-D array by column number. The Numba kernels still take and return plain arrays; the schedule
wraps their results with :meth:`Table.from_array` at that boundary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class Table:
    """Struct of numpy int64 columns ``cols`` (name -> array [rows]), in column order."""

    cols: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["cols"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __len__(self) -> int:
        return len(next(iter(self.cols.values()))) if self.cols else 0

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(self.cols)

    @classmethod
    def from_array(cls, array: np.ndarray, columns: Sequence[str]) -> "Table":
        """Table of the columns of a 2-D int64 ``array`` [rows, len(columns)], named ``columns``."""
        array = np.asarray(array, dtype=np.int64).reshape(-1, len(columns))
        return cls({name: np.ascontiguousarray(array[:, i]) for i, name in enumerate(columns)})

    def take(self, index) -> "Table":
        """The rows ``index`` (boolean mask, integer indices or slice) as a new table."""
        return Table({name: values[index] for name, values in self.cols.items()})

    def with_columns(self, **extra: np.ndarray) -> "Table":
        """A new table with ``extra`` columns (int64, one value per row) appended."""
        cols = dict(self.cols)
        cols.update({name: np.asarray(values, dtype=np.int64) for name, values in extra.items()})
        return Table(cols)

    def row(self, index: int, columns: Sequence[str] | None = None) -> tuple[int, ...]:
        """Row ``index`` as a tuple of Python ints (``columns``: which ones, in order; default all)."""
        names = self.columns if columns is None else tuple(columns)
        return tuple(int(self.cols[name][index]) for name in names)

    def rows(self, columns: Sequence[str] | None = None) -> list[tuple[int, ...]]:
        """Rows as tuples of Python ints (``columns``: which ones and in which order; default all)."""
        names = self.columns if columns is None else tuple(columns)
        return list(zip(*(self.cols[name].tolist() for name in names)))

    def equals(self, other: "Table") -> bool:
        """Same column names in the same order with identical values."""
        return self.columns == other.columns and all(
            np.array_equal(values, other.cols[name]) for name, values in self.cols.items())
