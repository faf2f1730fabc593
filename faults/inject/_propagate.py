"""Propagation of faulty activations from the golden run (private to :mod:`faults.inject`).

From instruction ``begin`` on, an instruction is recomputed only if it reads a tensor that
differs from the golden one (the *dirty* set); a recomputed tensor equal to the golden one
leaves the dirty set; when the set is empty the fault is masked and propagation stops.

Two modes:

* full batch (``rows=None``): one fault, every tensor at its golden batch size;
* stacked (``rows`` = the concatenated batch rows of several faults, ``sizes`` their counts):
  the faults travel as one batch. Shape arithmetic sees the stacked size: integer shape tensors
  recomputed from stacked activations are carried along (``meta``, not counted as deviations),
  an instruction reading only such shape tensors and clean data yields the golden rows, and a
  golden reshape/expand target whose leading entry is the eval batch gets the stacked size. A
  member whose tensors all equal the golden ones leaves the stack.

Stacking at a start instruction is enabled only after :func:`is_stackable`'s deterministic
probe (a synthetic perturbation propagated stacked and one by one on the full batch) agrees.
"""
from __future__ import annotations

import numpy as np

from accelsim.executor import ExecutionError
from accelsim.kernels import KERNELS

from faults.inject._golden import GoldenRun


class Unstackable(Exception):
    """A stacked batch met an instruction that cannot carry it (caller falls back)."""


def propagate(gold: GoldenRun, begin: int, dirty: dict[str, np.ndarray], rows: np.ndarray | None,
              sizes: list[int], overrides: dict[str, np.ndarray], override_param: str | None,
              member_ids: list[int] | None = None):
    """Run instructions from ``begin`` on the dirty set (module docstring).

    ``overrides``: parameter values replaced for every reader (a parameter read by several
    instructions); ``override_param`` names it. Returns None if everything became golden
    (masked); otherwise ``(output,)`` in full-batch mode and ``(output, member_ids,
    member_sizes)`` in stacked mode (output rows of the surviving members, in order).
    """
    stacked = rows is not None
    member_ids = list(member_ids or [0])
    sizes = list(sizes)
    last_override = max(gold.readers[override_param]) if overrides and override_param else -1
    gathered: dict[str, np.ndarray] = {}
    diffs: dict[str, np.ndarray] = {}
    meta: dict[str, np.ndarray] = {}
    if stacked:
        for name, value in dirty.items():
            diffs[name] = member_diff(value, _gathered(gold, name, rows, gathered), sizes)
    for i in range(begin, len(gold.instructions)):
        if not dirty and i > last_override:
            return None
        inst = gold.instructions[i]
        if not any(n in dirty or n in overrides for n in inst.inputs if n):
            if not any(n in meta for n in inst.inputs if n):
                continue
            if all(o in gold.batch_tensors for o in inst.outputs):
                # only the stacked batch *size* differs (shape arithmetic): the data of a
                # batch-carrying result is the golden one on the stacked rows
                continue
        results = _concat_patch(gold, inst, dirty, rows, gathered) if inst.op == "concat" else None
        if results is None:
            args = []
            for name in inst.inputs:
                if not name:
                    args.append(None)
                elif name in dirty:
                    args.append(dirty[name])
                elif name in overrides:
                    args.append(overrides[name])
                elif name in meta:
                    args.append(meta[name])
                elif stacked and name in gold.batch_tensors:
                    args.append(_gathered(gold, name, rows, gathered))
                else:
                    args.append(gold.tensors[name])
            if stacked and inst.op in ("reshape", "expand") and inst.inputs[1] not in meta:
                args[1] = _stacked_shape(gold, args[1], rows.size)
            results = KERNELS[inst.op](inst, args)
        for name, value in zip(inst.outputs, results):
            ref = gold.tensors[name]
            if stacked:
                if name in gold.batch_tensors:
                    diff = member_diff(value, _gathered(gold, name, rows, gathered), sizes)
                    if diff.any():
                        dirty[name] = value
                        diffs[name] = diff
                elif not equal(value, ref):
                    if value.dtype.kind not in "iub":
                        raise Unstackable(name)
                    # shape arithmetic of the stacked batch (e.g. Shape -> Reshape): not a
                    # deviation of any member, but downstream readers must see it
                    meta[name] = value
            elif not equal(value, ref):
                dirty[name] = value
        # free dirty tensors nobody reads any more
        for name in [n for n in dirty if gold.last_use.get(n, -1) <= i and n != gold.output]:
            del dirty[name]
            diffs.pop(name, None)
        for name in [n for n in meta if gold.last_use.get(n, -1) <= i]:
            del meta[name]
        if stacked and dirty:
            # members whose every dirty tensor equals the golden one leave the stack
            member_alive = np.zeros(len(member_ids), dtype=bool)
            for name in dirty:
                member_alive |= diffs[name]
            if not member_alive.all():
                if not member_alive.any():
                    return None
                if meta:
                    continue  # shape tensors encode the stacked size: keep the stack whole
                keep_rows = np.repeat(member_alive, sizes)
                rows = rows[keep_rows]
                for name in list(dirty):
                    dirty[name] = dirty[name][keep_rows]
                    diffs[name] = diffs[name][member_alive]
                gathered = {}
                member_ids = [m for m, a in zip(member_ids, member_alive) if a]
                sizes = [s for s, a in zip(sizes, member_alive) if a]
    if gold.output not in dirty:
        return None
    if stacked:
        return dirty[gold.output], member_ids, sizes
    return (dirty[gold.output],)


