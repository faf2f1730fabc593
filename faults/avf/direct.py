"""Direct AVF of a memory structure: sample (bit, cycle) sites, resolve, run, count.

Trial ``t`` of structure S draws, from :func:`site_rng` (``Generator(PCG64(SeedSequence([seed,
s, t])))``, s = index of S in ``sites.SITE_STRUCTURES``), a bit uniformly over the structure's
capacity (HBM: over the parameter region, see below), a cycle uniformly over ``[0, T)`` (T =
cycles of the scheduled inference) and ``inputs_per_trial`` evaluation samples (default 1). The
site is resolved through the residency table (:mod:`faults.avf.sites`): empty slots, padding,
parameter bytes never transferred and dead copies are masked *without running the network*
(``unrun``); live sites run through :class:`faults.inject.PartialInjector`. AVF_SDC = incorrect
(sample) outputs / samples, the site being the sampling unit (``stats.clustered_rate``). DUE
likewise; a NaN/Inf output counts as the context's ``nonfinite`` policy says (SDC by default).

``mode="occupied"`` draws (bit, cycle) uniformly over the bit-cycles that residency rows hold
(HBM keeps ``uniform``) and scales the rate and its interval by the exact occupied share: the
same estimand, with far fewer wasted (empty-slot) sites when a structure is mostly empty.

HBM: its capacity (GiB) dwarfs the parameters; sites are drawn over the parameter region
(burst-aligned parameters, program order) and the AVF of the whole HBM is
``AVF_region · region_bits / capacity_bits`` (every other byte holds no parameter).

**Per sample and per event.** Each live site is run on ``inputs_per_trial`` samples of the
inference's batch (0 = all of them). Per-sample AVF = incorrect sample outputs / samples;
per-event AVF (inputs_per_trial = 0 only) = share of sites after which the inference — the batch
of B samples — has at least one incorrect output: the rate FIT counts.

**Scrub interval (multi-inference residency).** With ``window = S > 1`` the accelerator runs
inferences back to back on the evaluation batch and the weights in HBM persist between them
until a scrub/reload every S inferences. A site's cycle is drawn uniformly over the window's
S·T cycles: inference ``j = cycle // T`` sees the flip from cycle ``cycle % T`` on (as above),
and in HBM every later inference of the window reads the corrupted word on every transfer — the
parameter-level fault of that bit — so it is run once more as such. SRAM and PE copies are
reloaded by every inference: only inference j sees them. Per-sample AVF is then the share of
the window's S·B outputs that are incorrect; per-event AVF the share of sites after which at
least one inference of the window is incorrect (one upset = one failure event, however many
inferences it spoils before the scrub). S = 1 is the single cold inference.

**Execution.** Trials run in the fixed chunks ``[c·chunk, (c+1)·chunk)`` of each structure, on
a :class:`faults.common.executor.ChunkExecutor`: in this process, on N local worker processes
(fork: the context is inherited) or on Ray (each worker rebuilds the :class:`AvfContext` from
the picklable :class:`ContextSpec` — program, inputs, hardware config, dtype, criterion, output,
non-finite policy, placement bank, decode latency). A chunk is ``(structure, trials, seed,
inputs_per_trial, mode, window)``: everything a trial depends on besides the context, so the
stored rows are identical on 1 or N workers, on Ray and after an interruption.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from accelsim.config import HardwareConfig

from faults.common import outcome as oc
from faults.common import stats
from faults.common.executor import ChunkExecutor, as_program, program_state
from faults.inject import Fault, PartialFault
from faults.avf.context import AvfContext, AvfError
from faults.avf.sites import SITE_STRUCTURES, Site
from faults.avf.store import AvfStore

SAMPLING_MODES = ("uniform", "occupied")


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
    if structure not in memo or memo[structure][0] is not ctx.schedule:  # a re-scheduled variant: anew
        res = ctx.schedule.residency
        rows = res.select(structure)
        span = np.maximum(0, np.minimum(res["evict_cycle"][rows], ctx.total_cycles)
                          - np.maximum(res["write_cycle"][rows] + 1, 0))
        w = 8 * (res["addr_hi"][rows] - res["addr_lo"][rows]) * span
        share = float(w.sum()) / (ctx.resolver.capacity_bits(structure) * ctx.total_cycles)
        memo[structure] = (ctx.schedule, (rows, np.cumsum(w), share))
    return memo[structure][1]


def draw_site(ctx: AvfContext, structure: str, seed: int, trial: int, inputs_per_trial: int = 1,
              mode: str = "uniform", window: int = 1):
    """(site, input rows, inference) of one trial: a bit and a cycle, the samples, and (for a
    ``window`` of S > 1 inferences between scrubs) the inference j the flip happens in.

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
    inference = int(rng.integers(window)) if window > 1 else 0
    return ctx.resolver.site_from_bit(structure, bit, cycle), rows, inference


