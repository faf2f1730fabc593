"""Append-only SQLite store of a PVF campaign's trials (``DIR/trials.sqlite``).

On the shared base (:class:`faults.common.store.SqliteStore`: identity check, integrity check
before any write, read-only opening), with two tables:

* ``cells``  the strata: index, dtype, bit, keys (JSON), candidate parameters, stored bits,
  fault population, planned trials;
* ``trials`` one row per finished trial, primary key = trial index (a trial can never be
  stored twice); raw deviations as columns plus the per-input record blob.

The database runs in WAL mode; each finished chunk is written in one transaction, so a
killed campaign leaves only whole chunks behind and a re-run resumes after them.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from faults.common.store import SqliteStore, StoreError

FILE_NAME = "trials.sqlite"

TRIAL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trial", "INTEGER PRIMARY KEY"),
    ("cell", "INTEGER NOT NULL"),
    ("rep", "INTEGER NOT NULL"),
    ("dtype", "TEXT NOT NULL"),
    ("param", "TEXT NOT NULL"),
    ("layer", "TEXT NOT NULL"),
    ("component", "TEXT NOT NULL"),
    ("grp", "TEXT NOT NULL"),
    ("role", "TEXT NOT NULL"),
    ("element", "INTEGER NOT NULL"),
    ("n_elements", "INTEGER NOT NULL"),
    ("bit", "INTEGER NOT NULL"),
    ("nflips", "INTEGER NOT NULL"),
    ("old_value", "REAL"),
    ("new_value", "REAL"),
    ("start_op", "TEXT NOT NULL"),
    ("early_masked", "INTEGER NOT NULL"),
    ("n_inputs", "INTEGER NOT NULL"),
    ("max_abs_dev", "REAL"),
    ("n_nonfinite", "INTEGER NOT NULL"),
    ("n_top1_changed", "INTEGER NOT NULL"),
    ("max_ctr_dev", "REAL"),
    ("n_click_flipped", "INTEGER NOT NULL"),
    ("n_sdc", "INTEGER NOT NULL"),
    ("n_due", "INTEGER NOT NULL"),
    ("outcome", "INTEGER NOT NULL"),
    ("records", "BLOB NOT NULL"),
)
COLUMN_NAMES = tuple(name for name, _ in TRIAL_COLUMNS)
CELL_COLUMNS = ("cell INTEGER PRIMARY KEY, dtype TEXT NOT NULL, bit INTEGER, label TEXT NOT NULL, "
                "keys TEXT NOT NULL, params TEXT NOT NULL, bits_total INTEGER NOT NULL, population REAL, "
                "planned INTEGER NOT NULL")

__all__ = ["TrialStore", "StoreError", "FILE_NAME", "TRIAL_COLUMNS", "COLUMN_NAMES"]


class TrialStore(SqliteStore):
    """An open campaign store (see :class:`faults.common.store.SqliteStore` for the arguments)."""

    FILE_NAME = FILE_NAME
    KIND = "PVF campaign"
    FORMAT = "2"
    TABLES = {"cells": CELL_COLUMNS, "trials": ", ".join(f"{n} {d}" for n, d in TRIAL_COLUMNS)}

    # ------------------------------------------------------------------ cells
    def write_cells(self, cells: Sequence[Mapping[str, Any]]) -> None:
        """Record the strata (idempotent: identical rows are left alone)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO cells (cell, dtype, bit, label, keys, params, bits_total, population, planned) "
                "VALUES (:cell, :dtype, :bit, :label, :keys, :params, :bits_total, :population, :planned)",
                cells,
            )

    def cells(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM cells ORDER BY cell")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    # ------------------------------------------------------------------ trials
    def done(self) -> np.ndarray:
        """Sorted indices of the stored trials."""
        rows = self.db.execute("SELECT trial FROM trials ORDER BY trial").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def stored_between(self, first: int, last: int) -> set[int]:
        """Indices of the stored trials in ``first..last`` (a chunk's span: the resume check
        reads one chunk at a time, never every stored index)."""
        rows = self.db.execute("SELECT trial FROM trials WHERE trial BETWEEN ? AND ?", (int(first), int(last)))
        return {r[0] for r in rows}

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert one finished chunk in a single transaction; already stored trials are skipped."""
        placeholders = ", ".join(f":{n}" for n in COLUMN_NAMES)
        rows = list(rows)
        with self.db:
            cur = self.db.executemany(
                f"INSERT OR IGNORE INTO trials ({', '.join(COLUMN_NAMES)}) VALUES ({placeholders})", rows
            )
        return cur.rowcount

    def trials(self, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Stored trials in trial order (all columns, or ``columns``)."""
        if columns is not None:
            unknown = [c for c in columns if c not in COLUMN_NAMES]
            if unknown:
                raise KeyError(f"unknown trial column(s) {unknown}")
        cols = ", ".join(columns) if columns else "*"
        cur = self.db.execute(f"SELECT {cols} FROM trials ORDER BY trial")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    def cell_counts(self) -> dict[int, tuple[int, int, int]]:
        """cell -> (trials, SDC trials, DUE trials) under the campaign criterion."""
        out: dict[int, tuple[int, int, int]] = {}
        for cell, n, sdc, due in self.db.execute(
            "SELECT cell, COUNT(*), SUM(outcome = 1), SUM(outcome = 2) FROM trials GROUP BY cell"
        ):
            out[int(cell)] = (int(n), int(sdc or 0), int(due or 0))
        return out

    def prefix_counts(self, cell: int, reps: int) -> tuple[int, int]:
        """(trials, SDC trials) of ``cell`` among its first ``reps`` repetitions."""
        row = self.db.execute(
            "SELECT COUNT(*), SUM(outcome = 1) FROM trials WHERE cell=? AND rep<?", (cell, reps)
        ).fetchone()
        return int(row[0]), int(row[1] or 0)
