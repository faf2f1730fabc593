"""Append-only SQLite store of protection trials (``DIR/protect.sqlite``).

On the shared base (:class:`faults.common.store.SqliteStore`: identity — study configuration,
protection schemes, upset model, hardware, placement, model and input fingerprints —, integrity
check before any write, read-only opening), with one table ``trials``: one row per finished
upset, primary key (structure, trial): the area and cycle struck, the cluster size, the decode
outcome of every codeword hit, the class (:mod:`faults.protect.evaluate`), the elements run and
the run's per-sample counts.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from faults.common.store import SqliteStore, StoreError

FILE_NAME = "protect.sqlite"
COLUMNS = (
    ("structure", "TEXT NOT NULL"), ("trial", "INTEGER NOT NULL"), ("area", "TEXT NOT NULL"),
    ("cycle", "INTEGER NOT NULL"), ("cluster", "INTEGER NOT NULL"), ("codewords", "INTEGER NOT NULL"),
    ("outcome_codes", "TEXT NOT NULL"), ("cls", "TEXT NOT NULL"), ("elements", "INTEGER NOT NULL"),
    ("n_inputs", "INTEGER NOT NULL"), ("n_sdc", "INTEGER NOT NULL"), ("n_due", "INTEGER NOT NULL"),
    ("max_abs_dev", "REAL"), ("event_sdc", "INTEGER NOT NULL"), ("event_nonfinite_due", "INTEGER NOT NULL"),
    ("true_due", "INTEGER NOT NULL"), ("false_due", "INTEGER NOT NULL"),
)
NAMES = tuple(n for n, _ in COLUMNS)

__all__ = ["ProtectStore", "StoreError", "FILE_NAME", "COLUMNS", "NAMES"]


class ProtectStore(SqliteStore):
    """An open protection-study store (see :class:`faults.common.store.SqliteStore`)."""

    FILE_NAME = FILE_NAME
    KIND = "protection study"
    FORMAT = "1"
    TABLES = {"trials": ", ".join(f"{n} {t}" for n, t in COLUMNS) + ", PRIMARY KEY (structure, trial)"}

    def done(self, structure: str) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT trial FROM trials WHERE structure=?", (structure,))}

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """One finished chunk, one transaction (stored trials are skipped)."""
        marks = ", ".join("?" for _ in NAMES)
        with self.db:
            self.db.executemany(f"INSERT OR IGNORE INTO trials ({', '.join(NAMES)}) VALUES ({marks})",
                                [tuple(r[n] for n in NAMES) for r in rows])

    def rows(self, structure: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE structure=?", (structure,)) if structure else ("", ())
        cur = self.db.execute(f"SELECT {', '.join(NAMES)} FROM trials {where} ORDER BY structure, trial", args)
        return [dict(zip(NAMES, r)) for r in cur]
