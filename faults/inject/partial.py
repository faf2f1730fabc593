"""Fast exact faulty inference for *partial* corruptions of parameter elements.

A hardware fault site, once resolved through the residency table (:mod:`faults.avf.sites`),
says which reads see a corrupted element: a subset of the output rows of one GEMM / conv
(im2col rows) / matmul, a subset of the lookups of a gather, or a whole vector op. Those reads
are :class:`Use` records. An :class:`ElementHit` is one element's new stored bits with the reads
that see them; a :class:`HitFault` is one or several hits at once (e.g. the data bits an ECC
decoder leaves wrong in a word) judged on some input samples. The element may be an int8
parameter's fp32 scale (pseudo-parameter ``<name>#scale``, :mod:`faults.common.scales`): then
every value of its channel decodes with the new scale where it is read.

1. the golden run once (shared with the parameter-fault engine);
2. at each instruction with uses, the faulty output is the golden one with only the affected
   entries changed (:mod:`faults.inject._patches`; float64, one rounding to float32: a read-
   dependent corruption has no full-re-run counterpart in the executor, so unlike parameter
   faults it is not bit-identical to one); a vector op that reads a corrupted element is
   recomputed with it;
3. propagation from the next instruction reuses the engine's dirty-set propagation; single-hit
   faults whose uses sit in one instruction are stacked (only their input samples) and pushed
   through the rest of the network together, like parameter faults.

Hits that every read sees (``full``), all of one parameter, *are* a parameter-level fault and
are delegated to :meth:`FastInjector.evaluate` unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from accelsim.errors import UserError
from accelsim.kernels import KERNELS, parallel
from accelsim.schedule.core import Schedule
from accelsim.schedule.workload import GatherWork, GemmWork

from faults.common.fault_models import Corruption
from faults.common.scales import base_of, scale_corruption, stored_scales
from faults.inject._patches import PatchError, conv_patch, gemm_patch, lookup_patch
from faults.inject._propagate import equal, is_stackable, propagate
from faults.inject.engine import FastInjector, Fault


class PartialError(UserError, ValueError):
    """A partial corruption this path does not support (one line, names the op)."""


@dataclass(frozen=True)
class Use:
    """Reads of one work item (index ``op`` into ``Schedule.works``) that see the corrupted value.

    kind: ``weight`` (GEMM-view element B_g[k, n] in output rows ``rows`` of group ``g``),
    ``bias`` (bias element n in output rows ``rows``), ``scale`` / ``bias_scale`` (the int8
    scale of the weight / bias applied to column n in rows ``rows``), ``lookup`` (embedding
    element ``n`` of the looked-up row ``k``, lookup positions ``rows``), ``lookup_scale`` (the
    scale of looked-up row ``k``), ``whole`` (a vector-unit op reading the element: every output
    of the op).
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


@dataclass(frozen=True)
class ElementHit:
    """Element ``element`` of ``param`` (or of a scale pseudo-parameter) stored as ``new_bits``
    for the reads ``uses`` (``full``: every read of the element; ``share``: the fraction of
    the element's reads they are)."""

    param: str
    element: int
    new_bits: int
    uses: tuple[Use, ...]
    full: bool
    share: float = 1.0


