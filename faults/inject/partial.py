"""Fast exact faulty inference for a *partial* corruption of one parameter element.

A hardware fault site, once resolved through the residency table (:mod:`faults.avf.sites`),
says which reads see a corrupted element: a subset of the output rows of one GEMM / conv
(im2col rows) / matmul, a subset of the lookups of a gather, or a whole vector op. Those reads
are :class:`Use` records; this module computes the faulty network output for them on the
chosen input samples:

1. the golden run once (shared with the parameter-fault engine);
2. at each instruction with uses, the faulty output is the golden one with only the affected
   entries changed: ``Y[m, n] += A[m, k]·Δw`` (float64, one rounding to float32 — the fast
   path's arithmetic) for the affected rows m, ``+= Δb`` for a bias, the new value for a
   looked-up embedding element; a vector op that reads the element is recomputed with it;
3. propagation from the next instruction reuses the engine's dirty-set propagation; faults
   whose uses sit in one instruction are stacked (only their input samples) and pushed through
   the rest of the network together, like parameter faults.

A corruption that every read sees (``full``) *is* the parameter-level fault and is delegated
to :meth:`FastInjector.evaluate` unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from accelsim.errors import UserError
from accelsim.kernels import KERNELS
from accelsim.schedule.core import Schedule
from accelsim.schedule.workload import GatherWork, GemmWork

from faults.common.fault_models import Corruption, single_bit_flip
from faults.inject._propagate import equal, is_stackable, propagate
from faults.inject.engine import FastInjector, Fault


class PartialError(UserError, ValueError):
    """A partial corruption this path does not support (one line, names the op)."""


@dataclass(frozen=True)
class Use:
    """Reads of one work item (index ``op`` into ``Schedule.works``) that see the corrupted value.

    kind: ``weight`` (GEMM-view element B_g[k, n] in output rows ``rows`` of group ``g``),
    ``bias`` (bias element n in output rows ``rows``), ``lookup`` (embedding element ``n`` of
    the looked-up row, lookup positions ``rows``), ``whole`` (a vector-unit op reading the
    element: every output of the op).
    """

    op: int
    kind: str
    g: int
    k: int
    n: int
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    approx: bool = False  # "whole" although only the op's later chunks read the flipped copy

    @property
    def count(self) -> int:
        return 1 if self.kind == "whole" else int(self.rows.size)


@dataclass
class PartialFault:
    """Stored bit ``element_bit`` of flat element ``element`` of ``param`` flipped, seen by the
    reads ``uses`` (``full``: every read of the element), evaluated on batch ``rows``."""

    param: str
    element: int
    element_bit: int
    uses: tuple[Use, ...]
    full: bool
    rows: np.ndarray


@dataclass
class PartialResult:
    output: np.ndarray   # faulty graph output on the fault's rows
    early_masked: bool   # no output changed before reaching the end of the network


class PartialInjector:
    """Partial-corruption evaluation on the golden run of ``injector`` for ``schedule``."""

    def __init__(self, injector: FastInjector, schedule: Schedule) -> None:
        self.inj = injector
        self.gold = injector.gold
        self.program, self.schedule = injector.program, schedule
        self.works = schedule.works
        self.batch = injector.batch

    # ------------------------------------------------------------------ values
    def corruption(self, fault: PartialFault) -> Corruption:
        """Single bit flip of the stored element (the injector's storage format)."""
        return single_bit_flip(self.gold.stored(fault.param), fault.element, fault.element_bit)

    def delta(self, fault: PartialFault) -> tuple[float, float]:
        """(new, old) fp32 value of the corrupted element."""
        new, old = self.gold.corrupted_values(fault.param, self.corruption(fault))
        return float(new[0]), float(old[0])

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, faults: Sequence[PartialFault]) -> list[PartialResult]:
        """Faulty outputs (on each fault's rows), grouped and stacked where possible."""
        with np.errstate(all="ignore"):
            return self._evaluate(faults)

    def _evaluate(self, faults: Sequence[PartialFault]) -> list[PartialResult]:
        out: list[PartialResult | None] = [None] * len(faults)
        full_ids = [i for i, f in enumerate(faults) if f.full]
        if full_ids:
            plain = [Fault(faults[i].param, self.corruption(faults[i]), faults[i].rows) for i in full_ids]
            for i, r in zip(full_ids, self.inj.evaluate(plain)):
                out[i] = PartialResult(r.output, r.early_masked)
        stacks: dict[int, list[int]] = {}
        for i, f in enumerate(faults):
            if out[i] is not None:
                continue
            new, old = self.delta(f)
            if np.float32(new).view(np.uint32) == np.float32(old).view(np.uint32) or not f.uses:
                out[i] = PartialResult(self.gold.output_rows(f.rows), True)
                continue
            instrs = sorted({self.works[u.op].index for u in f.uses})
            if len(instrs) == 1 and is_stackable(self.gold, instrs[0]):
                stacks.setdefault(instrs[0], []).append(i)
            else:
                out[i] = self._run_alone(f, instrs, new, old)
        for start, members in stacks.items():
            self._run_stacked(start, [faults[i] for i in members], members, out)
        return [r for r in out if r is not None]

    def _run_alone(self, f: PartialFault, instrs: list[int], new: float, old: float) -> PartialResult:
        gold = self.gold
        dirty: dict[str, np.ndarray] = {}
        for i in range(instrs[0], instrs[-1] + 1):
            inst = gold.instructions[i]
            reads = any(n in dirty for n in inst.inputs if n)
            if i not in instrs and not reads:
                continue
            get = lambda name: dirty.get(name, gold.tensors[name])  # noqa: E731
            if reads:
                outs = list(KERNELS[inst.op](inst, [get(n) if n else None for n in inst.inputs]))
            else:
                outs = [gold.tensors[o] for o in inst.outputs]
            if i in instrs:
                uses = [u for u in f.uses if self.works[u.op].index == i]
                outs[0] = self._patch(inst, uses, outs[0], get, f, new, old)
            for name, value in zip(inst.outputs, outs):
                if equal(value, gold.tensors[name]):
                    dirty.pop(name, None)
                else:
                    dirty[name] = value
        final = propagate(gold, instrs[-1] + 1, dirty, None, [self.batch], {}, None) if dirty else None
        if final is None:
            if gold.output in dirty:
                return PartialResult(np.asarray(dirty[gold.output])[f.rows], False)
            return PartialResult(gold.output_rows(f.rows), True)
        return PartialResult(np.asarray(final[0])[f.rows], False)

    def _run_stacked(self, start: int, faults: Sequence[PartialFault], ids: list[int],
                     out: list[PartialResult | None]) -> None:
        gold = self.gold
        inst = gold.instructions[start]
        name = inst.outputs[0]
        golden = gold.tensors[name]
        alive, parts, sizes, rows_parts = [], [], [], []
        for j, f in enumerate(faults):
            new, old = self.delta(f)
            patched = self._patch(inst, list(f.uses), golden, lambda n: gold.tensors[n], f, new, old)
            mine = patched[f.rows]
            if equal(mine, golden[f.rows]):
                out[ids[j]] = PartialResult(gold.output_rows(f.rows), True)
                continue
            alive.append(j)
            parts.append(mine)
            sizes.append(int(f.rows.size))
            rows_parts.append(f.rows)
        if not alive:
            return
        rows = np.concatenate(rows_parts)
        if name == gold.output:
            final = (np.concatenate(parts), alive, sizes)
        else:
            final = propagate(gold, start + 1, {name: np.concatenate(parts)}, rows, sizes, {}, None,
                              member_ids=alive)
        for j in alive:
            out[ids[j]] = PartialResult(gold.output_rows(faults[j].rows), True)
        if final is not None:
            offset = 0
            for j, size in zip(final[1], final[2]):
                out[ids[j]] = PartialResult(final[0][offset:offset + size], False)
                offset += size

    # ------------------------------------------------------------------ local patches
    def _patch(self, inst, uses: list[Use], value: np.ndarray, get, f: PartialFault,
               new: float, old: float) -> np.ndarray:
        """``value`` (the instruction's first output on the full batch) with the uses applied."""
        out = np.array(value, copy=True)
        finite = bool(np.isfinite(new))
        d = np.float64(new) - np.float64(old)

        def contrib(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a, dtype=np.float64)
            return a * d if finite else a * np.float64(new) - a * np.float64(old)

        for use in uses:
            work = self.works[use.op]
            if use.kind == "whole":
                args = [None if not n else (self._corrupted(f) if n == f.param else get(n)) for n in inst.inputs]
                return np.asarray(KERNELS[inst.op](inst, args)[0])
            if isinstance(work, GatherWork):
                self._patch_lookup(inst, work, use, out, get, new, d)
                continue
            if not isinstance(work, GemmWork) or work.swapped:
                raise PartialError(f"op {work.name!r}: partial corruption of a {getattr(work, 'op', '?')} "
                                   "parameter is not supported")
            m = use.rows
            if work.op == "conv":
                self._patch_conv(inst, work, use, out, get, contrib, d)
                continue
            if work.op == "gemm":
                alpha, beta = float(inst.attr("alpha")), float(inst.attr("beta"))
                if use.kind == "bias":
                    add = np.full(m.size, beta * d if finite else np.float64(new) - np.float64(old))
                else:
                    a = get(inst.inputs[0])
                    a = a.T if inst.attr("trans_a") else a
                    add = alpha * contrib(a[m, use.k])
                flat = out
            else:  # matmul with a 2-D parameter right operand
                if work.groups != 1:
                    raise PartialError(f"op {work.name!r}: partial corruption of a batched matmul weight")
                a = np.asarray(get(inst.inputs[0])).reshape(-1, work.k)
                add = contrib(a[m, use.k]) if use.kind == "weight" else np.full(m.size, d)
                flat = out.reshape(-1, work.n)
            flat[m, use.n] = (flat[m, use.n].astype(np.float64) + add).astype(out.dtype)
        return out

    def _corrupted(self, f: PartialFault) -> np.ndarray:
        return self.inj.corrupted_value(Fault(f.param, self.corruption(f), np.arange(1)))

    def _patch_conv(self, inst, work: GemmWork, use: Use, out, get, contrib, d) -> None:
        x = np.asarray(get(inst.inputs[0]))
        w_shape = self.program.parameters[work.weight.param].shape
        osp = out.shape[2:]
        per = int(np.prod(osp))
        b, p = np.divmod(use.rows, per)
        opos = np.unravel_index(p, osp)
        o = use.g * work.n + use.n
        index = (b, np.full(b.size, o)) + tuple(opos)
        if use.kind == "bias":
            add = np.full(b.size, d)
        else:
            kpos = np.unravel_index(use.k, tuple(w_shape[1:]))
            c_in = use.g * w_shape[1] + int(kpos[0])
            strides, pads, dil = inst.attr("strides"), inst.attr("pads"), inst.attr("dilations")
            a = np.zeros(b.size, dtype=np.float64)
            pos, ok = [], np.ones(b.size, dtype=bool)
            for ax in range(len(osp)):
                q = opos[ax] * strides[ax] + int(kpos[1 + ax]) * dil[ax] - pads[ax]
                ok &= (q >= 0) & (q < x.shape[2 + ax])
                pos.append(np.clip(q, 0, x.shape[2 + ax] - 1))
            a[ok] = x[(b, np.full(b.size, c_in)) + tuple(pos)][ok]
            add = contrib(a)
        out[index] = (out[index].astype(np.float64) + add).astype(out.dtype)

    def _patch_lookup(self, inst, work: GatherWork, use: Use, out, get, new: float, d) -> None:
        if inst.op == "gather":
            flat = out.reshape(-1, work.dim)
            flat[use.rows, use.n] = np.float32(new)
            return
        if inst.op != "embedding_bag" or inst.attr("mode") not in ("sum", "mean"):
            raise PartialError(f"op {work.name!r}: partial corruption of a {inst.op} lookup is not supported")
        indices = np.asarray(get(inst.inputs[1])).reshape(-1)
        offsets = np.asarray(get(inst.inputs[2])).reshape(-1).astype(np.int64)
        last = bool(inst.attr("include_last_offset"))
        nbags = offsets.size - int(last)
        ends = offsets[1:nbags + 1] if last else np.append(offsets[1:], indices.size)
        psw = np.asarray(get(inst.inputs[3])).reshape(-1) if len(inst.inputs) > 3 and inst.inputs[3] else None
        for j in use.rows:
            bag = int(np.searchsorted(offsets[:nbags], j, side="right") - 1)
            weight = float(psw[j]) if psw is not None else 1.0
            if inst.attr("mode") == "mean":
                weight /= max(1, int(ends[bag] - offsets[bag]))
            out[bag, use.n] = np.float32(float(out[bag, use.n]) + weight * d)
