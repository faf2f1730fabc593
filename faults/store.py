"""Append-only SQLite store of campaign trials (one file per campaign directory).

* ``meta``   key/value: the campaign configuration (canonical JSON) and its hash, the model
  fingerprint, format version. Opening a store with a different configuration is an error,
  so results of different campaigns never mix.
* ``cells``  the strata: index, dtype, bit, keys (JSON), candidate parameters.
* ``trials`` one row per finished trial, primary key = trial index (a trial can never be
  stored twice); raw deviations as columns plus the per-input record blob.

The database runs in WAL mode; each finished chunk is written in one transaction, so a
killed campaign leaves only whole chunks behind and a re-run resumes after them.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

FORMAT_VERSION = "1"
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


class StoreError(ValueError):
    """The store belongs to another campaign, or is unreadable (one line)."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


class TrialStore:
    """An open campaign store. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, config: Mapping[str, Any] | None = None, *, readonly: bool = False):
        path = Path(path)
        if path.is_dir() or path.suffix != ".sqlite":
            path = path / FILE_NAME
        self.path = path
        if readonly:
            if not path.exists():
                raise StoreError(f"no campaign store at {path}")
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._create()
        if config is not None:
            self._check_config(config)

    # ------------------------------------------------------------------ schema
    def _create(self) -> None:
        cols = ", ".join(f"{name} {decl}" for name, decl in TRIAL_COLUMNS)
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS cells (cell INTEGER PRIMARY KEY, dtype TEXT NOT NULL, "
                "bit INTEGER, label TEXT NOT NULL, keys TEXT NOT NULL, params TEXT NOT NULL, "
                "bits_total INTEGER NOT NULL, population REAL, planned INTEGER NOT NULL)"
            )
            self.db.execute(f"CREATE TABLE IF NOT EXISTS trials ({cols})")

    def _check_config(self, config: Mapping[str, Any]) -> None:
        digest = config_hash(config)
        row = self.db.execute("SELECT value FROM meta WHERE key='config_hash'").fetchone()
        if row is None:
            with self.db:
                self.db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("config_hash", digest), ("config", canonical_json(config)), ("format", FORMAT_VERSION)],
                )
            return
        if row[0] != digest:
            old = json.loads(self.meta("config") or "{}")
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != json.loads(canonical_json(config)).get(k))
            raise StoreError(
                f"{self.path} holds a different campaign (differs in: {', '.join(changed) or 'config'}); "
                "use another --out directory"
            )

    # ------------------------------------------------------------------ meta & cells
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def config(self) -> dict[str, Any]:
        return json.loads(self.meta("config") or "{}")

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

    def trials(self, columns: Sequence[str] | None = None, where: str = "") -> list[dict[str, Any]]:
        cols = ", ".join(columns) if columns else "*"
        cur = self.db.execute(f"SELECT {cols} FROM trials {where} ORDER BY trial")
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

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "TrialStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