@dataclass
class HitFault:
    """Several element hits at once, judged on batch ``rows``."""

    hits: tuple[ElementHit, ...]
    rows: np.ndarray


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

    # ------------------------------------------------------------------ stored bits and values
    def stored_bits(self, param: str, element: int) -> int:
        """Stored bit pattern of ``element`` of ``param`` (a scale: its fp32 pattern)."""
        base = base_of(param)
        if base is None:
            return int(self.gold.stored(param).bits.reshape(-1)[element])
        return int(stored_scales(self.gold.stored(base)).bits[element])

    def hit(self, fault) -> ElementHit:
        """The single bit flip of a :class:`PartialFault` (or a site resolution) as an element hit."""
        bits = self.stored_bits(fault.param, fault.element) ^ (1 << fault.element_bit)
        return ElementHit(fault.param, fault.element, bits, fault.uses, fault.full)

    def corruption(self, fault) -> Corruption:
        """Parameter-level corruption of a single bit flip (a :class:`PartialFault`, or anything
        with ``param``, ``element`` and ``element_bit``, such as a site resolution)."""
        bits = self.stored_bits(fault.param, fault.element) ^ (1 << fault.element_bit)
        return self.hits_corruption([ElementHit(fault.param, fault.element, bits, (), True)])[1]

    def hits_corruption(self, hits: Sequence[ElementHit]) -> tuple[str, Corruption]:
        """(parameter, parameter-level corruption) of hits that are all of one (scale) parameter."""
        base = base_of(hits[0].param)
        if base is not None:
            spec = self.program.parameters[base]
            return base, scale_corruption(self.gold.stored(base), spec.shape, spec.channel_axis,
                                          [h.element for h in hits], [h.new_bits for h in hits])
        st = self.gold.stored(hits[0].param)
        order = sorted(hits, key=lambda h: h.element)
        index = np.array([h.element for h in order], dtype=np.int64)
        flat = st.bits.reshape(-1)
        new = np.array([h.new_bits for h in order], dtype=flat.dtype)
        nflips = int(sum(int(x).bit_count() for x in (flat[index].astype(np.uint64) ^ new.astype(np.uint64)).tolist()))
        changed = int(flat[index[0]]) ^ int(new[0])
        return hits[0].param, Corruption(index, flat[index].copy(), new, (changed & -changed).bit_length() - 1, nflips)

    def values(self, hit: ElementHit) -> tuple[float, float]:
        """(new, old) fp32 value of the hit element (a scale: the scale itself)."""
        base = base_of(hit.param)
        if base is not None:
            bits = stored_scales(self.gold.stored(base)).bits
            return (float(np.uint32(hit.new_bits).view(np.float32)), float(bits[hit.element].view(np.float32)))
        param, corruption = self.hits_corruption([hit])
        new, old = self.gold.corrupted_values(param, corruption)
        return float(new[0]), float(old[0])

    def delta(self, fault) -> tuple[float, float]:
        """(new, old) fp32 value of the element a single bit flip corrupts (see :meth:`hit`)."""
        return self.values(self.hit(fault))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, faults: Sequence[PartialFault]) -> list[PartialResult]:
        """Faulty outputs of single bit flips (on each fault's rows), stacked where possible."""
        return self.evaluate_hits([HitFault((self.hit(f),), f.rows) for f in faults])

    def evaluate_hits(self, faults: Sequence[HitFault]) -> list[PartialResult]:
        """Faulty outputs of element hits (on each fault's rows)."""
        with np.errstate(all="ignore"), parallel.compute_threads():  # one BLAS thread per call
            try:
                return self._evaluate(faults)
            except PatchError as exc:
                raise PartialError(str(exc)) from None

    def _evaluate(self, faults: Sequence[HitFault]) -> list[PartialResult]:
        out: list[PartialResult | None] = [None] * len(faults)
        full: list[int] = []
        stacks: dict[int, list[int]] = {}
        for i, f in enumerate(faults):
            hits = [h for h in f.hits if h.uses and self._changes(h)]
            if not hits:
                out[i] = PartialResult(self.gold.output_rows(f.rows), True)
            elif all(h.full for h in hits) and len({h.param for h in hits}) == 1:
                full.append(i)
            else:
                instrs = sorted({self.works[u.op].index for h in hits for u in h.uses})
                if len(hits) == 1 and len(instrs) == 1 and is_stackable(self.gold, instrs[0]):
                    stacks.setdefault(instrs[0], []).append(i)
                else:
                    out[i] = self._run_alone(hits, instrs, f.rows)
        if full:
            plain = []
            for i in full:
                param, corruption = self.hits_corruption([h for h in faults[i].hits if h.uses and self._changes(h)])
                plain.append(Fault(param, corruption, faults[i].rows))
            for i, r in zip(full, self.inj.evaluate(plain)):
                out[i] = PartialResult(r.output, r.early_masked)
        for start, members in stacks.items():
            self._run_stacked(start, [faults[i] for i in members], members, out)
        return [r for r in out if r is not None]

    def _changes(self, hit: ElementHit) -> bool:
        new, old = self.values(hit)
        return np.float32(new).view(np.uint32) != np.float32(old).view(np.uint32)

    def _run_alone(self, hits: list[ElementHit], instrs: list[int], rows: np.ndarray) -> PartialResult:
        gold = self.gold
        dirty: dict[str, np.ndarray] = {}
        for i in range(instrs[0], instrs[-1] + 1):
            inst = gold.instructions[i]
            reads = any(n in dirty for n in inst.inputs if n)
            if i not in instrs and not reads:
                continue
            get = lambda name: dirty.get(name, gold.tensors[name])  # noqa: E731
            here = [(h, [u for u in h.uses if self.works[u.op].index == i]) for h in hits]
            here = [(h, uses) for h, uses in here if uses]
            if any(u.kind == "whole" for _, uses in here for u in uses):
                outs = list(KERNELS[inst.op](inst, self._args(inst, [h for h, _ in here], get)))
            else:
                if reads:
                    outs = list(KERNELS[inst.op](inst, [get(n) if n else None for n in inst.inputs]))
                else:
                    outs = [gold.tensors[o] for o in inst.outputs]
                if here:
                    outs[0] = np.array(outs[0], copy=True)
                    for h, uses in here:
                        self._patch(inst, uses, outs[0], get, h)
            for name, value in zip(inst.outputs, outs):
                if equal(value, gold.tensors[name]):
                    dirty.pop(name, None)
                else:
                    dirty[name] = value
        final = propagate(gold, instrs[-1] + 1, dirty, None, [self.batch], {}, None) if dirty else None
        if final is None:
            if gold.output in dirty:
                return PartialResult(np.asarray(dirty[gold.output])[rows], False)
            return PartialResult(gold.output_rows(rows), True)
        return PartialResult(np.asarray(final[0])[rows], False)

    def _args(self, inst, hits: list[ElementHit], get) -> list:
        """Inputs of ``inst`` with the hit parameters' corrupted values (a vector op's recompute)."""
        by_param: dict[str, list[ElementHit]] = {}
        for h in hits:
            by_param.setdefault(h.param, []).append(h)
        values = {}
        for group in by_param.values():
            param, corruption = self.hits_corruption(group)
            values[param] = self.inj.corrupted_value(Fault(param, corruption, np.arange(1)))
        return [None if not n else values.get(n, get(n)) for n in inst.inputs]

    def _run_stacked(self, start: int, faults: Sequence[HitFault], ids: list[int],
                     out: list[PartialResult | None]) -> None:
        gold = self.gold
        inst = gold.instructions[start]
        name = inst.outputs[0]
        golden = gold.tensors[name]
        alive, parts, sizes, rows_parts = [], [], [], []
        for j, f in enumerate(faults):
            hit = f.hits[0] if len(f.hits) == 1 else next(h for h in f.hits if h.uses and self._changes(h))
            if any(u.kind == "whole" for u in hit.uses):
                patched = np.asarray(KERNELS[inst.op](inst, self._args(inst, [hit], lambda n: gold.tensors[n]))[0])
            else:
                patched = np.array(golden, copy=True)
                self._patch(inst, list(hit.uses), patched, lambda n: gold.tensors[n], hit)
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
    def _patch(self, inst, uses: list, out: np.ndarray, get, hit: ElementHit) -> None:
        """Apply ``uses`` of ``hit`` to ``out`` (the instruction's first output, in place)."""
        new, old = self.values(hit)
        golden_out = self.gold.tensors[inst.outputs[0]]
        for use in uses:
            work = self.works[use.op]
            if isinstance(work, GatherWork):
                new_row, old_row = self._rows(work, hit, use)
                lookup_patch(inst, work, use, out, get, new_row, old_row)
                continue
            if not isinstance(work, GemmWork) or work.swapped:
                raise PatchError(f"op {work.name!r}: partial corruption of a {getattr(work, 'op', '?')} "
                                 "parameter is not supported")
            bias = self.gold.tensors[work.bias.param] if work.bias is not None else None
            if work.op == "conv":
                conv_patch(inst, work, use, out, get, golden_out, bias,
                           self.program.parameters[work.weight.param].shape, new, old)
            else:
                gemm_patch(inst, work, use, out, get, golden_out, bias, new, old)

    def _rows(self, work: GatherWork, hit: ElementHit, use: Use) -> tuple[np.ndarray, np.ndarray]:
        """(new, old) fp32 values of the looked-up table row a lookup hit changes."""
        table = np.asarray(self.gold.tensors[work.table]).reshape(-1, work.dim)
        old_row = table[use.k].astype(np.float32)
        if use.kind == "lookup_scale":
            q = self.gold.stored(work.table).bits.reshape(-1, work.dim)[use.k].view(np.int8).astype(np.float32)
            return q * np.float32(np.uint32(hit.new_bits).view(np.float32)), old_row
        new_row = old_row.copy()
        new_row[use.n] = np.float32(self.values(hit)[0])
        return new_row, old_row
