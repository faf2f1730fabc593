"""Append-only SQLite store of AVF site trials (``DIR/avf.sqlite``).

* ``meta``   key/value: the study configuration (canonical JSON); opening the store with a
  different configuration is a one-line error, so different studies never mix.
* ``sites``  one row per finished site trial, primary key (structure, trial): the site, what it
  resolved to, whether it was masked without running the network, the outcome and raw
  deviations. Each chunk is written in one transaction; a re-run skips stored trials.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping

FILE_NAME = "avf.sqlite"
COLUMNS = (
    ("structure", "TEXT NOT NULL"), ("trial", "INTEGER NOT NULL"), ("address", "INTEGER NOT NULL"),
    ("bit", "INTEGER NOT NULL"), ("cycle", "INTEGER NOT NULL"), ("status", "TEXT NOT NULL"),
    ("param", "TEXT"), ("layer", "TEXT"), ("element", "INTEGER"), ("element_bit", "INTEGER"),
    ("full", "INTEGER NOT NULL"), ("n_reads", "INTEGER NOT NULL"), ("unrun", "INTEGER NOT NULL"),
    ("n_inputs", "INTEGER NOT NULL"), ("n_sdc", "INTEGER NOT NULL"), ("n_due", "INTEGER NOT NULL"),
    ("outcome", "INTEGER NOT NULL"), ("max_abs_dev", "REAL"), ("approx", "INTEGER NOT NULL"),
)
NAMES = tuple(n for n, _ in COLUMNS)


class AvfStoreError(ValueError):
    """The store belongs to another study or is unreadable (one line)."""


class AvfStore:
    """Open (or create) ``out_dir/avf.sqlite`` for ``config`` (None: read-only use)."""

    def __init__(self, out_dir: str | Path, config: Mapping[str, Any] | None = None) -> None:
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / FILE_NAME
        if config is None and not self.path.is_file():
            raise AvfStoreError(f"{out_dir}: no AVF store ({FILE_NAME}) there")
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute(f"CREATE TABLE IF NOT EXISTS sites ({cols}, PRIMARY KEY (structure, trial))")
        self.db.commit()
        if config is not None:
            text = json.dumps(config, sort_keys=True, default=str)
            old = self.meta("config")
            if old is None:
                self.set_meta("config", text)
            elif old != text:
                raise AvfStoreError(f"{self.path} holds another AVF study (different configuration); "
                                    "use another --out folder")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def config(self) -> dict[str, Any]:
        return json.loads(self.meta("config") or "{}")

    def done(self, structure: str) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT trial FROM sites WHERE structure=?", (structure,))}

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        marks = ", ".join("?" for _ in NAMES)
        with self.db:
            self.db.executemany(f"INSERT OR IGNORE INTO sites VALUES ({marks})",
                                [tuple(r[n] for n in NAMES) for r in rows])

    def rows(self, structure: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE structure=?", (structure,)) if structure else ("", ())
        cur = self.db.execute(f"SELECT {', '.join(NAMES)} FROM sites {where} ORDER BY structure, trial", args)
        return [dict(zip(NAMES, r)) for r in cur]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "AvfStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
