"""Damaged result stores: refused with one line, and never written to.

Each damaged ``trials.sqlite`` (truncated, garbled header, page-corrupted, empty, table-less,
another kind of store, garbage in its meta table) is refused by every command that opens it —
resuming ``pvf``, ``report``, ``avf --pvf DIR`` — and each damaged ``avf.sqlite`` by resuming
``avf`` and ``report``; the file (and a ``-wal`` log beside it) is byte-for-byte unchanged. The
write-ahead log a killed process leaves behind is read, not lost: the resumed campaign ends in
the same table as an uninterrupted one.
"""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faults.common import outcome as oc
from hostile.helpers import BUNDLED, assert_one_line_error, digest, run
from report_checks import markdown_table

LENET = str(BUNDLED / "lenet5" / "model.onnx")
PVF_ARGS = ["--trials", "24", "--chunk", "8", "--seed", "5", "--workers", "1", "--no-progress", "--no-report"]
AVF_ARGS = ["--trials", "6", "--batch", "4", "--no-joined", "--no-progress", "--structure", "weight_sram,pe"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    import contextlib
    import io

    from cli import main as cli

    root = tmp_path_factory.mktemp("hostile_stores")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["pvf", LENET, "--out", str(root / "pvf")] + PVF_ARGS) == 0
        assert cli.main(["avf", LENET, "--out", str(root / "avf")] + AVF_ARGS) == 0
    return {"root": root, "pvf": root / "pvf" / "trials.sqlite", "avf": root / "avf" / "avf.sqlite"}


