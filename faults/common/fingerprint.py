"""Fingerprints that tie stored results to the model and inputs they were measured on.

A store records them and refuses to resume or join results of another model or input set.
Each is the first 16 hex digits of a SHA-256 over the exact bytes (names, dtypes, shapes,
values), so any retraining, re-export or other input draw changes it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import numpy as np

from accelsim.ir import Program


def fingerprint_program(program: Program) -> str:
    """Parameters (names and values) and instructions (op, inputs, outputs, attributes)."""
    h = hashlib.sha256()
    for name, value in program.parameter_values.items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    for inst in program.instructions:
        h.update(repr((inst.op, inst.inputs, inst.outputs, sorted(inst.attrs.items()))).encode())
    return h.hexdigest()[:16]


def fingerprint_inputs(inputs: Mapping[str, np.ndarray]) -> str:
    """Graph inputs by name: dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(inputs):
        arr = np.ascontiguousarray(inputs[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
