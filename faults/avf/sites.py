"""Hardware fault sites and their resolution through the residency table.

A :class:`Site` is a single bit flip at one place and one cycle of the accelerator:

* ``hbm``            — byte ``address`` of the parameter region of HBM (parameters in program
  order, burst aligned: ``Schedule.hbm``, the layout ``simulate`` used), bit 0..7 of
  that byte, ``cycle``. Every transfer of that parameter element that *starts* at or after
  the cycle (HBM is read at the start of a transfer) carries the wrong value into SRAM; a flip
  before the first transfer equals the parameter-level fault on that bit.
* ``weight_sram`` / ``embedding_sram`` — byte ``address`` of the SRAM (slot·slot_bytes +
  offset), bit 0..7, ``cycle``. If a residency row holds that byte at the cycle
  (``write_cycle < cycle < evict_cycle``), the reads of that copy at cycles ≥ ``cycle`` see
  the wrong value; otherwise the slot is empty (masked). A copy whose element has no read left
  is dead (masked).
* ``pe``             — PE ``address = row·cols + col``, bit 0..weight_bits−1 of its weight
  register, ``cycle``. ws: PE(r,c) holds B[k0+r, n0+c] for a fold; the flip reaches the output
  rows whose MAC in that PE happens at ≥ cycle (``dataflow.first_affected``). os / is: the
  weight passes through the register for one cycle and is forwarded to the next PE of its
  column (os) / row (is), so the flip reaches the outputs of that PE and of the PEs after it.

Byte order: an element of ``weight_bytes`` bytes is little-endian, so byte j, bit b of an
element is stored bit ``8·j + b`` (bit 0 = LSB, as in :mod:`faults.common.fault_models`).

:meth:`SiteResolver.resolve` returns a :class:`Resolution`: the parameter element hit and the
exact reads (:class:`Use`) that see the wrong value, or a masked status (``empty``, ``dead``,
``unread`` = parameter bytes never transferred, ``padding``) found without running the network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import UserError
from accelsim.ir import Program
from accelsim.schedule.core import Schedule
from accelsim.schedule.dataflow import mac_cycle, sram_read_cycle
from accelsim.schedule.residency import STRUCTURES
from accelsim.schedule.tiling import EMBEDDING_SRAM, READER_ARRAY, READER_BIAS, READER_SCALE
from accelsim.schedule.workload import GemmWork
from accelsim.storage import SCALE_SUFFIX

from faults.inject.partial import Use

SITE_STRUCTURES = ("hbm", "weight_sram", "embedding_sram", "pe")
MASKED_STATUSES = ("empty", "dead", "unread", "padding")
FOLD_BLOCK = ("g", "m0", "m1", "k0", "k1", "n0", "n1", "start", "work")  # Schedule.folds columns


class SiteError(UserError, ValueError):
    """A site outside its structure, an unknown structure, or an inconsistent schedule."""


@dataclass(frozen=True)
class Site:
    """One bit flip: structure, byte address (PE index for ``pe``), bit, cycle (see module doc)."""

    structure: str
    address: int
    bit: int
    cycle: int


@dataclass(frozen=True)
class Resolution:
    """What a site hits. ``status``: ``live`` or one of :data:`MASKED_STATUSES`.

    ``share`` is the fraction of the element's reads in the inference that the uses are
    (output rows, lookups or vector-op reads; see ``accelsim.schedule.reach``); ``full`` is True
    when they are every read (the flip is then the parameter-level fault). ``row`` is the
    residency row hit (−1 if none).
    """

    site: Site
    status: str
    param: str | None = None
    element: int = -1
    element_bit: int = -1
    uses: tuple[Use, ...] = ()
    full: bool = False
    row: int = -1
    share: float = 0.0

    @property
    def masked(self) -> bool:
        return self.status != "live"

    @property
    def approximate(self) -> bool:
        """True when a vector op is taken as fully corrupted although only its later chunks
        read the flipped copy (which outputs those chunks produce is not modelled)."""
        return any(u.approx for u in self.uses)


class SiteResolver:
    """Resolves sites of one schedule of one program (module docstring).

    Everything comes from the schedule: the SRAM copies are ``schedule.segments`` (residency
    rows ``0 .. len(segments) − 1``), HBM addresses ``schedule.hbm``, fold blocks and start
    cycles ``schedule.folds``, read cycles the formulas of ``accelsim.schedule.dataflow``.
    """

    def __init__(self, schedule: Schedule, program: Program) -> None:
        hw = schedule.hw
        self.schedule, self.program = schedule, program
        self.res = schedule.residency
        self.c = self.res.cols
        self.rows_, self.cols_, self.dataflow = hw.array.rows, hw.array.cols, hw.array.dataflow
        self.wb = hw.precision.weight_bytes
        self.total_cycles = int(schedule.total_cycles)
        self.hbm = schedule.hbm
        self.param_names = self.hbm.parameter_names
        self.element_bytes = self.hbm.element_bytes
        if self.param_names[:len(program.parameters)] != tuple(program.parameters):
            raise SiteError("the schedule's parameters differ from the program's (schedule/program mismatch)")
        self.steps, self.segs, self.folds = schedule.steps, schedule.segments, schedule.folds
        self.nseg = len(self.segs)
        self.c_end = schedule.times.c_end
        with_w = np.array([isinstance(w, GemmWork) and w.weight is not None for w in schedule.works] + [False])
        self.pe_rows = self.res.select("pe")
        self.pe_fold = np.flatnonzero(with_w[self.folds.work])
        if len(self.pe_rows) != len(self.pe_fold):
            raise SiteError("PE residency rows do not match the weight folds")
        self.pe_write = self.c["write_cycle"][self.pe_rows]
        step_ids = np.arange(len(self.steps))
        self.fold_step_lo = np.searchsorted(self.folds.step, step_ids, side="left")
        self.fold_step_hi = np.searchsorted(self.folds.step, step_ids, side="right")
        self.segs_of_param = {p: np.flatnonzero(self.segs.param == p) for p in range(len(self.param_names))}
        self._all_uses: dict[tuple[int, int], int] = {}

    # ------------------------------------------------------------------ geometry
    def capacity_bits(self, structure: str) -> int:
        """Bits a site of ``structure`` is drawn from (HBM: the parameter region)."""
        self._check_structure(structure)
        if structure == "hbm":
            return self.hbm.region_bytes * 8
        return int(self.res.capacity_bits[structure])

    def site_from_bit(self, structure: str, bit_index: int, cycle: int) -> Site:
        """Site of the ``bit_index``-th bit of the structure (uniform sampling helper)."""
        if structure == "pe":
            width = self.wb * 8
            return Site(structure, int(bit_index // width), int(bit_index % width), int(cycle))
        return Site(structure, int(bit_index // 8), int(bit_index % 8), int(cycle))

    def _check_structure(self, structure: str) -> None:
        if structure not in SITE_STRUCTURES:
            raise SiteError(f"unknown structure {structure!r}; choose {', '.join(SITE_STRUCTURES)}")

    def check(self, site: Site) -> None:
        """One-line :class:`SiteError` when the site is outside its structure or the inference."""
        self._check_structure(site.structure)
        if site.structure == "pe":
            units, what, bits = self.rows_ * self.cols_, "PE index (row*cols+col)", self.wb * 8
        else:
            units, what, bits = self.capacity_bits(site.structure) // 8, "byte address", 8
        if not 0 <= site.address < units:
            raise SiteError(f"{site.structure} {what} {site.address} out of range 0..{units - 1}")
        if not 0 <= site.bit < bits:
            raise SiteError(f"{site.structure} bit {site.bit} out of range 0..{bits - 1}")
        if not 0 <= site.cycle < self.total_cycles:
            raise SiteError(f"{site.structure} cycle {site.cycle} out of range 0..{self.total_cycles - 1}")

    def element_of(self, row: int, k: int, n: int) -> int:
        """Flat parameter element of GEMM-view position (k, n) of residency row ``row``."""
        _, base, sg, sk, sn = self.res.views[self.c["view"][row]]
        return int(base + self.c["g"][row] * sg + k * sk + n * sn)

    # ------------------------------------------------------------------ resolution
    def resolve(self, site: Site) -> Resolution:
        """The parameter element ``site`` hits and the reads that see it (module docstring)."""
        self.check(site)
        if site.structure == "pe":
            res = self._resolve_pe(site)
        elif site.structure == "hbm":
            res = self._resolve_hbm(site)
        else:
            res = self._resolve_sram(site)
        if res.status == "live":
            reached, total = sum(u.count for u in res.uses), self._count_all(res)
            res = Resolution(site, "live", res.param, res.element, res.element_bit, res.uses, reached == total,
                             res.row, reached / total)
        return res

    def _count_all(self, res: Resolution) -> int:
        key = (self.param_names.index(res.param), res.element)
        if key not in self._all_uses:
            self._all_uses[key] = sum(u.count for u in self._hbm_uses(key[0], key[1], -1)[0])
        return self._all_uses[key]

    def _resolve_sram(self, site: Site) -> Resolution:
        c = self.c
        sidx = STRUCTURES.index(site.structure)
        seg = np.flatnonzero((c["structure"][:self.nseg] == sidx) & (c["addr_lo"][:self.nseg] <= site.address)
                             & (c["addr_hi"][:self.nseg] > site.address)
                             & (c["write_cycle"][:self.nseg] < site.cycle) & (c["evict_cycle"][:self.nseg] > site.cycle))
        if seg.size == 0:
            return Resolution(site, "empty")
        row = int(seg[0])
        off = site.address - int(c["addr_lo"][row])
        local, byte = divmod(off, int(self.element_bytes[c["param"][row]]))
        width = int(c["n1"][row] - c["n0"][row])
        k, n = int(c["k0"][row]) + local // width, int(c["n0"][row]) + local % width
        param = self.param_names[int(c["param"][row])]
        element = self.element_of(row, k, n)
        uses = self._segment_uses(row, k, n, site.cycle)
        status = "live" if uses else "dead"
        return Resolution(site, status, param, element, 8 * byte + site.bit, tuple(uses), False, row)

    def _resolve_hbm(self, site: Site) -> Resolution:
        p, off = self.hbm.parameter_at(site.address)
        if off >= self.hbm.size_bytes[p]:
            return Resolution(site, "padding")
        element, byte = divmod(off, int(self.element_bytes[p]))
        uses, transfers = self._hbm_uses(p, element, site.cycle)
        param = self.param_names[p]
        if not transfers:
            return Resolution(site, "unread", param, int(element), 8 * byte + site.bit)
        status = "live" if uses else "dead"
        return Resolution(site, status, param, int(element), 8 * byte + site.bit, tuple(uses), False)

    def _param_index(self, p: int):
        """(sorted element ids, their segment, their flat position in the segment) of parameter p."""
        memo = self.__dict__.setdefault("_pindex", {})
        if p not in memo:
            segs = self.segs_of_param[p]
            parts = [self.res.elements(int(s)).reshape(-1) for s in segs]
            elems = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            seg_of = np.repeat(segs, [x.size for x in parts]) if parts else np.zeros(0, np.int64)
            pos = np.concatenate([np.arange(x.size) for x in parts]) if parts else np.zeros(0, np.int64)
            order = np.argsort(elems, kind="stable")
            memo[p] = (elems[order], seg_of[order], pos[order])
        return memo[p]

    def _hbm_uses(self, p: int, element: int, cycle: int) -> tuple[list[Use], int]:
        """Uses of every transfer of element ``element`` of parameter ``p`` starting at ≥ cycle."""
        elems, seg_of, pos = self._param_index(p)
        lo, hi = np.searchsorted(elems, element, "left"), np.searchsorted(elems, element, "right")
        uses: list[Use] = []
        for seg, at in sorted(zip(seg_of[lo:hi].tolist(), pos[lo:hi].tolist())):
            if self.segs.load_start[seg] < cycle:
                continue
            width = int(self.segs.n1[seg] - self.segs.n0[seg])
            k = int(self.segs.k0[seg]) + at // width
            n = int(self.segs.n0[seg]) + at % width
            uses += self._segment_uses(int(seg), k, n, -1)
        return uses, int(hi - lo)

    def _segment_uses(self, seg: int, k: int, n: int, cycle: int) -> list[Use]:
        """Reads of element (k, n) of SRAM segment ``seg`` at cycles ≥ ``cycle``."""
        segs, steps = self.segs, self.steps
        s_lo, s_hi = int(segs.read_first_step[seg]), int(segs.read_last_step[seg])
        op = int(segs.op[seg])
        g = int(segs.g[seg])
        reader = int(segs.reader[seg])
        if segs.structure[seg] == EMBEDDING_SRAM:
            reads = self.c_end[s_lo:s_hi + 1] - 1
            if (reads >= cycle).any():
                kind = "lookup_scale" if self.param_names[segs.param[seg]].endswith(SCALE_SUFFIX) else "lookup"
                return [Use(op, kind, g, k, n, np.array([segs.lookup[seg]], dtype=np.int64))]
            return []
        if reader == READER_ARRAY:
            f = self.folds.take(slice(self.fold_step_lo[s_lo], self.fold_step_hi[s_hi]))
            f = f.take((f.g == g) & (f.k0 <= k) & (f.k1 > k) & (f.n0 <= n) & (f.n1 > n))
            f = f.take(sram_read_cycle(self.dataflow, f.start, self.rows_, k - f.k0, n - f.n0) >= cycle)
            if len(f) == 0:
                return []
            rows = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in zip(f.m0, f.m1)])
            return [Use(op, "weight", g, k, n, np.unique(rows))]
        s = np.arange(s_lo, s_hi + 1)
        x = self.c_end[s] - 1
        if reader in (READER_BIAS, READER_SCALE):
            s = s[(steps.out_last[s] == 1) & (x >= cycle)]
            if s.size == 0:
                return []
            rows = np.concatenate([np.arange(steps.m0[i], steps.m1[i], dtype=np.int64) for i in s])
            if reader == READER_BIAS:
                return [Use(op, "bias", g, 0, n, np.unique(rows))]
            return self._scale_uses(seg, op, g, n, s)
        hit = x >= cycle
        return [Use(op, "whole", g, k, n, approx=not hit.all())] if hit.any() else []

    def _scale_uses(self, seg: int, op: int, g: int, n: int, read_steps: np.ndarray) -> list[Use]:
        """Uses of an int8 scale element read by the steps ``read_steps`` that finish output rows:
        ``scale`` (a weight's scale) or ``bias_scale`` (the bias's), of column n (per-channel
        scale) or of every column of the tile (per-tensor scale)."""
        steps, work = self.steps, self.schedule.works[op]
        name = self.param_names[int(self.segs.param[seg])]
        kind = "scale" if work.weight_scale is not None and name == work.weight_scale.param else "bias_scale"
        view = work.weight_scale if kind == "scale" else work.bias_scale
        per_column = view.sg != 0 or view.sn != 0
        uses: dict[int, list[np.ndarray]] = {}
        for i in read_steps:
            rows = np.arange(steps.m0[i], steps.m1[i], dtype=np.int64)
            for col in ([n] if per_column else range(int(steps.n0[i]), int(steps.n1[i]))):
                uses.setdefault(int(col), []).append(rows)
        return [Use(op, kind, g, 0, col, np.unique(np.concatenate(parts))) for col, parts in sorted(uses.items())]

    def _resolve_pe(self, site: Site) -> Resolution:
        r, col = divmod(site.address, self.cols_)
        j = int(np.searchsorted(self.pe_write, site.cycle, side="left")) - 1
        if j < 0 or self.c["evict_cycle"][self.pe_rows[j]] <= site.cycle:
            return Resolution(site, "empty")
        row = int(self.pe_rows[j])
        g, m0, m1, k0, k1, n0, n1, t0, op = self.folds.row(int(self.pe_fold[j]), FOLD_BLOCK)
        mb, kb, nb = m1 - m0, k1 - k0, n1 - n0
        # streamed position whose MAC in PE(r, col) happens at the flip's cycle (may be < 0)
        pos = site.cycle - int(mac_cycle(self.dataflow, t0, self.rows_, 0, r, col))
        if self.dataflow == "ws":
            if r >= kb or col >= nb:
                return Resolution(site, "empty", row=row)
            k, n = k0 + r, n0 + col
            first = max(0, pos)
        elif self.dataflow == "os":  # pos: the K index passing PE(r, col)
            if r >= mb or col >= nb or pos < 0:
                return Resolution(site, "empty", row=row)
            k, n, first = k0 + min(pos, kb - 1), n0 + col, (r if pos < kb else mb)
        else:  # is: pos is the N index passing PE(r, col)
            if r >= kb or col >= mb or pos < 0:
                return Resolution(site, "empty", row=row)
            k, n, first = k0 + r, n0 + min(pos, nb - 1), (col if pos < nb else mb)
        param = self.param_names[int(self.c["param"][row])]
        element = self.element_of(row, k, n)
        if first >= mb:
            return Resolution(site, "dead", param, element, site.bit, row=row)
        use = Use(op, "weight", g, k, n, np.arange(m0 + first, m1, dtype=np.int64))
        return Resolution(site, "live", param, element, site.bit, (use,), False, row)