def _table(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _damaged(kind: str, source: Path, stores: dict[str, Path]) -> bytes:
    data = source.read_bytes()
    rng = np.random.default_rng(20240611)
    pages = len(data) // 4096
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "truncated-header":
        return data[:50]
    if kind == "garbled-header":
        return b"SQLite format 4\x00" + data[16:]
    if kind == "empty":
        return b""
    if kind.startswith("page-"):
        page = {"page-2": 1, "page-last": pages - 1}[kind]
        garbage = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        return data[: page * 4096] + garbage + data[(page + 1) * 4096:]
    if kind == "tableless":
        scratch = stores["root"] / f"scratch-{source.name}"
        scratch.unlink(missing_ok=True)
        db = sqlite3.connect(scratch)
        db.execute("CREATE TABLE notes (text TEXT)")
        db.commit()
        db.close()
        return scratch.read_bytes()
    if kind == "other-kind":  # the AVF store where a PVF store is expected, and back
        return (stores["avf"] if source == stores["pvf"] else stores["pvf"]).read_bytes()
    if kind == "garbage-meta":
        scratch = stores["root"] / f"meta-{source.name}"
        scratch.write_bytes(data)
        db = sqlite3.connect(scratch)
        db.execute("UPDATE meta SET value='{not json' WHERE key='identity'")
        db.commit()
        db.execute("PRAGMA journal_mode=DELETE")
        db.close()
        return scratch.read_bytes()
    raise AssertionError(kind)


DAMAGE = {"truncated": "damaged", "truncated-header": "(not an SQLite file, or truncated)",
          "garbled-header": "(not an SQLite file, or truncated)", "empty": "(not an SQLite file, or truncated)",
          "page-2": "damaged", "page-last": "damaged", "tableless": "(missing table 'meta')",
          "other-kind": "holds a", "garbage-meta": "meta 'identity' is not a JSON object"}
PVF_COMMANDS = {
    "pvf-resume": lambda d, o: ["pvf", LENET, "--out", d] + PVF_ARGS,
    "report": lambda d, o: ["report", d, "--no-plots"],
    "avf-joined": lambda d, o: ["avf", LENET, "--pvf", d, "--pvf-by", "param", "--out", o, "--trials", "4",
                                "--batch", "4", "--no-progress"],
}
AVF_COMMANDS = {
    "avf-resume": lambda d, o: ["avf", LENET, "--out", d] + AVF_ARGS,
    "report": lambda d, o: ["report", d, "--no-plots"],
}
CASES = [("pvf", damage, command) for damage in DAMAGE for command in PVF_COMMANDS] + \
        [("avf", damage, command) for damage in DAMAGE for command in AVF_COMMANDS]


@pytest.mark.parametrize("store, damage, command", CASES, ids=[f"{s}:{d}:{c}" for s, d, c in CASES])
def test_damaged_store_is_refused_and_untouched(stores, tmp_path, capsys, store, damage, command):
    folder = tmp_path / "study"
    if store == "avf":  # the study's other files stay: only the store is damaged
        shutil.copytree(stores["avf"].parent, folder)
    else:
        folder.mkdir()
    target = folder / stores[store].name
    target.write_bytes(_damaged(damage, stores[store], stores))
    before = digest(target)
    argv = (PVF_COMMANDS if store == "pvf" else AVF_COMMANDS)[command](folder, tmp_path / "joined")
    line = assert_one_line_error(capsys, argv, DAMAGE[damage])
    assert str(target) in line
    assert digest(target) == before
    assert not (tmp_path / "joined" / "avf.sqlite").exists()


def _kill_after_deleting(store: Path, reps_from: int) -> None:
    """A process that deletes the trials of repetitions >= ``reps_from`` (one transaction) and is
    killed before it checkpoints: the deletion lives only in ``trials.sqlite-wal``."""
    code = ("import os, sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA journal_mode=WAL')\n"
            "db.execute('PRAGMA wal_autocheckpoint=0')\n"
            "db.execute('DELETE FROM trials WHERE rep >= ?', (int(sys.argv[2]),)); db.commit()\n"
            "os._exit(9)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(store), str(reps_from)], timeout=60)
    assert proc.returncode == 9


def test_wal_of_a_killed_process_is_resumed_to_the_same_table(stores, tmp_path, capsys):
    folder = tmp_path / "killed"
    shutil.copytree(stores["pvf"].parent, folder)
    store = folder / "trials.sqlite"
    full = _table(stores["pvf"], "SELECT * FROM trials ORDER BY trial")
    _kill_after_deleting(store, 12)
    wal = store.with_name("trials.sqlite-wal")
    assert wal.stat().st_size > 0
    assert len(_table(store, "SELECT trial FROM trials")) == 12  # the log is read: 12 of 24 left
    status, text, err = run(capsys, ["pvf", LENET, "--out", folder] + PVF_ARGS)
    assert status == 0, err
    assert "24 faults in 1 strata (12 new" in text
    assert _table(store, "SELECT * FROM trials ORDER BY trial") == full


def test_damaged_store_with_a_wal_is_untouched(stores, tmp_path, capsys):
    folder = tmp_path / "killed_damaged"
    shutil.copytree(stores["pvf"].parent, folder)
    store = folder / "trials.sqlite"
    _kill_after_deleting(store, 12)
    data = bytearray(store.read_bytes())
    data[4096:8192] = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    store.write_bytes(bytes(data))
    wal = store.with_name("trials.sqlite-wal")
    before = (digest(store), digest(wal))
    for argv in (["pvf", LENET, "--out", folder] + PVF_ARGS, ["report", folder, "--no-plots"]):
        assert_one_line_error(capsys, argv, "damaged PVF campaign store")
        assert (digest(store), digest(wal)) == before


@pytest.mark.parametrize("name", ["a?mode=rw", "b#frag", "c%20d"])
def test_folder_names_that_look_like_uri_syntax(stores, tmp_path, capsys, name):
    """The read-only check opens the store through an SQLite URI: the name is quoted, so a
    folder called ``a?mode=rw`` is that folder (and its store is read, not another file)."""
    folder = tmp_path / name
    shutil.copytree(stores["pvf"].parent, folder)
    status, text, err = run(capsys, ["pvf", LENET, "--out", folder] + PVF_ARGS)
    assert status == 0, err
    assert "24 faults in 1 strata (0 new" in text
    status, text, _ = run(capsys, ["report", folder, "--no-plots"])
    assert status == 0 and text.startswith((folder / "report" / "report.md").read_text())
    ((n, k),) = _table(stores["pvf"], f"SELECT COUNT(*), SUM(outcome = {oc.SDC}) FROM trials")  # the same store
    assert n == 24 and f"- pooled count (unweighted): {n} faults, SDC {k} (" in text


def test_intact_stores_resume_and_report(stores, tmp_path, capsys):
    folder = tmp_path / "intact"
    shutil.copytree(stores["root"], folder)
    status, text, _ = run(capsys, ["pvf", LENET, "--out", folder / "pvf"] + PVF_ARGS)
    assert status == 0 and "(0 new" in text
    status, text, _ = run(capsys, ["avf", LENET, "--out", folder / "avf"] + AVF_ARGS)
    assert status == 0
    sites = "SELECT * FROM sites ORDER BY structure, trial"
    assert _table(folder / "avf" / "avf.sqlite", sites) == _table(stores["avf"], sites)  # resumed: nothing new
    assert _table(folder / "avf" / "avf.sqlite", "SELECT structure, COUNT(*) FROM sites GROUP BY structure") == \
        [("pe", 6), ("weight_sram", 6)]
    printed = {r["structure"]: r for r in markdown_table(text, "structure")}
    assert {s: int(r["sites"]) for s, r in printed.items()} == {"weight_sram": 6, "pe": 6}
    assert _table(folder / "pvf" / "trials.sqlite", "SELECT COUNT(*) FROM trials") == [(24,)]