def _stacked_shape(gold: GoldenRun, shape, stacked_rows: int):
    """A golden target shape whose leading entry is the golden batch, for the stacked rows."""
    shape = np.asarray(shape)
    if shape.ndim == 1 and shape.size and shape.dtype.kind in "iu" and int(shape[0]) == gold.batch:
        shape = shape.copy()
        shape[0] = stacked_rows
    return shape


def _concat_patch(gold: GoldenRun, inst, dirty, rows, gathered):
    """concat along a non-batch axis: the golden output with the dirty inputs' slices replaced
    (instead of gathering every clean input for the stacked rows)."""
    out_name = inst.outputs[0]
    axis = int(inst.attrs.get("axis", 0))
    golden_out = gold.tensors[out_name]
    if out_name not in gold.batch_tensors or golden_out.ndim < 2 or axis % golden_out.ndim == 0:
        return None
    if any(n and n not in dirty and n not in gold.tensors for n in inst.inputs):
        return None
    if any(n in dirty and n not in gold.batch_tensors for n in inst.inputs):
        return None
    axis %= golden_out.ndim
    value = golden_out if rows is None else _gathered(gold, out_name, rows, gathered)
    value = value.copy()
    offset = 0
    for name in inst.inputs:
        width = gold.tensors[name].shape[axis]
        if name in dirty:
            index = [slice(None)] * golden_out.ndim
            index[axis] = slice(offset, offset + width)
            value[tuple(index)] = dirty[name]
        offset += width
    return (value,)


def _gathered(gold: GoldenRun, name: str, rows: np.ndarray, cache: dict[str, np.ndarray]) -> np.ndarray:
    value = cache.get(name)
    if value is None:
        value = gold.tensors[name][rows]
        cache[name] = value
    return value


# ---------------------------------------------------------------------------- stacking probe
# What a kernel may raise when a stacked batch breaks an assumption about the batch size
# (e.g. a reshape target or a broadcast that only fits the golden batch). Anything else is a bug.
_STACKING_FAILURES = (Unstackable, ValueError, IndexError, ExecutionError)


def is_stackable(gold: GoldenRun, start: int) -> bool:
    """Deterministic probe: stacked row-subset propagation from ``start`` equals the full-batch
    propagation (cached per start instruction)."""
    known = gold.stackable.get(start)
    if known is not None:
        return known
    ok = False
    inst = gold.instructions[start]
    outs = list(inst.outputs)
    if all(o in gold.batch_tensors for o in outs) and all(
            np.issubdtype(gold.tensors[o].dtype, np.floating) for o in outs):
        try:
            ok = _probe(gold, start, outs)
        except _STACKING_FAILURES:
            ok = False
    gold.stackable[start] = ok
    return ok


def _probe(gold: GoldenRun, start: int, outs: list[str]) -> bool:
    probe_rows = [np.array([0]), np.array([gold.batch - 1, 0][: min(2, gold.batch)])]
    full = []
    for r in probe_rows:
        dirty = {o: _perturb(gold.tensors[o], r) for o in outs}
        res = propagate(gold, start + 1, dirty, None, [gold.batch], {}, None)
        full.append(None if res is None else res[0][r])
    rows = np.concatenate(probe_rows)
    dirty = {o: np.concatenate([_perturb(gold.tensors[o], r)[r] for r in probe_rows]) for o in outs}
    res = propagate(gold, start + 1, dirty, rows, [len(r) for r in probe_rows], {}, None, member_ids=[0, 1])
    stacked_out: list[np.ndarray | None] = [None, None]
    if res is not None:
        offset = 0
        for m, size in zip(res[1], res[2]):
            stacked_out[m] = res[0][offset:offset + size]
            offset += size
    return all(
        (a is None and b is None) or (a is not None and b is not None and _close(a, b))
        for a, b in zip(full, stacked_out)
    ) and any(a is not None for a in full)


# ---------------------------------------------------------------------------- comparisons
def equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical (floats compared as their bit patterns: NaN == NaN, -0 != +0)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}")))
    return bool(np.array_equal(a, b))


def member_diff(value: np.ndarray, ref: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Per stacked member: does any of its rows differ (bitwise) from the reference?"""
    if value.shape != ref.shape:
        raise Unstackable("shape")
    if value.dtype.kind == "f":
        row_diff = (value.view(f"u{value.itemsize}") != ref.view(f"u{ref.itemsize}"))
    else:
        row_diff = value != ref
    row_diff = row_diff.reshape(value.shape[0], -1).any(axis=1) if value.ndim > 1 else row_diff
    bounds = np.cumsum([0] + list(sizes))
    return np.array([row_diff[bounds[k]:bounds[k + 1]].any() for k in range(len(sizes))], dtype=bool)


def _perturb(golden: np.ndarray, rows: np.ndarray) -> np.ndarray:
    value = np.array(golden, copy=True)
    scale = float(np.max(np.abs(golden))) if golden.size else 1.0
    value[rows] = golden[rows] * np.float32(1.5) + np.float32(0.25 * (scale or 1.0))
    return value


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    scale = float(np.nanmax(np.abs(np.where(np.isfinite(b), b, 0)))) if b.size else 1.0
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * max(scale, 1.0), equal_nan=True))
