"""Append-only SQLite store of AVF site trials (``DIR/avf.sqlite``).

On the shared base (:class:`faults.common.store.SqliteStore`: identity check — study
configuration, hardware, model and input fingerprints —, integrity check before any write,
read-only opening), with one table:

* ``sites``  one row per finished site trial, primary key (structure, trial): the site, what it
  resolved to (with the share of the element's reads it reaches), whether it was masked
  without running the network, the outcome on the inference it hits and — for a window of
  several inferences between scrubs — on the later ones, and the per-sample / per-event counts
  of the window. Each chunk is written in one transaction; a re-run skips stored trials.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from faults.common.store import SqliteStore, StoreError

FILE_NAME = "avf.sqlite"
COLUMNS = (
    ("structure", "TEXT NOT NULL"), ("trial", "INTEGER NOT NULL"), ("address", "INTEGER NOT NULL"),
    ("bit", "INTEGER NOT NULL"), ("cycle", "INTEGER NOT NULL"), ("status", "TEXT NOT NULL"),
    ("param", "TEXT"), ("layer", "TEXT"), ("element", "INTEGER"), ("element_bit", "INTEGER"),
    ("full", "INTEGER NOT NULL"), ("n_reads", "INTEGER NOT NULL"), ("unrun", "INTEGER NOT NULL"),
    ("n_inputs", "INTEGER NOT NULL"), ("n_sdc", "INTEGER NOT NULL"), ("n_due", "INTEGER NOT NULL"),
    ("outcome", "INTEGER NOT NULL"), ("max_abs_dev", "REAL"), ("approx", "INTEGER NOT NULL"),
    ("share", "REAL NOT NULL"), ("inference", "INTEGER NOT NULL"), ("n_sdc_later", "INTEGER NOT NULL"),
    ("n_due_later", "INTEGER NOT NULL"), ("window", "INTEGER NOT NULL"), ("window_sdc", "INTEGER NOT NULL"),
    ("window_due", "INTEGER NOT NULL"), ("window_inputs", "INTEGER NOT NULL"), ("event_sdc", "INTEGER NOT NULL"),
    ("event_due", "INTEGER NOT NULL"),
)
NAMES = tuple(n for n, _ in COLUMNS)

__all__ = ["AvfStore", "StoreError", "FILE_NAME", "COLUMNS", "NAMES"]


class AvfStore(SqliteStore):
    """An open AVF study store (see :class:`faults.common.store.SqliteStore` for the arguments)."""

    FILE_NAME = FILE_NAME
    KIND = "AVF study"
    FORMAT = "3"
    TABLES = {"sites": ", ".join(f"{n} {t}" for n, t in COLUMNS) + ", PRIMARY KEY (structure, trial)"}

    def done(self, structure: str) -> set[int]:
        """Trial indices of ``structure`` already stored."""
        return {r[0] for r in self.db.execute("SELECT trial FROM sites WHERE structure=?", (structure,))}

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert one finished chunk in a single transaction (stored trials are skipped)."""
        marks = ", ".join("?" for _ in NAMES)
        with self.db:
            self.db.executemany(f"INSERT OR IGNORE INTO sites ({', '.join(NAMES)}) VALUES ({marks})",
                                [tuple(r[n] for n in NAMES) for r in rows])

    def rows(self, structure: str | None = None) -> list[dict[str, Any]]:
        """Stored site trials (of one structure or all), ordered by structure and trial."""
        where, args = ("WHERE structure=?", (structure,)) if structure else ("", ())
        cur = self.db.execute(f"SELECT {', '.join(NAMES)} FROM sites {where} ORDER BY structure, trial", args)
        return [dict(zip(NAMES, r)) for r in cur]
