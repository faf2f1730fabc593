"""Shared pieces of the command modules: loading a model, reading inputs, atomic writes."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from accelsim.ir import Program


class CommandError(ValueError):
    """A user error in a command's arguments; printed as one line."""


def load_program(model_path: str) -> Program:
    """Lower the ONNX file at ``model_path`` (one-line FrontendError on failure)."""
    from frontend import load_onnx

    return load_onnx(model_path)


def read_inputs(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file keyed by graph input name."""
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"{path}: no such inputs file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as exc:
        raise CommandError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None


def default_inputs_for(model_path: str) -> Path | None:
    """``eval_inputs.npz`` beside a zoo/bundled model, if there is one."""
    candidate = Path(model_path).resolve().parent / "eval_inputs.npz"
    return candidate if candidate.is_file() else None


def write_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` via a temporary file and rename: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
