"""How every tensor of a program depends on the evaluation batch (private to :mod:`faults.inject`).

A *probe run* executes the program on ``b' = 3`` rows of the batch (repeated rows if the
batch is smaller; ragged embedding-bag inputs are kept whole and the bag outputs sliced) and
its tensors are compared with the golden run's, tensor by tensor:

* ``batch`` (factor ``k``): golden shape ``[B·k, *rest]``, probe ``[b'·k, *rest]`` — the
  rows of sample ``r`` are ``r·k .. r·k + k - 1`` (``k > 1``: e.g. BERT's flattened
  ``[B·S, H]``); its probe value must equal the golden rows bit for bit (*row exact*);
* ``meta``: an integer tensor whose value depends on the batch size (shape arithmetic such as
  ``Shape -> Gather -> Concat -> Reshape``, or ``range(B)``): recomputed for any stacked size;
* ``static``: the same shape and value in both runs (parameters, constants, position tables).

A float tensor that fits none of these, or a batch tensor whose probe rows differ from the
golden ones (an op whose per-row result depends on the other rows), is recorded in
``inexact``; a program with such tensors is not *row separable* and the injection engine runs
its faults on the whole batch.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from accelsim.ir import Program
from accelsim.kernels import KERNELS

PROBE_ROWS = 3


def probe_rows(batch: int) -> np.ndarray:
    """The probe's batch rows: 3 distinct rows (or repeats when the batch is smaller)."""
    if batch == PROBE_ROWS:
        return np.array([batch - 1, 0])
    return (np.array([batch - 1, 0, batch // 2]) % max(batch, 1)).astype(np.int64)


def ragged_inputs(program: Program) -> set[str]:
    """Graph inputs that flow into an embedding bag's indices/offsets/weights (never sliced)."""
    producers = {o: inst for inst in program.instructions for o in inst.outputs}
    found: set[str] = set()
    stack = [n for inst in program.instructions if inst.op == "embedding_bag" for n in inst.inputs[1:] if n]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in program.input_names:
            found.add(name)
        elif name in producers:
            stack.extend(n for n in producers[name].inputs if n)
    return found


def batch_of(program: Program, inputs: Mapping[str, np.ndarray]) -> int | None:
    """The evaluation batch: leading size of the first batch-major (non-ragged) graph input."""
    ragged = ragged_inputs(program)
    for spec in program.inputs:
        value = inputs.get(spec.name)
        if spec.name not in ragged and value is not None and np.ndim(value) >= 1:
            return int(np.shape(value)[0])
    return None


def probe_run(program: Program, env: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray] | None:
    """Every tensor of the program run on :func:`probe_rows` (None if the run fails).

    ``env``: constants, decoded parameters and graph inputs of the golden run.
    """
    rows = probe_rows(batch)
    ragged = ragged_inputs(program)
    probe: dict[str, np.ndarray] = dict(env)
    for name in program.input_names:
        value = env[name]
        if name not in ragged and np.ndim(value) >= 1 and np.shape(value)[0] == batch:
            probe[name] = np.asarray(value)[rows]
    try:
        with np.errstate(all="ignore"):
            for inst in program.instructions:
                args = [probe[n] if n else None for n in inst.inputs]
                outs = KERNELS[inst.op](inst, args)
                if inst.op == "embedding_bag":  # whole ragged inputs: keep the probe's bags
                    outs = tuple(o[rows] if np.ndim(o) and np.shape(o)[0] == batch else o for o in outs)
                for name, value in zip(inst.outputs, outs):
                    probe[name] = value
    except Exception:  # noqa: BLE001 - a program that cannot run on another batch size
        return None
    return probe


class Structure:
    """Per-tensor batch structure of a program (module docstring).

    Attributes:
        factor: batch tensor -> rows per sample ``k``.
        meta: integer tensors recomputed for every stacked size.
        static: tensors independent of the batch.
        inexact: tensors whose probe value broke the rules (empty for a row-separable program).
        probe_bytes: tensor -> bytes in the probe run (sizes for the cache budget).
    """

    def __init__(self) -> None:
        self.factor: dict[str, int] = {}
        self.meta: set[str] = set()
        self.static: set[str] = set()
        self.inexact: set[str] = set()
        self.probe_bytes: dict[str, int] = {}

    def classify(self, name: str, golden: np.ndarray, probe: np.ndarray | None, batch: int,
                 rows: np.ndarray) -> None:
        """Record ``name``'s kind from its golden and probe values."""
        golden = np.asarray(golden)
        if probe is None:
            self.inexact.add(name)
            return
        probe = np.asarray(probe)
        self.probe_bytes[name] = int(probe.nbytes)
        gs, ps = golden.shape, probe.shape
        if gs == ps and _same(golden, probe):
            self.static.add(name)
            return
        b_probe = rows.size
        k = gs[0] // batch if golden.ndim and batch and gs[0] % batch == 0 else 0
        if k and ps[1:] == gs[1:] and ps[0] == b_probe * k:
            index = (rows[:, None] * k + np.arange(k)).reshape(-1)
            if _same(golden[index], probe):
                self.factor[name] = k
                return
        if golden.dtype.kind in "iub":
            self.meta.add(name)
            return
        self.inexact.add(name)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}")))
    return bool(np.array_equal(a, b))
