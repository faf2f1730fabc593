"""AVF of each memory structure, two ways, with intervals.

**Direct.** Trial ``t`` of structure S draws, from ``Generator(PCG64(SeedSequence([seed, s, t])))``
(s = index of S in ``sites.SITE_STRUCTURES``), a bit uniformly over the structure's capacity
(HBM: over the parameter region, see below), a cycle uniformly over ``[0, T)`` (T = cycles of
the scheduled inference) and ``inputs_per_trial`` evaluation samples (default 1). The site is
resolved through the residency table (:mod:`faults.sites`): empty slots, padding, parameter
bytes never transferred and dead copies are masked *without running the network* (``unrun``);
live sites run through :mod:`faults.partial`. AVF_SDC = incorrect (sample) outputs / samples,
the site being the sampling unit (``stats.clustered_rate``: Wilson or Clopper–Pearson; with one
sample per site it is the plain binomial interval). DUE likewise (NaN/Inf outputs).

``mode="occupied"`` draws (bit, cycle) uniformly over the bit-cycles that residency rows hold
(HBM keeps ``uniform``) and scales the rate and its interval by the exact occupied share: the
same estimand, with far fewer wasted (empty-slot) sites when a structure is mostly empty.

**Joined.** ``AVF_S = Σ_p ACE_p(S) · PVF_p / (bits_S · T)`` with ACE_p(S) the ACE bit-cycles of
parameter p in S (``ResidencyTable.ace_by_parameter``) and PVF_p its per-input SDC rate from a
PVF campaign (same dtype, criterion, 1 input per trial). The interval is
``[Σ ACE·PVF_lo, Σ ACE·PVF_hi] / (bits_S·T)`` (each PVF interval bound propagated; conservative).

The joined form assumes a flip anywhere in an ACE interval corrupts *every* read of the
parameter, as the PVF fault does. It holds when a copy is the only one and is read once after
the flip (e.g. HBM before the first transfer, an SRAM tile read by one fold). It overestimates
when the flip reaches only part of the reads: a weight-stationary PE flip mid-fold (only later
output rows), an SRAM tile re-read by several folds or M tiles, an HBM flip between two
transfers. ``gap_explanation`` quantifies this from the direct trials.

HBM: its capacity (GiB) dwarfs the parameters; sites are drawn over the parameter region
(burst-aligned parameters, program order) and the AVF of the whole HBM is
``AVF_region · region_bits / capacity_bits`` (every other byte holds no parameter).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from accelsim.config import HardwareConfig
from accelsim.ir import Program
from accelsim.schedule import simulate

from faults import outcome as oc
from faults import stats
from faults.avf_store import AvfStore
from faults.campaign import CampaignConfig, resolve_criterion
from faults.fastpath import FastInjector
from faults.partial import PartialFault, PartialInjector
from faults.sites import SITE_STRUCTURES, Site, SiteResolver
from faults.targets import labels

DTYPE_OF_BYTES = {4: "fp32", 2: "fp16", 1: "int8"}
BYTES_OF_DTYPE = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


class AvfError(ValueError):
    """Bad AVF study input (one line)."""


class AvfContext:
    """Program + inputs + hardware: golden cache, schedule, site resolver, partial injector."""

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], hw: HardwareConfig,
                 dtype: str | None = None, criterion: str | None = None, output: str | None = None):
        wb = hw.precision.weight_bytes
        self.dtype = dtype or DTYPE_OF_BYTES[wb]
        if BYTES_OF_DTYPE.get(self.dtype) != wb:
            raise AvfError(f"dtype {self.dtype} stores {BYTES_OF_DTYPE.get(self.dtype)} bytes per weight but "
                           f"{hw.name} has precision.weight_bytes={wb}; pass --set precision.weight_bytes="
                           f"{BYTES_OF_DTYPE.get(self.dtype)}")
        self.program, self.inputs, self.hw = program, dict(inputs), hw
        inj = FastInjector(program, inputs, self.dtype, output)
        cache = inj.golden
        self.schedule = simulate(program, {k: np.shape(v) for k, v in cache.items()}, hw, index_values=cache)
        self.resolver = SiteResolver(self.schedule, program)
        self.injector = PartialInjector(program, inputs, self.schedule, self.dtype, output, injector=inj)
        self.criterion = oc.parse_criterion(resolve_criterion(
            program, inputs, CampaignConfig(criterion=criterion, output=output, dtypes=(self.dtype,))))
        self.output = output
        self.batch = inj.batch
        self.layer_of = {name: labels(p)["layer"] for name, p in program.parameters.items()}

    @property
    def total_cycles(self) -> int:
        return int(self.schedule.total_cycles)

    def ace_fraction(self, structure: str) -> float:
        """Σ ACE bit-cycles / (bits × T): the share of (bit, cycle) that is live (exact)."""
        rows = self.schedule.residency.select(structure)
        ace = float(self.schedule.residency["ace_bit_cycles"][rows].sum())
        return ace / (self.resolver.capacity_bits(structure) * self.total_cycles)


def site_rng(seed: int, structure: str, trial: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [int(seed), SITE_STRUCTURES.index(structure), int(trial)])))


def occupied(ctx: AvfContext, structure: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(rows, cumulative bit-cycle weights, occupied share) of the structure's residency rows.

    A row holds ``8·(addr_hi − addr_lo)`` bits during cycles ``write+1 .. evict−1``; rows of one
    SRAM / the PE array never share a (bit, cycle), so the union of these envelopes has exactly
    ``Σ weights`` bit-cycles and the occupied share is ``Σ weights / (bits × T)``.
    """
    memo = ctx.__dict__.setdefault("_occupied", {})
    if structure not in memo:
        res = ctx.schedule.residency
        rows = res.select(structure)
        span = np.maximum(0, np.minimum(res["evict_cycle"][rows], ctx.total_cycles)
                          - np.maximum(res["write_cycle"][rows] + 1, 0))
        w = 8 * (res["addr_hi"][rows] - res["addr_lo"][rows]) * span
        share = float(w.sum()) / (ctx.resolver.capacity_bits(structure) * ctx.total_cycles)
        memo[structure] = (rows, np.cumsum(w), share)
    return memo[structure]


