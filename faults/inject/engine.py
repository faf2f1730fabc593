"""Fast exact parameter-fault injection from the golden run.

For a fault in parameter ``p`` judged on some inputs (rows of the evaluation batch):

1. The golden run (:class:`faults.inject._golden.GoldenRun`) is done once; it keeps what
   resumption needs within a memory budget and recomputes the rest on demand, bit for bit.
2. The first instruction reading ``p`` is the start. It is recomputed on the fault's rows
   only, with the corrupted parameter, by the executor's own kernel (an embedding bag on the
   fault's bags only; a gather of a row nobody on those rows looks up is masked at once).
3. The faulty activations propagate through the rest of the program on those rows only
   (:mod:`faults.inject._propagate`): only instructions reading a tensor that differs from the
   golden one run; when nothing differs any more the fault is masked (*early masked*) and
   propagation stops.
4. Faults that start at the same instruction are stacked: their rows form one virtual batch
   pushed through the downstream instructions together (the weights are shared).

Every kernel is row exact (``accelsim.kernels.linear``), so a fault's output is bit-identical
to a full fp32 re-run of the executor on the whole batch with the corrupted parameter,
restricted to the fault's rows — whatever the stack, the chunking or the memory budget. (A
program whose batch-structure probe fails — an op mixing rows — runs every fault on the whole
batch, still exact.) Parameters read by several instructions (tied weights) run alone with the
corrupted value seen by every reader. The golden run is never modified: the corrupted value
lives in a scratch copy of the parameter, patched and restored around each fault.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from accelsim.ir import Program
from accelsim.kernels import parallel
from accelsim.storage import StoredTensor

from faults.common.fault_models import Corruption
from faults.inject._golden import GoldenRun, Rows
from faults.inject._propagate import Unstackable, is_stackable, member_diff, propagate
from faults.inject._start import start_outputs


class FastPathError(RuntimeError):
    """Internal inconsistency of the fast path (never expected on valid programs): a bug."""


@dataclass
class Fault:
    """One fault to evaluate: parameter, corruption of its stored bits, input rows (batch indices)."""

    param: str
    corruption: Corruption
    rows: np.ndarray
    values: tuple[np.ndarray, np.ndarray] | None = None  # (new, old) fp32, filled lazily


@dataclass
class FaultResult:
    """Faulty graph output on the fault's rows [rows, ...], the start instruction's name, and
    whether the fault was masked before reaching the output."""

    output: np.ndarray
    start: str
    early_masked: bool


class FastInjector:
    """Golden run + exact incremental injection for one program, input batch and storage dtype.

    ``budget_bytes``: memory for kept golden activations (None = keep every tensor); never
    changes a result (:mod:`faults.inject._golden`).
    """

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], dtype: str = "fp32",
                 output: str | None = None, budget_bytes: int | None = None) -> None:
        self.gold = GoldenRun(program, inputs, dtype, output, budget_bytes)
        self.program = program
        self._scratch: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ facts of the golden run
    @property
    def dtype(self) -> str:
        return self.gold.dtype

    @property
    def batch(self) -> int:
        return self.gold.batch

    @property
    def output(self) -> str:
        return self.gold.output

    @property
    def golden(self) -> Mapping[str, np.ndarray]:
        """The kept tensors of the golden run by name (every tensor without a budget; read only)."""
        return self.gold.tensors

    @property
    def golden_output(self) -> np.ndarray:
        return self.gold.output_value

    @property
    def probability_output(self) -> bool:
        return self.gold.probability_output

    @property
    def stacking_verdicts(self) -> dict[int, bool]:
        """Start instruction index -> whether faults starting there ran on their own rows, stacked."""
        return dict(self.gold.stackable)

    def stored(self, name: str) -> StoredTensor:
        """The parameter as stored in this injector's format (cached)."""
        return self.gold.stored(name)

    def fault_values(self, fault: Fault) -> tuple[np.ndarray, np.ndarray]:
        """(new, old) fp32 values of the fault's corrupted elements (cached on the fault)."""
        if fault.values is None:
            fault.values = self.gold.corrupted_values(fault.param, fault.corruption)
        return fault.values

    def corrupted_value(self, fault: Fault) -> np.ndarray:
        """Full fp32 value of the corrupted parameter (a copy)."""
        return self.gold.with_elements(fault.param, fault.corruption.index, self.fault_values(fault)[0])

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, faults: Sequence[Fault]) -> list[FaultResult]:
        """Faulty outputs of every fault (in order), grouped and stacked where possible."""
        with np.errstate(all="ignore"), parallel.compute_threads():  # one BLAS thread per call
            return self._evaluate(faults)

    def _evaluate(self, faults: Sequence[Fault]) -> list[FaultResult]:
        gold = self.gold
        results: list[FaultResult | None] = [None] * len(faults)
        groups: dict[int, list[int]] = {}
        for i, fault in enumerate(faults):
            new, old = self.fault_values(fault)
            start = gold.start_index(fault.param)
            if np.array_equal(new.view(np.uint32), old.view(np.uint32)):
                results[i] = FaultResult(gold.output_rows(fault.rows), gold.instructions[start].name, True)
                continue
            if len(gold.readers[fault.param]) == 1 and is_stackable(gold, start):
                groups.setdefault(start, []).append(i)
            else:
                results[i] = self._run_alone(fault, start)
        for start, members in groups.items():
            try:
                outs = self._run_stacked(start, [faults[i] for i in members])
            except Unstackable:  # a fault changed a non-batch tensor: run each one alone
                outs = [self._run_alone(faults[i], start) for i in members]
            for i, res in zip(members, outs):
                results[i] = res
        return [r for r in results if r is not None]

    def _patched(self, fault: Fault) -> np.ndarray:
        """The scratch copy of the fault's parameter with its corrupted elements set."""
        scratch = self._scratch.get(fault.param)
        if scratch is None:
            scratch = np.array(self.gold.tensors[fault.param], dtype=np.float32, copy=True)
            self._scratch[fault.param] = scratch
        scratch.reshape(-1)[fault.corruption.index] = self.fault_values(fault)[0]
        return scratch

    def _restore(self, fault: Fault) -> None:
        scratch = self._scratch[fault.param]
        scratch.reshape(-1)[fault.corruption.index] = self.fault_values(fault)[1]

    def _run_alone(self, fault: Fault, start: int) -> FaultResult:
        """One fault on its own rows (the whole batch if the program is not row separable)."""
        gold = self.gold
        name = gold.instructions[start].name
        rows = fault.rows if gold.separable else np.arange(gold.batch)
        value = self._patched(fault)
        try:
            if len(gold.readers[fault.param]) > 1:
                final = propagate(gold, start, {}, rows, [rows.size], {fault.param: value}, fault.param)
            else:
                inst = gold.instructions[start]
                ctx = Rows(gold, rows)
                outs = start_outputs(gold, inst, fault.param, value, ctx, fault.corruption.index) or []
                dirty = {}
                for out_name, out in zip(inst.outputs, outs):
                    golden = ctx.golden(out_name) if out_name in gold.batch_tensors else ctx.value(out_name)
                    if out.shape != golden.shape or member_diff(out, golden, [out.shape[0] if out.ndim else 1]).any():
                        dirty[out_name] = out
                final = propagate(gold, start + 1, dirty, rows, [rows.size], {}, None) if dirty else None
        finally:
            self._restore(fault)
        if final is None:
            return FaultResult(gold.output_rows(fault.rows), name, True)
        out = np.asarray(final[0] if gold.separable else final[0][fault.rows])
        golden = gold.output_rows(fault.rows)
        if not gold.separable and not member_diff(out, golden, [out.shape[0]]).any():
            return FaultResult(golden, name, True)  # other rows changed, not the fault's own
        return FaultResult(out, name, False)

    def _run_stacked(self, start: int, faults: Sequence[Fault]) -> list[FaultResult]:
        gold = self.gold
        inst = gold.instructions[start]
        results = [FaultResult(gold.output_rows(f.rows), inst.name, True) for f in faults]
        all_rows = np.concatenate([f.rows for f in faults])
        bounds = np.concatenate([[0], np.cumsum([f.rows.size for f in faults])])
        shared = Rows(gold, all_rows)
        alive: list[int] = []
        parts: list[list[np.ndarray]] = []
        for j, fault in enumerate(faults):
            ctx = _Slice(shared, int(bounds[j]), int(bounds[j + 1]), fault.rows)
            try:
                outs = start_outputs(gold, inst, fault.param, self._patched(fault), ctx, fault.corruption.index)
            finally:
                self._restore(fault)
            if outs is None:
                continue
            changed = False
            for out_name, out in zip(inst.outputs, outs):
                if member_diff(out, ctx.golden(out_name), [out.shape[0]]).any():
                    changed = True
            if changed:
                alive.append(j)
                parts.append(list(outs))
        if not alive:
            return results
        rows = np.concatenate([faults[j].rows for j in alive])
        sizes = [int(faults[j].rows.size) for j in alive]
        dirty = {}
        for k, out_name in enumerate(inst.outputs):
            dirty[out_name] = np.concatenate([part[k] for part in parts])
        final = propagate(gold, start + 1, dirty, rows, sizes, {}, None, member_ids=alive)
        if final is not None:
            out_value, member_ids, member_sizes = final
            offset = 0
            for j, size in zip(member_ids, member_sizes):
                results[j] = FaultResult(out_value[offset:offset + size], inst.name, False)
                offset += size
        return results


class _Slice:
    """The golden rows of one member (``lo:hi`` of a stack's virtual batch), sharing the
    stack's recomputations."""

    def __init__(self, shared: Rows, lo: int, hi: int, rows: np.ndarray) -> None:
        self.shared, self.lo, self.hi, self.rows = shared, lo, hi, rows
        self.gold = shared.gold
        self.own: Rows | None = None

    def golden(self, name: str) -> np.ndarray:
        k = self.gold.batch_tensors.get(name)
        value = self.shared.golden(name)
        return value if k is None else value[self.lo * k:self.hi * k]

    def value(self, name: str) -> np.ndarray:
        if name in self.gold.batch_tensors:
            return self.golden(name)
        if name in self.gold.structure.meta:
            if self.own is None:
                self.own = Rows(self.gold, self.rows)
            return self.own.value(name)
        return self.gold.tensors[name]