def evaluate_sites(ctx: AvfContext, structure: str, trials: Sequence[int], sites: Sequence[Site],
                   rows: Sequence[np.ndarray], inferences: Sequence[int] | None = None,
                   window: int = 1) -> list[dict]:
    """Resolve and (if live) run each site; one result row per trial (``avf.store.COLUMNS``).

    ``inferences``: the inference of the window each flip happens in (all 0 for ``window`` 1).
    """
    inferences = list(inferences) if inferences is not None else [0] * len(sites)
    resolved = [ctx.resolver.resolve(s) for s in sites]
    live = [i for i, r in enumerate(resolved) if not r.masked]
    results = ctx.injector.evaluate([PartialFault(resolved[i].param, resolved[i].element, resolved[i].element_bit,
                                                  resolved[i].uses, resolved[i].full, rows[i]) for i in live])
    outputs = dict(zip(live, (r.output for r in results)))
    # HBM persists across the window: later inferences see the parameter-level fault of the bit
    later = [i for i, r in enumerate(resolved) if structure == "hbm" and window > 1
             and inferences[i] < window - 1 and r.status in ("live", "dead")]
    faults = [Fault(*ctx.injector.hits_corruption([ctx.injector.hit(resolved[i])]), rows[i]) for i in later]
    full_outputs = dict(zip(later, (r.output for r in ctx.fast.evaluate(faults))))
    golden = np.asarray(ctx.fast.golden_output)
    out = []
    for i, (t, site, res) in enumerate(zip(trials, sites, resolved)):
        r = rows[i]
        (n_sdc, n_due, dev), (f_sdc, f_due, _) = _counts(ctx, golden, r, outputs.get(i)), \
            _counts(ctx, golden, r, full_outputs.get(i))
        repeats = window - 1 - inferences[i] if i in full_outputs else 0
        out.append(dict(
            structure=structure, trial=int(t), address=site.address, bit=site.bit, cycle=site.cycle,
            status=res.status, param=res.param, layer=ctx.layer_of.get(res.param) if res.param else None,
            element=res.element, element_bit=res.element_bit, full=int(res.full),
            n_reads=int(sum(u.count for u in res.uses)), unrun=int(res.masked), n_inputs=int(r.size),
            n_sdc=n_sdc, n_due=n_due, outcome=oc.DUE if n_due else (oc.SDC if n_sdc else oc.MASKED),
            max_abs_dev=dev, approx=int(res.approximate), share=float(res.share), inference=int(inferences[i]),
            n_sdc_later=f_sdc, n_due_later=f_due, window=int(window),
            window_sdc=n_sdc + repeats * f_sdc, window_due=n_due + repeats * f_due,
            window_inputs=int(window * r.size),
            event_sdc=int(n_sdc > 0 or (repeats > 0 and f_sdc > 0)),
            event_due=int(n_due > 0 or (repeats > 0 and f_due > 0))))
    return out


def _counts(ctx: AvfContext, golden: np.ndarray, rows: np.ndarray, output: np.ndarray | None):
    """(incorrect samples, non-finite samples, max |Δ|) of a faulty output on ``rows``."""
    if output is None:
        return 0, 0, 0.0
    rec = oc.compare(golden[rows], output, rows, probability=ctx.fast.probability_output)
    outs = ctx.criterion.outcomes(rec, ctx.nonfinite)
    dev = float(np.max(rec["dev"])) if rec.size else 0.0
    return int(np.sum(outs == oc.SDC)), int(np.sum(outs == oc.DUE)), dev