def draw_site(ctx: AvfContext, structure: str, seed: int, trial: int, inputs_per_trial: int = 1,
              mode: str = "uniform"):
    """(site, input rows) of one trial: a bit and a cycle, then the samples.

    ``uniform``: uniform over the structure's bits × [0, T). ``occupied`` (not HBM): uniform over
    the bit-cycles held by some residency row (``occupied``); AVF = share × rate (see
    :func:`summarize_direct`), an unbiased, far more efficient estimate when little is occupied.
    """
    rng = site_rng(seed, structure, trial)
    if mode == "occupied" and structure != "hbm":
        rows, cum, _ = occupied(ctx, structure)
        if not cum.size or cum[-1] == 0:
            raise AvfError(f"structure {structure} holds no parameter on {ctx.hw.name}")
        j = int(rows[min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), cum.size - 1)])
        res = ctx.schedule.residency
        byte = int(rng.integers(res["addr_lo"][j], res["addr_hi"][j]))
        cycle = int(rng.integers(max(res["write_cycle"][j] + 1, 0), min(res["evict_cycle"][j], ctx.total_cycles)))
        bit = 8 * byte + int(rng.integers(8))
    else:
        bit = int(rng.integers(ctx.resolver.capacity_bits(structure)))
        cycle = int(rng.integers(ctx.total_cycles))
    m = inputs_per_trial
    if m <= 0 or m >= ctx.batch:
        rows = np.arange(ctx.batch)
    else:
        rows = np.sort(rng.choice(ctx.batch, size=m, replace=False))
    return ctx.resolver.site_from_bit(structure, bit, cycle), rows


def evaluate_sites(ctx: AvfContext, structure: str, trials: Sequence[int], sites: Sequence[Site],
                   rows: Sequence[np.ndarray]) -> list[dict]:
    """Resolve and (if live) run each site; one result row per trial (``avf_store.COLUMNS``)."""
    resolved = [ctx.resolver.resolve(s) for s in sites]
    live = [i for i, r in enumerate(resolved) if not r.masked]
    results = ctx.injector.evaluate([PartialFault(resolved[i], rows[i]) for i in live])
    outputs = dict(zip(live, (r.output for r in results)))
    golden = np.asarray(ctx.injector.inj.golden_output)
    out = []
    for i, (t, site, res) in enumerate(zip(trials, sites, resolved)):
        r = rows[i]
        n_sdc = n_due = 0
        dev = 0.0
        if i in outputs:
            rec = oc.compare(golden[r], outputs[i], r, probability=ctx.injector.inj.probability_output)
            outs = ctx.criterion.outcomes(rec)
            n_sdc, n_due = int(np.sum(outs == oc.SDC)), int(np.sum(outs == oc.DUE))
            dev = float(np.max(rec["dev"])) if rec.size else 0.0
        out.append(dict(
            structure=structure, trial=int(t), address=site.address, bit=site.bit, cycle=site.cycle,
            status=res.status, param=res.param, layer=ctx.layer_of.get(res.param) if res.param else None,
            element=res.element, element_bit=res.element_bit, full=int(res.full),
            n_reads=int(sum(u.count for u in res.uses)), unrun=int(res.masked), n_inputs=int(r.size),
            n_sdc=n_sdc, n_due=n_due, outcome=oc.DUE if n_due else (oc.SDC if n_sdc else oc.MASKED),
            max_abs_dev=dev, approx=int(res.approximate)))
    return out


