"""Fast exact parameter-fault injection from the golden run.

For a fault in parameter ``p`` on a set of inputs (rows of the evaluation batch):

1. The golden run (:class:`faults.inject._golden.GoldenRun`) is done once.
2. The first instruction reading ``p`` is the start. Its faulty output is computed for the
   fault's rows only, and only where it changes (:mod:`faults.inject._deltas`: a corrupted
   gemm/matmul weight ``W[k, n]`` changes column ``n``; a conv weight one output channel; a
   table row only the lookups of that row). Other ops are recomputed on the fault's rows with
   the corrupted parameter (one instruction, a few rows).
3. The faulty activations propagate through the rest of the program
   (:mod:`faults.inject._propagate`): only instructions reading a tensor that differs from the
   golden one run; when nothing differs any more the fault is masked and propagation stops.
4. Faults that start at the same instruction are stacked: their rows form one batch pushed
   through the downstream instructions together (the weights are shared), once a probe has
   shown that stacking from that instruction is exact; otherwise a fault runs alone on the
   full batch (still with dirty-set skipping and early stop).

Parameters read by several instructions (tied weights) run alone with the corrupted value kept
in place for every reader. The golden run is never modified by an injection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from accelsim.ir import Program
from accelsim.kernels import KERNELS
from accelsim.storage import StoredTensor

from faults.common.fault_models import Corruption
from faults.inject._deltas import local_delta
from faults.inject._golden import GoldenRun
from faults.inject._propagate import Unstackable, equal, is_stackable, propagate


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
    """Golden run + exact incremental injection for one program, input batch and storage dtype."""

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], dtype: str = "fp32",
                 output: str | None = None) -> None:
        self.gold = GoldenRun(program, inputs, dtype, output)
        self.program = program

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
        """Every tensor of the golden run by name (read only by convention)."""
        return self.gold.tensors

    @property
    def golden_output(self) -> np.ndarray:
        return self.gold.output_value

    @property
    def probability_output(self) -> bool:
        return self.gold.probability_output

    @property
    def stacking_verdicts(self) -> dict[int, bool]:
        """Start instruction index -> whether faults starting there are stacked (probed so far)."""
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
        with np.errstate(all="ignore"):
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
            except Unstackable:  # a fault the probe did not foresee: run each one alone
                outs = [self._run_alone(faults[i], start) for i in members]
            for i, res in zip(members, outs):
                results[i] = res
        return [r for r in results if r is not None]

    def _start_output(self, fault: Fault, start: int, rows: np.ndarray | None) -> list[np.ndarray]:
        """Faulty outputs of the start instruction on ``rows`` (None = full batch)."""
        gold = self.gold
        inst = gold.instructions[start]
        new, old = self.fault_values(fault)
        fast = local_delta(gold, inst, fault.param, fault.corruption.index, new, old, rows)
        if fast is not None:
            return fast
        # generic: the whole instruction on the full golden batch, then the fault's rows
        # (row-subsetting inputs is not valid for every op, e.g. embedding_bag offsets)
        args = []
        for name in inst.inputs:
            if not name:
                args.append(None)
            elif name == fault.param:
                args.append(self.corrupted_value(fault))
            else:
                args.append(gold.tensors[name])
        outs = list(KERNELS[inst.op](inst, args))
        if rows is None:
            return outs
        return [v[rows] if o in gold.batch_tensors else v for o, v in zip(inst.outputs, outs)]

    def _run_alone(self, fault: Fault, start: int) -> FaultResult:
        """One fault on the full batch; corrupted parameter kept for every reader."""
        gold = self.gold
        name = gold.instructions[start].name
        multi = len(gold.readers[fault.param]) > 1
        overrides = {fault.param: self.corrupted_value(fault)} if multi else {}
        dirty: dict[str, np.ndarray] = {}
        if multi:
            begin = start
        else:
            outs = self._start_output(fault, start, None)
            for out_name, value in zip(gold.instructions[start].outputs, outs):
                if not equal(value, gold.tensors[out_name]):
                    dirty[out_name] = value
            begin = start + 1
        final = propagate(gold, begin, dirty, None, [gold.batch], overrides, fault.param)
        out = final[0] if final else gold.output_value
        return FaultResult(np.asarray(out)[fault.rows], name, not final)

    def _run_stacked(self, start: int, faults: Sequence[Fault]) -> list[FaultResult]:
        gold = self.gold
        inst = gold.instructions[start]
        results = [FaultResult(gold.output_rows(f.rows), inst.name, True) for f in faults]
        # single-element weight faults of a gemm/matmul: one vectorised column update
        linear = [j for j, f in enumerate(faults) if self._linear_ok(inst, f)]
        alive: list[int] = []
        rows_parts: list[np.ndarray] = []
        sizes: list[int] = []
        value_parts: list[list[np.ndarray]] = []
        if linear:
            v_alive, v_rows, v_sizes, v_value = self._stacked_linear_start(inst, [faults[j] for j in linear])
            alive += [linear[a] for a in v_alive]
            if v_alive:
                rows_parts.append(v_rows)
                sizes += v_sizes
                value_parts.append([v_value])
        chosen = set(linear)
        for j, fault in enumerate(faults):
            if j in chosen:
                continue
            outs = self._start_output(fault, start, fault.rows)
            if all(equal(v, gold.rows_of(o, fault.rows)) for o, v in zip(inst.outputs, outs)):
                continue
            for k, out_name in enumerate(inst.outputs):
                if out_name not in gold.batch_tensors and not equal(outs[k], gold.tensors[out_name]):
                    raise FastPathError(f"stacked start {inst.name!r} changed non-batch tensor {out_name!r}")
            alive.append(j)
            rows_parts.append(fault.rows)
            sizes.append(len(fault.rows))
            value_parts.append(outs)
        if not alive:
            return results
        rows = np.concatenate(rows_parts)
        dirty: dict[str, np.ndarray] = {}
        for k, out_name in enumerate(inst.outputs):
            if out_name in gold.batch_tensors:
                dirty[out_name] = np.concatenate([part[k] for part in value_parts])
        final = propagate(gold, start + 1, dirty, rows, sizes, {}, None, member_ids=alive)
        if final is not None:
            out_value, member_ids, member_sizes = final
            offset = 0
            for j, size in zip(member_ids, member_sizes):
                results[j] = FaultResult(out_value[offset:offset + size], inst.name, False)
                offset += size
        return results

    def _linear_ok(self, inst, fault: Fault) -> bool:
        """A single finite element of the 2-D weight of a gemm/matmul with batch-major 2-D operands."""
        gold = self.gold
        if inst.op not in ("gemm", "matmul") or len(inst.outputs) != 1 or fault.corruption.index.size != 1:
            return False
        if inst.inputs[1:2] != (fault.param,) or (inst.op == "gemm" and inst.attrs.get("trans_a")):
            return False
        if len(self.program.parameters[fault.param].shape) != 2:
            return False
        if inst.inputs[0] not in gold.batch_tensors or inst.outputs[0] not in gold.batch_tensors:
            return False
        if gold.tensors[inst.outputs[0]].ndim != 2:
            return False
        return bool(np.isfinite(self.fault_values(fault)[0][0]))

    def _stacked_linear_start(self, inst, faults: Sequence[Fault]):
        """Faults accepted by :meth:`_linear_ok`: one vectorised column update for all of them.

        Returns (alive member ids, rows, sizes, stacked faulty output).
        """
        gold = self.gold
        pshape = self.program.parameters[faults[0].param].shape
        golden_out = gold.tensors[inst.outputs[0]]
        new = np.empty(len(faults), dtype=np.float64)
        old = np.empty(len(faults), dtype=np.float64)
        idx = np.empty(len(faults), dtype=np.int64)
        for j, f in enumerate(faults):
            n_, o_ = self.fault_values(f)
            new[j], old[j], idx[j] = n_[0], o_[0], f.corruption.index[0]
        if inst.op == "gemm" and inst.attrs.get("trans_b"):
            n_idx, k_idx = np.divmod(idx, pshape[1])
        else:
            k_idx, n_idx = np.divmod(idx, pshape[1])
        alpha = float(inst.attrs.get("alpha", 1.0)) if inst.op == "gemm" else 1.0
        sizes_all = np.array([f.rows.size for f in faults])
        rows_all = np.concatenate([f.rows for f in faults])
        member = np.repeat(np.arange(len(faults)), sizes_all)
        a = gold.tensors[inst.inputs[0]]
        col = n_idx[member]
        contrib = a[rows_all, k_idx[member]].astype(np.float64) * (alpha * (new - old))[member]
        value = golden_out[rows_all]
        before = value[np.arange(rows_all.size), col]
        after = (before.astype(np.float64) + contrib).astype(np.float32)
        value[np.arange(rows_all.size), col] = after
        changed_rows = after.view(np.uint32) != before.view(np.uint32)
        changed = np.zeros(len(faults), dtype=bool)
        np.logical_or.at(changed, member, changed_rows)
        alive = [int(j) for j in np.nonzero(changed)[0]]
        if not alive:
            return [], rows_all[:0], [], value[:0]
        keep = changed[member]
        return alive, rows_all[keep], [int(s) for s in sizes_all[changed]], value[keep]