# ---------------------------------------------------------------------------- execution
@dataclass(frozen=True)
class ContextSpec:
    """The picklable data an :class:`AvfContext` is rebuilt from (``program`` may be its
    ``program_state``): :meth:`build` gives a context with the same golden run, schedule and
    resolver, hence the same trial rows."""

    program: Any
    inputs: Mapping[str, np.ndarray]
    hw: HardwareConfig
    dtype: str
    criterion: str
    output: str | None
    nonfinite: str
    bank: Any = None
    decode_cycles: Mapping[str, int] | None = None

    def build(self) -> AvfContext:
        return AvfContext(as_program(self.program), self.inputs, self.hw, self.dtype, self.criterion, self.output,
                          bank=self.bank, nonfinite=self.nonfinite, decode_cycles=self.decode_cycles)


def context_spec(ctx: AvfContext) -> ContextSpec:
    """What rebuilds ``ctx`` in another process."""
    return ContextSpec(ctx.program, ctx.inputs, ctx.hw, ctx.dtype, ctx.criterion.text, ctx.output, ctx.nonfinite,
                       ctx.bank, dict(ctx.decode_cycles))


class DirectEvaluator:
    """Worker side: evaluates chunks ``(structure, trials, seed, inputs_per_trial, mode,
    window)`` of direct trials on one context (rows as :func:`evaluate_sites` gives them)."""

    def __init__(self, ctx: AvfContext) -> None:
        self.ctx = ctx

    def run_chunk(self, chunk: tuple) -> list[dict]:
        structure, trials, seed, inputs_per_trial, mode, window = chunk
        drawn = [draw_site(self.ctx, structure, seed, t, inputs_per_trial, mode, window) for t in trials]
        return evaluate_sites(self.ctx, structure, list(trials), [d[0] for d in drawn], [d[1] for d in drawn],
                              [d[2] for d in drawn], window)


class ContextFactory:
    """Builds a worker's evaluator ``evaluator(ctx)`` (default :class:`DirectEvaluator`; any
    picklable callable taking an :class:`AvfContext` and returning an object with
    ``run_chunk``): on the context itself where it is at hand (this process, forked workers),
    else on one rebuilt from its :class:`ContextSpec` (pickling drops the context;
    :meth:`portable` sends the program as ``program_state``)."""

    def __init__(self, spec: ContextSpec, ctx: AvfContext | None = None,
                 evaluator: Callable[[AvfContext], Any] = DirectEvaluator) -> None:
        self.spec, self.ctx, self.evaluator = spec, ctx, evaluator

    @classmethod
    def of(cls, ctx: AvfContext, evaluator: Callable[[AvfContext], Any] = DirectEvaluator) -> "ContextFactory":
        return cls(context_spec(ctx), ctx, evaluator)

    def __call__(self) -> Any:
        return self.evaluator(self.ctx if self.ctx is not None else self.spec.build())

    def __getstate__(self) -> dict:
        return {"spec": self.spec, "evaluator": self.evaluator}

    def __setstate__(self, state: dict) -> None:
        self.spec, self.evaluator, self.ctx = state["spec"], state["evaluator"], None

    def portable(self) -> "ContextFactory":
        if isinstance(self.spec.program, dict):
            return ContextFactory(self.spec, None, self.evaluator)
        return ContextFactory(dataclasses.replace(self.spec, program=program_state(self.spec.program)), None,
                              self.evaluator)


def local_executor(ctx: AvfContext, workers: int = 1, backend: str = "local", key: str = "avf",
                   evaluator: Callable[[AvfContext], Any] = DirectEvaluator) -> ChunkExecutor:
    """An executor of chunks of trials on ``ctx`` (this process for one worker; forked workers
    inherit ``ctx``; Ray workers rebuild it). ``evaluator(ctx)`` evaluates a chunk: direct trials
    by default; a study with chunks of its own passes its evaluator class (picklable)."""
    return ChunkExecutor(ContextFactory.of(ctx, evaluator), workers, backend, key=key, local=evaluator(ctx))


