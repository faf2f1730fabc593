"""Running the ``accelsim`` command in-process (``cli.main.main``, what the console script and
``python -m cli`` run) and checking its outcome: a one-line user error or a clean result."""
from __future__ import annotations

import hashlib
from pathlib import Path

from cli import main as cli

BUNDLED = Path(__file__).resolve().parents[2] / "accelsim" / "bundled"


def run(capsys, argv: list[str]) -> tuple[int, str, list[str]]:
    """(exit status, stdout, stderr lines) of ``accelsim *argv``; a traceback propagates."""
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def assert_one_line_error(capsys, argv: list[str], phrase: str) -> str:
    """``accelsim *argv`` exits 2 with exactly one stderr line ``accelsim <command>: error: ...``
    containing ``phrase``; that line."""
    status, _out, err = run(capsys, argv)
    command = next((a for a in map(str, argv) if not a.startswith("-")), "")
    assert status == 2, (status, err)
    assert len(err) == 1, err
    assert err[0].startswith(f"accelsim {command}: error: "), err[0]
    assert phrase in err[0], (phrase, err[0])
    return err[0]


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
