"""Test helper: start a study or campaign script in its own session and SIGKILL it (with its
workers) once its store holds some rows — the crash half of the kill-and-resume tests."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def run_and_kill(script: Path, out: Path, workers: int, db_name: str, table: str, rows: int = 64,
                 timeout_s: float = 120.0) -> None:
    """Run ``python script out workers``; SIGKILL its process group once ``out/db_name`` holds
    ``rows`` rows in ``table`` (or after ``timeout_s``); assert it died by the signal."""
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(workers)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db_path = out / db_name
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline and proc.poll() is None:
            if db_path.exists():
                try:
                    db = sqlite3.connect(str(db_path), timeout=1)
                    stored = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    db.close()
                except sqlite3.OperationalError:
                    stored = 0
                if stored >= rows:
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the process and its workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
