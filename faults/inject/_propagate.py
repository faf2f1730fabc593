"""Propagation of faulty activations from the golden run (private to :mod:`faults.inject`).

The faults of a stack travel as one *virtual batch*: ``rows`` lists, member after member, the
golden batch rows each fault is judged on (``sizes`` their counts). From instruction
``begin`` on, an instruction is recomputed only if it reads a tensor that differs from the
golden one (the *dirty* set, at the virtual batch's size); every other tensor it reads is
taken as the golden one on the virtual rows (:class:`faults.inject._golden.Rows`: kept rows,
or recomputed from kept tensors), shape arithmetic is recomputed for the virtual batch's size.
A recomputed tensor is compared with the golden rows member by member (where the golden
tensor is kept: a dropped one is not recomputed just to compare); a member whose tensors all
equal the golden ones leaves the stack (early masked); when no member is left the propagation
stops. The judged output is always kept and compared, so a fault is early masked exactly when
its output equals the golden one on all its rows, whatever was kept.

Every kernel is row exact, so the result of each member is bit-identical to a full re-run of
the executor on the whole batch with the corrupted parameter, restricted to its rows, whatever
the other members of the stack are.
"""
from __future__ import annotations

import numpy as np

from accelsim.kernels import KERNELS

from faults.inject._golden import GoldenRun, Rows


class Unstackable(Exception):
    """A fault changed a tensor that is not batch-major (caller runs the members one by one)."""


def propagate(gold: GoldenRun, begin: int, dirty: dict[str, np.ndarray], rows: np.ndarray | None,
              sizes: list[int], overrides: dict[str, np.ndarray], override_param: str | None,
              member_ids: list[int] | None = None):
    """Run instructions from ``begin`` on the dirty set (module docstring).

    ``dirty``: tensors that differ, at the virtual batch's size (``rows=None``: the whole
    batch, one member). ``overrides``: parameter values replaced for every reader (a parameter
    read by several instructions); ``override_param`` names it. Returns None if everything
    became golden (masked); otherwise ``(output,)`` when ``rows`` is None and ``(output,
    member_ids, member_sizes)`` otherwise (output rows of the surviving members, in order).
    """
    whole = rows is None
    if whole:
        rows = np.arange(gold.batch)
    member_ids = list(member_ids or [0])
    sizes = list(sizes)
    last_override = max(gold.readers[override_param]) if overrides and override_param else -1
    ctx = Rows(gold, rows)
    diffs = {name: member_diff(value, ctx.golden(name), _scaled(gold, name, sizes))
             for name, value in dirty.items() if name in gold.batch_tensors}
    for i in range(begin, len(gold.instructions)):
        if not dirty and i > last_override:
            return None
        inst = gold.instructions[i]
        if not any(n in dirty or n in overrides for n in inst.inputs if n):
            continue
        args = []
        for name in inst.inputs:
            if not name:
                args.append(None)
            elif name in dirty:
                args.append(dirty[name])
            elif name in overrides:
                args.append(overrides[name])
            else:
                args.append(ctx.value(name))
        results = KERNELS[inst.op](inst, args)
        if inst.op == "embedding_bag" and not ctx.identity:  # ragged operands are whole: its bags
            results = [v[ctx.rows] if n in gold.batch_tensors and np.shape(v)[0] == gold.batch else v
                       for n, v in zip(inst.outputs, results)]
        for name, value in zip(inst.outputs, results):
            if name in gold.batch_tensors:
                ref = ctx.kept(name)  # a dropped golden tensor is not recomputed to compare
                diff = np.ones(len(sizes), bool) if ref is None else member_diff(value, ref, _scaled(gold, name, sizes))
                if diff.any():
                    dirty[name] = value
                    diffs[name] = diff
            elif not equal(value, ctx.value(name)):
                if len(sizes) > 1:
                    raise Unstackable(name)
                dirty[name] = value
                diffs[name] = np.ones(1, dtype=bool)
        # free dirty tensors nobody reads any more
        for name in [n for n in dirty if gold.last_use.get(n, -1) <= i and n != gold.output]:
            del dirty[name]
            diffs.pop(name, None)
        if dirty and len(sizes) > 1:
            # members whose every dirty tensor equals the golden one leave the stack
            alive = np.zeros(len(member_ids), dtype=bool)
            for name in dirty:
                alive |= diffs[name]
            if not alive.all():
                if not alive.any():
                    return None
                keep_rows = np.repeat(alive, sizes)
                rows = rows[keep_rows]
                for name in list(dirty):
                    k = gold.batch_tensors.get(name, 1)
                    dirty[name] = dirty[name][np.repeat(keep_rows, k)]
                    diffs[name] = diffs[name][alive]
                member_ids = [m for m, a in zip(member_ids, alive) if a]
                sizes = [s for s, a in zip(sizes, alive) if a]
                ctx = Rows(gold, rows)
    if gold.output not in dirty:
        return None
    if whole:
        return (dirty[gold.output],)
    return dirty[gold.output], member_ids, sizes


def _scaled(gold: GoldenRun, name: str, sizes: list[int]) -> list[int]:
    k = gold.batch_tensors.get(name, 1)
    return sizes if k == 1 else [s * k for s in sizes]


def is_stackable(gold: GoldenRun, start: int) -> bool:
    """Faults starting at ``start`` may run on their own rows, stacked (a row-separable program;
    the verdict is recorded per start instruction)."""
    inst = gold.instructions[start]
    ok = gold.separable and all(o in gold.batch_tensors for o in inst.outputs)
    gold.stackable[start] = ok
    return ok


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
    value, ref = np.asarray(value), np.asarray(ref)
    if value.shape != ref.shape:
        raise Unstackable("shape")
    if value.dtype.kind == "f":
        row_diff = value.view(f"u{value.itemsize}") != ref.view(f"u{ref.itemsize}")
    else:
        row_diff = value != ref
    row_diff = row_diff.reshape(value.shape[0], -1).any(axis=1) if value.ndim > 1 else row_diff
    if len(sizes) == 1:
        return np.array([bool(row_diff.any())])
    bounds = np.cumsum([0] + list(sizes))
    return np.logical_or.reduceat(row_diff, bounds[:-1]) if row_diff.size else np.zeros(len(sizes), bool)
