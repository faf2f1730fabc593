"""Atomic file writes (a temporary file in the same folder, then ``os.replace``), CSV/JSON text,
and the checks of output paths a user gives.

A reader never sees a partial file, and a failed write leaves the previous file untouched.
:func:`check_output_dir` / :func:`check_output_file` refuse, with one line and before any work,
an output folder that is a file (or lies under one), an output file that is a folder, a device
or another non-regular file, and a place where nothing can be written (read-only, no
permission) — probed by creating and removing a temporary file in the nearest existing folder,
so the answer is the file system's own (also for root, for whom permission bits say little).
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from accelsim.errors import UserError


class OutputPathError(UserError, ValueError):
    """An output path that cannot be written as asked (one line naming the path)."""


def _check_folder(folder: Path, path: Path, option: str) -> None:
    """``folder`` (absolute) must be, or be creatable as, a folder where files can be written."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():
            raise OutputPathError(f"{option} {path}: {probe} is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file, not a folder" if probe == path.absolute() else f"{probe} is a file, not a folder"
        raise OutputPathError(f"{option} {path}: {where}")
    try:
        handle, tmp = tempfile.mkstemp(dir=probe, prefix=".accelsim-probe-")
    except OSError as exc:
        raise OutputPathError(f"{option} {path}: cannot write in {probe} ({exc.strerror})") from None
    os.close(handle)
    os.unlink(tmp)


def check_output_dir(path: str | os.PathLike[str], option: str = "output folder") -> Path:
    """One-line :class:`OutputPathError` unless ``path`` is (or can become) a writable folder.

    Nothing is created: a missing folder is checked through its nearest existing ancestor.
    ``option`` names the path in the message (``--out``, ``--to``, ...).
    """
    path = Path(path)
    _check_folder(path.absolute(), path, option)
    return path


def check_output_file(path: str | os.PathLike[str], option: str = "output file", *,
                      suffix: str | None = None) -> Path:
    """One-line :class:`OutputPathError` unless ``path`` can be written as a regular file.

    An existing regular file is replaced (atomically); a folder, a device, a FIFO or another
    non-regular file is refused, and so is a name without ``suffix`` when one is given.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a folder, not a file")
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{option} {path}: exists and is not a regular file")
    if suffix is not None and path.suffix.lower() != suffix:
        raise OutputPathError(f"{option} {path}: the file name must end in {suffix}")
    _check_folder(path.absolute().parent, path, option)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give results the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode())


def write_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` to ``path`` atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text of dict rows (header from the first row's keys; empty text for no rows)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays (anything else as text)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def json_text(obj: Any) -> str:
    """Indented JSON text (numpy values converted)."""
    return json.dumps(obj, indent=1, default=json_default)