def run_direct(ctx: AvfContext, structure: str, trials: int, seed: int, store: AvfStore | None = None,
               inputs_per_trial: int = 1, chunk_size: int = 128,
               on_chunk: Callable[[int], None] | None = None, mode: str = "uniform") -> list[dict]:
    """Run (or resume) ``trials`` direct trials of ``structure``; all its rows, by trial."""
    if structure not in SITE_STRUCTURES:
        raise AvfError(f"unknown structure {structure!r}; choose {', '.join(SITE_STRUCTURES)}")
    if ctx.resolver.capacity_bits(structure) == 0:
        raise AvfError(f"structure {structure} has no capacity on {ctx.hw.name}")
    done = store.done(structure) if store else set()
    todo = [t for t in range(trials) if t not in done]
    rows: list[dict] = []
    for lo in range(0, len(todo), chunk_size):
        chunk = todo[lo:lo + chunk_size]
        drawn = [draw_site(ctx, structure, seed, t, inputs_per_trial, mode) for t in chunk]
        part = evaluate_sites(ctx, structure, chunk, [d[0] for d in drawn], [d[1] for d in drawn])
        if store:
            store.append(part)
        rows += part
        if on_chunk:
            on_chunk(len(part))
    if store:
        return [r for r in store.rows(structure) if r["trial"] < trials]
    return rows


@dataclass(frozen=True)
class DirectAvf:
    """Direct AVF of one structure (rates per input sample; intervals at ``confidence``)."""

    structure: str
    trials: int
    live: int
    unrun: int
    sdc: int
    due: int
    avf_sdc: float
    sdc_lo: float
    sdc_hi: float
    avf_due: float
    due_lo: float
    due_hi: float
    live_fraction: float
    ace_fraction: float
    capacity_bits: int
    total_cycles: int


def summarize_direct(ctx: AvfContext, structure: str, rows: Sequence[dict], confidence: float = 0.95,
                     method: str = "wilson", mode: str = "uniform") -> DirectAvf:
    """Rates per input sample. ``occupied`` mode: rate among occupied sites × occupied share
    (exact), interval bounds scaled by the same share; live share likewise."""
    n = len(rows)
    sdc = stats.clustered_rate([r["n_sdc"] for r in rows], [r["n_inputs"] for r in rows], confidence, method)
    due = stats.clustered_rate([r["n_due"] for r in rows], [r["n_inputs"] for r in rows], confidence, method)
    live = sum(r["status"] == "live" for r in rows)
    f = occupied(ctx, structure)[2] if mode == "occupied" and structure != "hbm" else 1.0
    nan = float("nan")
    return DirectAvf(structure, n, live, sum(r["unrun"] for r in rows), sdc.k, due.k,
                     f * sdc.pvf if n else nan, f * sdc.lo, f * sdc.hi, f * due.pvf if n else nan,
                     f * due.lo, f * due.hi, f * live / n if n else nan, ctx.ace_fraction(structure),
                     ctx.resolver.capacity_bits(structure), ctx.total_cycles)


@dataclass(frozen=True)
class PvfEntry:
    """Per-input SDC / DUE rate of a parameter's faults with interval bounds."""

    sdc: float
    sdc_lo: float
    sdc_hi: float
    due: float
    due_lo: float
    due_hi: float


@dataclass(frozen=True)
class JoinedAvf:
    """Joined AVF of one structure; ``per_param``: (param, ACE bit-cycles, PVF, contribution)."""

    structure: str
    avf_sdc: float
    sdc_lo: float
    sdc_hi: float
    avf_due: float
    due_lo: float
    due_hi: float
    ace_fraction: float
    per_param: tuple[tuple[str, int, float, float], ...]