def run_direct(ctx: AvfContext, structure: str, trials: int, seed: int, store: AvfStore | None = None,
               inputs_per_trial: int = 1, chunk_size: int = 128,
               on_chunk: Callable[[int], None] | None = None, mode: str = "uniform",
               window: int = 1, executor: ChunkExecutor | None = None,
               on_rows: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Run (or resume) direct trials ``0..trials-1`` of ``structure``; all their rows, by trial.

    Trials are evaluated in the fixed chunks ``[c·chunk_size, (c+1)·chunk_size)`` (live sites of
    a chunk are stacked), so results do not depend on interruptions or on where a chunk ran
    (``executor``: local workers or Ray; default this process); a chunk whose trials are all
    stored is skipped. ``on_chunk`` gets each finished chunk's trial count, ``on_rows`` its rows.
    """
    if structure not in SITE_STRUCTURES:
        raise AvfError(f"unknown structure {structure!r}; choose {', '.join(SITE_STRUCTURES)}")
    if ctx.resolver.capacity_bits(structure) == 0:
        raise AvfError(f"structure {structure} has no capacity on {ctx.hw.name}")
    done = store.done(structure) if store else set()
    chunks = ((structure, tuple(range(lo, min(lo + chunk_size, trials))), seed, inputs_per_trial, mode, window)
              for lo in range(0, trials, chunk_size)
              if not all(t in done for t in range(lo, min(lo + chunk_size, trials))))
    rows: list[dict] = []

    def record(part: list[dict]) -> None:
        if store:
            store.append(part)
        rows.extend(part)
        if on_chunk:
            on_chunk(len(part))
        if on_rows:
            on_rows(part)

    if executor is None:
        with local_executor(ctx) as ex:
            ex.run(chunks, record)
    else:
        executor.run(chunks, record)
    if store:
        return [r for r in store.rows(structure) if r["trial"] < trials]
    return sorted(rows, key=lambda r: r["trial"])


@dataclass(frozen=True)
class DirectAvf:
    """Direct AVF of one structure at ``confidence``: per input sample (``avf_sdc``, the window's
    outputs) and per event (``avf_event``: sites after which an inference is incorrect; NaN
    unless every site was run on the whole batch)."""

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
    events: int = 0
    avf_event: float = float("nan")
    event_lo: float = float("nan")
    event_hi: float = float("nan")
    due_events: int = 0
    avf_due_event: float = float("nan")
    due_event_lo: float = float("nan")
    due_event_hi: float = float("nan")
    window: int = 1


def summarize_direct(ctx: AvfContext, structure: str, rows: Sequence[dict], confidence: float = 0.95,
                     method: str = "wilson", mode: str = "uniform") -> DirectAvf:
    """Per-sample rates (the site is the sampling unit: cluster-aware interval) and, when every
    site ran on the whole batch, per-event rates (binomial over sites). ``occupied`` mode: rate
    among occupied sites × occupied share (exact), interval bounds scaled by the same share."""
    n = len(rows)
    inputs = [r["window_inputs"] for r in rows]
    sdc = stats.clustered_rate([r["window_sdc"] for r in rows], inputs, confidence, method)
    due = stats.clustered_rate([r["window_due"] for r in rows], inputs, confidence, method)
    live = sum(r["status"] == "live" for r in rows)
    f = occupied(ctx, structure)[2] if mode == "occupied" and structure != "hbm" else 1.0
    nan = float("nan")
    whole = n > 0 and all(r["n_inputs"] == ctx.batch for r in rows)
    events = sum(r["event_sdc"] for r in rows)
    due_events = sum(r["event_due"] for r in rows)
    ev = stats.estimate(events, n, confidence, method) if whole else None
    dv = stats.estimate(due_events, n, confidence, method) if whole else None
    window = max((r["window"] for r in rows), default=1)
    return DirectAvf(structure, n, live, sum(r["unrun"] for r in rows), sdc.k, due.k,
                     f * sdc.pvf if n else nan, f * sdc.lo, f * sdc.hi, f * due.pvf if n else nan,
                     f * due.lo, f * due.hi, f * live / n if n else nan, ctx.ace_fraction(structure),
                     ctx.resolver.capacity_bits(structure), ctx.total_cycles, events,
                     f * ev.pvf if ev else nan, f * ev.lo if ev else nan, f * ev.hi if ev else nan,
                     due_events, f * dv.pvf if dv else nan, f * dv.lo if dv else nan, f * dv.hi if dv else nan,
                     int(window))
