"""The SQLite store base shared by PVF campaigns and AVF studies.

A store is one SQLite file in a results folder. Its ``meta`` table holds:

* ``kind`` and ``format`` — which subclass wrote it, and its layout version;
* ``identity`` (canonical JSON) and ``identity_hash`` — everything that defines what a stored
  trial *is*: the study configuration that fixes each trial's draws, plus the fingerprints of
  the model and inputs (:mod:`faults.common.fingerprint`). Opening a store with another identity
  is a one-line :class:`StoreError` naming the keys that differ, so results of different
  studies, models or inputs never mix;
* ``settings`` — values that may change between runs without invalidating stored trials (the
  sample size: a campaign may grow).

An existing file is checked *before* anything is written to it: SQLite header, ``PRAGMA
quick_check`` through a read-only connection (which also reads the ``-wal`` log a killed process
left behind), the kind of store, its tables, its format and the JSON of its meta table. A
damaged or foreign file is refused with one line and left byte-for-byte untouched (and so is
its ``-wal`` log). Paths are quoted in the SQLite URI, so any folder name works.

Subclasses set ``FILE_NAME``, ``KIND``, ``FORMAT`` and ``TABLES`` (name -> column
declarations) and add their own reads and writes. Every write is one transaction.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar, Mapping

from accelsim.errors import UserError

SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreError(UserError, ValueError):
    """The store belongs to another study, model or inputs, or is unreadable (one line)."""


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace (the text that is hashed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def identity_hash(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


def _article(kind: str) -> str:
    return "an" if kind[:1].upper() in "AEIOU" else "a"


def _uri(path: Path, *params: str) -> str:
    """An SQLite URI for ``path`` (quoted: a folder named ``a?b`` or ``50%`` stays itself)."""
    return f"file:{urllib.parse.quote(str(path.absolute()))}?{'&'.join(params)}"


def _read_only_uri(path: Path) -> str:
    """Read-only access: SQLite never writes the store through it (it reads the ``-wal`` log a
    killed process left, and may create the ``-shm`` index and an empty ``-wal`` beside it)."""
    return _uri(path, "mode=ro")


def _first_problem(rows: list[str]) -> str:
    """The first line of ``PRAGMA quick_check`` output that says something (one line)."""
    for row in rows:
        for line in str(row).splitlines():
            line = line.strip()
            if line and not line.startswith("***"):
                return line
    return "failed"


def check_sqlite_file(path: Path, kind: str, tables: tuple[str, ...], fmt: str) -> None:
    """One-line :class:`StoreError` unless ``path`` is an intact store of ``kind`` (read-only:
    the file and an existing ``-wal`` log beside it are left unchanged)."""
    a_kind = f"{_article(kind)} {kind}"
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the {kind} store ({exc.strerror})") from None
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise StoreError(f"{path}: not {a_kind} store (not an SQLite file, or truncated); "
                         "move it away or use another output folder")
    try:
        db = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in present else {}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: damaged {kind} store ({exc}); it was not modified") from None
    if problems != ["ok"]:
        raise StoreError(f"{path}: damaged {kind} store (integrity check: {_first_problem(problems)}); "
                         "it was not modified")
    if meta.get("kind", kind) != kind:
        raise StoreError(f"{path}: holds {_article(str(meta['kind']))} {meta['kind']}, not {a_kind}")
    missing = [t for t in ("meta",) + tables if t not in present]
    if missing:
        raise StoreError(f"{path}: not {a_kind} store (missing table {missing[0]!r}); it was not modified")
    if meta.get("format") != fmt:
        raise StoreError(f"{path}: {kind} store format {meta.get('format')!r}, this version reads {fmt!r}; "
                         "re-run into another folder")
    for key in ("identity", "settings"):
        if key in meta and not _is_json_object(meta[key]):
            raise StoreError(f"{path}: damaged {kind} store (meta {key!r} is not a JSON object); "
                             "it was not modified")


def _is_json_object(text: object) -> bool:
    try:
        return isinstance(json.loads(str(text)), dict)
    except ValueError:  # json.JSONDecodeError
        return False


class SqliteStore:
    """An open store. Use as a context manager or call :meth:`close`.

    Args:
        path: the store file or the folder holding ``FILE_NAME``.
        identity: what defines the stored trials (checked against the file, written if new);
            None to open without checking (reading an existing store).
        settings: values that may change between runs (written as given).
        readonly: open an existing store for reading only.
    """

    FILE_NAME: ClassVar[str] = "store.sqlite"
    KIND: ClassVar[str] = "store"
    FORMAT: ClassVar[str] = "1"
    TABLES: ClassVar[dict[str, str]] = {}

    def __init__(self, path: str | Path, identity: Mapping[str, Any] | None = None, *,
                 settings: Mapping[str, Any] | None = None, readonly: bool = False) -> None:
        path = Path(path)
        if path.suffix != ".sqlite":
            path = path / self.FILE_NAME
        self.path = path
        exists = path.exists()
        if exists:
            if not path.is_file():
                raise StoreError(f"{path}: is not a file")
            check_sqlite_file(path, self.KIND, tuple(self.TABLES), self.FORMAT)
        elif readonly:
            raise StoreError(f"no {self.KIND} store at {path}")
        if readonly:
            self.db = sqlite3.connect(_read_only_uri(path), uri=True)
        else:
            if path.parent.exists() and not path.parent.is_dir():
                raise StoreError(f"{path.parent}: is a file, not a folder")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(str(path), timeout=60)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._create(new=not exists)
            except (OSError, sqlite3.OperationalError) as exc:  # read-only file or folder, locked, ...
                verb = "open" if exists else "create"
                raise StoreError(f"{path}: cannot {verb} the {self.KIND} store for writing ({exc})") from None
        if identity is not None:
            self._check_identity(identity)
        if settings is not None and not readonly:
            self.set_meta("settings", canonical_json(settings))

    # ------------------------------------------------------------------ schema
    def _create(self, new: bool) -> None:
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for name, columns in self.TABLES.items():
                self.db.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
            if new:
                self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                    [("kind", self.KIND), ("format", self.FORMAT)])

    def _check_identity(self, identity: Mapping[str, Any]) -> None:
        digest = identity_hash(identity)
        stored = self.meta("identity_hash")
        if stored is None:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                    [("identity_hash", digest), ("identity", canonical_json(identity))])
            return
        if stored != digest:
            old = self.identity()
            new = json.loads(canonical_json(identity))
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise StoreError(f"{self.path} holds a different {self.KIND} (differs in: "
                             f"{', '.join(changed) or 'identity'}); use another output folder")

    # ------------------------------------------------------------------ meta
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def identity(self) -> dict[str, Any]:
        return json.loads(self.meta("identity") or "{}")

    def settings(self) -> dict[str, Any]:
        return json.loads(self.meta("settings") or "{}")

    def config(self) -> dict[str, Any]:
        """Identity and settings in one dict (what the study was run with last)."""
        return {**self.identity(), **self.settings()}

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