def joined_avf(ctx: AvfContext, structure: str, pvf: Mapping[str, PvfEntry]) -> JoinedAvf:
    """Σ_p ACE_p · PVF_p / (bits × T) with propagated PVF bounds (module docstring)."""
    ace = ctx.schedule.residency.ace_by_parameter()
    denom = float(ctx.resolver.capacity_bits(structure)) * ctx.total_cycles
    acc = np.zeros(6)
    per = []
    for name, by_structure in ace.items():
        a = by_structure.get(structure, 0)
        if not a:
            continue
        if name not in pvf:
            raise AvfError(f"no PVF for parameter {name!r} (resident in {structure}); run the PVF campaign "
                           "over every parameter")
        e = pvf[name]
        acc += a * np.array([e.sdc, e.sdc_lo, e.sdc_hi, e.due, e.due_lo, e.due_hi])
        per.append((name, int(a), e.sdc, a * e.sdc / denom))
    v = acc / denom
    return JoinedAvf(structure, *v.tolist(), ctx.ace_fraction(structure), tuple(per))


def gap_explanation(direct: DirectAvf, joined: JoinedAvf, rows: Sequence[dict]) -> str:
    """One paragraph: do the two agree, and where the joined assumptions fail, by how much."""
    overlap = direct.sdc_lo <= joined.sdc_hi and joined.sdc_lo <= direct.sdc_hi
    live = [r for r in rows if r["status"] == "live"]
    partial = [r for r in live if not r["full"]]
    full = [r for r in live if r["full"]]

    def rate(rs):
        n = sum(r["n_inputs"] for r in rs)
        return (sum(r["n_sdc"] for r in rs) / n) if n else float("nan")

    text = (f"{direct.structure}: direct {direct.avf_sdc:.3g} [{direct.sdc_lo:.3g}, {direct.sdc_hi:.3g}] vs "
            f"joined {joined.avf_sdc:.3g} [{joined.sdc_lo:.3g}, {joined.sdc_hi:.3g}]: "
            f"{'intervals overlap' if overlap else 'intervals DO NOT overlap'}. ")
    text += (f"Live share {direct.live_fraction:.3g} (ACE share {direct.ace_fraction:.3g}); "
             f"{len(partial)} of {len(live)} live sites reached only part of the reads "
             f"(SDC rate {rate(partial):.3g} vs {rate(full):.3g} for sites reaching every read). ")
    if partial:
        text += ("The joined form counts every ACE bit-cycle at the parameter's full PVF; a flip late in a "
                 "residency (after some reads, e.g. mid-fold in a weight-stationary PE, or in a tile re-read "
                 "by several folds) corrupts only the remaining reads, so it matters less than PVF assumes.")
    else:
        text += "Every live site reached every read of its element: the joined assumptions hold here."
    return text


def pvf_table(ctx: AvfContext, pvf_dir: str, by: str = "param", confidence: float = 0.95,
              method: str = "wilson") -> dict[str, PvfEntry]:
    """Parameter -> PVF entry from the campaign in ``pvf_dir`` (strata ``by``; a parameter takes
    its stratum's rate). The campaign must use the context's dtype and criterion."""
    from faults import report

    config, cells, trials = report.load(pvf_dir, criterion=ctx.criterion.text)
    if ctx.dtype not in tuple(config.get("dtypes", ())):
        raise AvfError(f"PVF campaign in {pvf_dir} has dtypes {config.get('dtypes')}, the study uses {ctx.dtype}")
    trials = [t for t in trials if t["dtype"] == ctx.dtype]
    groups = {g.value: g for g in report.group_table(trials, cells, by, confidence, method)}
    out: dict[str, PvfEntry] = {}
    for name, p in ctx.program.parameters.items():
        g = groups.get(labels(p)["group" if by == "group" else by] if by != "param" else name)
        if g is not None:
            out[name] = PvfEntry(g.input_rate, g.input_lo, g.input_hi, g.due_rate, g.due_lo, g.due_hi)
    return out


def run_pvf(ctx: AvfContext, pvf_dir: str, trials: int, seed: int, by: str = "param",
            workers: int = 1, progress: bool = False) -> dict[str, PvfEntry]:
    """Run (or resume) the PVF campaign the joined AVF needs (issue 4's engine), then its table."""
    from faults.campaign import run_campaign

    config = CampaignConfig(fault="sbf", dtypes=(ctx.dtype,), by=(by,), trials=trials, seed=seed,
                            criterion=ctx.criterion.text, output=ctx.output, inputs_per_trial=1)
    run_campaign(ctx.program, ctx.inputs, config, pvf_dir, workers=workers, progress=progress)
    return pvf_table(ctx, pvf_dir, by)
