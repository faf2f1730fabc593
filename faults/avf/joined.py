"""Joined AVF: residency (ACE bit-cycles) joined with PVF from a campaign, two ways.

**Full-PVF join** (``kind="full"``): ``AVF_S = Σ_p ACE_p(S) · PVF_p / (bits_S · T)`` with
ACE_p(S) the ACE bit-cycles of parameter p in S (``ResidencyTable.ace_by_parameter``) and PVF_p
its per-input SDC rate from a PVF campaign (same dtype, criterion, model and inputs, 1 input per
trial). It assumes a flip anywhere in an ACE interval corrupts *every* read of the parameter, as
the PVF fault does: exact when every live flip reaches every read (HBM before the first
transfer, an SRAM tile read by one fold), an upper bound for dense weights otherwise (a
weight-stationary PE flip mid-fold reaches only later output rows; an SRAM tile re-read by
several folds; an HBM flip between two transfers).

**Read-weighted join** (``kind="read_weighted"``): each ACE bit-cycle counts with the share of
the element's reads the flip still reaches (``ResidencyTable.ace_read_weighted``, closed forms
in ``accelsim.schedule.reach``): ``AVF_S = Σ_p ACE_rw_p(S) · PVF_p / (bits_S · T)``. A flip that
reaches a share f of an element's reads is taken to cause a wrong output with probability
f · PVF_p — exact per input sample when the reads are the sample's output rows (fully connected
layers), an approximation where one sample owns several rows (conv: rows are sample × output
position) or where the outcome is not linear in the rows reached. Embedding lookups: PVF_p is
measured on a uniformly drawn table element, which a given sample almost never reads, while a
looked-up copy is read by its sample by construction; each lookup therefore counts
``PVF_p / (B · P_read(p))``, with ``P_read(p)`` the fraction of (element, sample) pairs of the
batch where the sample reads the element (``PVF_p = P_read · PVF_p|read`` when the effect of a
read corruption does not depend on the row).

Intervals: the stratified interval over the PVF strata, each weighted by its parameters' (read-
weighted) ACE bit-cycles (:func:`stratified_join`, the PVF campaign's own interval, coverage
checked by simulation) where the campaign ran one input per trial; otherwise
``[Σ ACE·PVF_lo, Σ ACE·PVF_hi] / (bits_S·T)`` (each PVF bound propagated; conservative). DUE:
propagated bounds. :func:`ratio_interval` gives direct ÷ read-weighted join with a MOVER
interval combining the two.

A PVF campaign is joined only if it was measured on the same program and inputs (its store's
fingerprints); anything else is a one-line refusal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from accelsim.schedule.workload import GatherWork

from faults.common import stats
from faults.pvf import results
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import CampaignConfig
from faults.pvf.targets import labels, scale_parameters
from faults.avf.context import AvfContext, AvfError
from faults.avf.direct import DirectAvf


def check_provenance(ctx: AvfContext, pvf_dir: str, config: Mapping[str, Any]) -> None:
    """One-line :class:`AvfError` unless the campaign in ``pvf_dir`` ran on this program and inputs."""
    if config.get("program") != ctx.program_fingerprint:
        raise AvfError(f"PVF campaign in {pvf_dir} was measured on another model (program fingerprint "
                       f"{config.get('program')}, this study's is {ctx.program_fingerprint}); it cannot be joined")
    if config.get("inputs") != ctx.inputs_fingerprint:
        raise AvfError(f"PVF campaign in {pvf_dir} was measured on other inputs (fingerprint {config.get('inputs')}, "
                       f"this study's first {ctx.batch} samples give {ctx.inputs_fingerprint}); it cannot be joined")

@dataclass(frozen=True)
class PvfEntry:
    """Per-input SDC / DUE rate of a parameter's faults with interval bounds; ``stratum`` names
    the PVF stratum it comes from, ``k`` / ``n`` its per-input SDC count / inputs and ``faults``
    its trials (parameters of one stratum share one estimate; see :func:`stratified_join`)."""

    sdc: float
    sdc_lo: float
    sdc_hi: float
    due: float
    due_lo: float
    due_hi: float
    stratum: str = ""
    k: int = 0
    n: int = 0
    faults: int = 0


JOIN_KINDS = ("full", "read_weighted")


@dataclass(frozen=True)
class JoinedAvf:
    """Joined AVF of one structure (``kind`` in :data:`JOIN_KINDS`); ``per_param``: (param,
    (weighted) ACE bit-cycles, PVF, contribution)."""

    structure: str
    avf_sdc: float
    sdc_lo: float
    sdc_hi: float
    avf_due: float
    due_lo: float
    due_hi: float
    ace_fraction: float
    per_param: tuple[tuple[str, float, float, float], ...] = ()
    kind: str = "full"


def joined_avf(ctx: AvfContext, structure: str, pvf: Mapping[str, PvfEntry], kind: str = "full",
               window: int = 1, confidence: float = 0.95) -> JoinedAvf:
    """Σ_p ACE_p · PVF_p / (bits × T) with propagated PVF bounds; ``kind="read_weighted"`` uses
    the read-weighted ACE; ``window`` inferences between scrubs as in :func:`join_weights`."""
    weights = join_weights(ctx, structure, kind, window)
    denom = float(ctx.resolver.capacity_bits(structure)) * ctx.total_cycles
    acc = np.zeros(6)
    per = []
    for name, a in weights.items():
        if name not in pvf:
            raise AvfError(f"no PVF for parameter {name!r} (resident in {structure}); run the PVF campaign "
                           "over every parameter")
        e = pvf[name]
        acc += a * np.array([e.sdc, e.sdc_lo, e.sdc_hi, e.due, e.due_lo, e.due_hi])
        per.append((name, float(a), e.sdc, a * e.sdc / denom))
    v = acc / denom
    strat = stratified_join(weights, pvf, denom, confidence)
    if strat is not None:
        v[1], v[2] = strat[1], strat[2]
    return JoinedAvf(structure, *v.tolist(), ctx.ace_fraction(structure), tuple(per), kind)


def stratified_join(weights: Mapping[str, float], pvf: Mapping[str, PvfEntry], denom: float,
                    confidence: float = 0.95) -> tuple[float, float, float] | None:
    """(Σ w·PVF / denom, lo, hi) with the stratified interval of :func:`faults.common.stats.
    stratified` over the PVF strata (weight of a stratum = the bit-cycles of its parameters;
    coverage checked by simulation), or None when it does not apply: a stratum whose trials saw
    several inputs each (correlated inputs) or without counts."""
    names = [n for n in weights if n in pvf]
    if not names or any(pvf[n].faults <= 0 or pvf[n].n != pvf[n].faults for n in names):
        return None
    strata: dict[str, list[float]] = {}
    for n in names:
        e = pvf[n]
        entry = strata.setdefault(e.stratum or n, [0.0, float(e.n), e.sdc])
        entry[0] += weights[n]
    w = np.array([v[0] for v in strata.values()])
    if w.sum() <= 0:
        return None
    n_s = np.array([v[1] for v in strata.values()])
    k_s = np.clip(np.round(np.array([v[2] for v in strata.values()]) * n_s), 0, n_s)
    est = stats.stratified(k_s, n_s, w, confidence)
    scale = float(w.sum()) / denom
    point = float(np.sum(w * np.array([v[2] for v in strata.values()]))) / denom
    lo = est.lo * scale if est.lo > 1e-300 else 0.0  # below: an underflowed beta quantile, i.e. 0
    return point, min(point, lo), max(point, est.hi * scale)


def join_weights(ctx: AvfContext, structure: str, kind: str, window: int = 1) -> dict[str, float]:
    """Parameter -> bit-cycles of ``structure`` counted by the join of ``kind`` (non-zero only),
    per inference of a ``window`` of S inferences between HBM scrubs.

    S > 1 (see ``faults.avf.direct``): an HBM flip in inference j (uniform over the window) also
    corrupts every read of the S − 1 − j later inferences, each with the parameter's full PVF:
    the weight becomes (cold + (S − 1)/2 · T · read bits) / S, read bits = the parameter's bits
    in HBM rows (transferred in an inference). SRAM and PE copies do not outlive their inference:
    cold / S (the window has S inferences' outputs).
    """
    if kind not in JOIN_KINDS:
        raise AvfError(f"unknown join {kind!r}; choose {', '.join(JOIN_KINDS)}")
    res = ctx.schedule.residency
    rows = res.select(structure)
    correction = np.ones(rows.size) if kind == "full" else lookup_correction(ctx, rows)
    if kind == "full":
        values = res["ace_bit_cycles"][rows].astype(np.float64)
    else:
        values = res.ace_read_weighted[rows] * correction
    if window > 1:
        # later inferences read every copy: share 1 (lookups: each of the row's L_r lookups)
        later = (window - 1) / 2 * ctx.total_cycles * res["bits"][rows] * correction if structure == "hbm" else 0.0
        values = (values + later) / window
    sums = np.zeros(len(res.parameter_names))
    np.add.at(sums, res["param"][rows], values)
    return {name: float(sums[p]) for p, name in enumerate(res.parameter_names) if sums[p]}


def lookup_correction(ctx: AvfContext, rows: np.ndarray) -> np.ndarray:
    """Factor per residency row: ``L_r / (B · P_read(p))`` for copies of embedding rows read by
    lookups (HBM and embedding-SRAM rows of a looked-up table, L_r = lookups of that table row),
    1 for every other row (module docstring)."""
    res = ctx.schedule.residency
    out = np.ones(rows.size)
    emb = res.select("embedding_sram")
    if not emb.size:
        return out
    p_read = read_probability(ctx)
    key_of = lambda r: res["param"][r] * (int(res["k0"].max()) + 1) + res["k0"][r]  # noqa: E731
    keys, lookups = np.unique(key_of(emb), return_counts=True)
    tables = {int(p) for p in res["param"][emb]}
    for i, row in enumerate(rows):
        p = int(res["param"][row])
        if p in tables and p in p_read and res["structure"][row] in (0, 2):  # hbm, embedding_sram
            j = np.searchsorted(keys, key_of(row))
            count = lookups[j] if j < keys.size and keys[j] == key_of(row) else 0
            out[i] = count / (ctx.batch * p_read[p]) if count else 1.0
    return out


def read_probability(ctx: AvfContext) -> dict[int, float]:
    """Parameter index -> fraction of (element, sample) pairs of the batch in which the sample
    reads the element, for tables read by gathers / embedding bags whose lookups map to batch
    samples (leading index axis = the batch, or one bag per sample)."""
    memo = ctx.__dict__.setdefault("_read_probability", None)
    if memo is not None:
        return memo
    gold = ctx.fast.gold
    names = ctx.schedule.residency.parameter_names
    pairs: dict[int, set] = {}
    unmapped: set[int] = set()
    for work in ctx.schedule.works:
        if not isinstance(work, GatherWork) or work.table not in names:
            continue
        p = names.index(work.table)
        inst = ctx.program.instructions[work.index]
        rows_total = ctx.program.parameters[work.table].shape[0]
        sample = None
        if inst.op == "gather":
            idx = np.asarray(gold.tensors[inst.inputs[1]])
            if idx.ndim >= 1 and idx.shape[0] == ctx.batch:
                flat = idx.reshape(ctx.batch, -1).astype(np.int64)
                rows, sample = flat.reshape(-1), np.repeat(np.arange(ctx.batch), flat.shape[1])
        elif inst.op == "embedding_bag":
            layout = gold.bag_layout(inst)
            if layout is not None:
                rows, sample = layout[0], layout[1]
                keep = rows >= 0
                rows, sample = rows[keep], sample[keep]
        if sample is None:
            unmapped.add(p)
            continue
        rows = np.where(rows < 0, rows + rows_total, rows)
        pairs.setdefault(p, set()).update(zip(sample.tolist(), rows.tolist()))
    out = {}
    for p, got in pairs.items():
        if p not in unmapped and got:
            out[p] = len(got) / (ctx.program.parameters[names[p]].shape[0] * ctx.batch)
    ctx.__dict__["_read_probability"] = out
    return out


def ratio_interval(direct_sdc: Sequence[int], direct_inputs: Sequence[int], scale: float,
                   weights: Mapping[str, float], pvf: Mapping[str, PvfEntry], denom: float,
                   confidence: float = 0.95) -> tuple[float, float, float]:
    """(direct ÷ read-weighted join, lo, hi).

    The two estimates are independent (sites vs PVF trials), each with an interval whose coverage
    is checked by simulation: direct — :func:`faults.common.stats.clustered_rate` over the sites
    (``direct_sdc`` / ``direct_inputs`` per site, times ``scale``, the occupied share); joined —
    :func:`stratified_join` (or, where it does not apply, the propagated PVF bounds). They are
    combined by MOVER on the log scale (Zou & Donner 2008; Newcombe 2016): with a = log D, b =
    log J, ``lo = exp(a − b − √((a − log D_lo)² + (log J_hi − b)²))`` and ``hi = exp(a − b +
    √((log D_hi − a)² + (b − log J_lo)²))``. D = 0 gives (0, 0, D_hi / J_lo); J = 0 gives (NaN,
    D_lo / J_hi, ∞). ``tests/test_interval_coverage.py`` checks the coverage by simulation.
    """
    sdc = np.asarray(direct_sdc, dtype=np.float64)
    inputs = np.asarray(direct_inputs, dtype=np.float64)
    names = [n for n in weights if n in pvf]
    if not sdc.size or not names or inputs.sum() <= 0:
        return float("nan"), float("nan"), float("nan")
    d = stats.clustered_rate(sdc.astype(np.int64), inputs.astype(np.int64), confidence)
    d_point, d_lo, d_hi = scale * d.pvf, scale * d.lo, scale * d.hi
    joined = stratified_join(weights, pvf, denom, confidence)
    if joined is None:
        w = np.array([weights[n] for n in names])
        joined = tuple(float(np.sum(w * np.array([getattr(pvf[n], f) for n in names]))) / denom
                       for f in ("sdc", "sdc_lo", "sdc_hi"))
    j_point, j_lo, j_hi = joined
    return mover_ratio(d_point, d_lo, d_hi, j_point, j_lo, j_hi)


def mover_ratio(x: float, x_lo: float, x_hi: float, y: float, y_lo: float, y_hi: float) -> tuple[float, float, float]:
    """(x / y, lo, hi) from independent intervals of x and y (MOVER on the log scale; see
    :func:`ratio_interval`)."""
    with np.errstate(divide="ignore"):
        if y <= 0:
            return float("nan"), (x_lo / y_hi if y_hi > 0 else 0.0), float("inf")
        if x <= 0:
            return 0.0, 0.0, (x_hi / y_lo if y_lo > 0 else float("inf"))
        a, b = np.log(x), np.log(y)
        lo = a - b - np.sqrt((a - np.log(max(x_lo, 0.0))) ** 2 + (np.log(y_hi) - b) ** 2)
        hi = a - b + np.sqrt((np.log(x_hi) - a) ** 2 + (b - np.log(max(y_lo, 0.0))) ** 2)
    return float(x / y), float(np.exp(lo)), float(np.exp(hi))


def gap_explanation(direct: DirectAvf, joined: JoinedAvf, joined_rw: JoinedAvf, ratio: Sequence[float],
                    rows: Sequence[dict]) -> str:
    """One paragraph: how direct compares with both joins, and how much of the full-PVF join's
    excess the share of reads reached explains (from the direct sites' own resolutions)."""
    live = [r for r in rows if r["status"] == "live"]
    partial = [r for r in live if not r["full"]]
    mean_share = float(np.mean([r["share"] for r in live])) if live else float("nan")

    def rate(rs):
        n = sum(r["n_inputs"] for r in rs)
        return (sum(r["n_sdc"] for r in rs) / n) if n else float("nan")

    contains = ratio[1] <= 1.0 <= ratio[2]
    text = (f"{direct.structure}: direct {direct.avf_sdc:.3g} [{direct.sdc_lo:.3g}, {direct.sdc_hi:.3g}]; "
            f"read-weighted join {joined_rw.avf_sdc:.3g} [{joined_rw.sdc_lo:.3g}, {joined_rw.sdc_hi:.3g}]; "
            f"full-PVF join (upper bound) {joined.avf_sdc:.3g} [{joined.sdc_lo:.3g}, {joined.sdc_hi:.3g}]. "
            f"Direct / read-weighted = {ratio[0]:.3g} [{ratio[1]:.3g}, {ratio[2]:.3g}] "
            f"({'contains 1' if contains else 'excludes 1'}). ")
    text += (f"{len(partial)} of {len(live)} live sites reached only part of their element's reads (mean "
             f"share reached {mean_share:.3g}; SDC rate {rate(partial):.3g} vs "
             f"{rate([r for r in live if r['full']]):.3g} for sites reaching every read).")
    return text


def pvf_table(ctx: AvfContext, pvf_dir: str, by: str = "param", confidence: float = 0.95,
              method: str = "wilson") -> dict[str, PvfEntry]:
    """Parameter -> PVF entry from the campaign in ``pvf_dir`` (strata ``by``; a parameter takes
    its stratum's rate, computed apart for each role so that int8 scales — pseudo-parameters
    ``<name>#scale``, role ``scale`` — get their own). The campaign must use the context's
    dtype, criterion and non-finite policy."""
    config, cells, trials = results.load(pvf_dir, criterion=ctx.criterion.text, nonfinite=ctx.nonfinite)
    check_provenance(ctx, pvf_dir, config)
    if ctx.dtype not in tuple(config.get("dtypes", ())):
        raise AvfError(f"PVF campaign in {pvf_dir} has dtypes {config.get('dtypes')}, the study uses {ctx.dtype}")
    trials = [t for t in trials if t["dtype"] == ctx.dtype]
    column = "grp" if by == "group" else by
    groups: dict[tuple[str, str], Any] = {}
    inputs: dict[tuple[str, str], list[int]] = {}
    for part in ("value", "scale", "all"):  # scales apart from the values they scale
        mine = [t for t in trials if part == "all" or _part(t["role"]) == part]
        for g in results.group_table(mine, cells, by, confidence, method):
            groups[(g.value, part)] = g
        for t in mine:
            counts = inputs.setdefault((str(t[column]), part), [0, 0, 0])
            counts[0] += int(t["n_sdc"])
            counts[1] += int(t["n_inputs"])
            counts[2] += 1
    out: dict[str, PvfEntry] = {}
    params = list(ctx.program.parameters.values())
    if ctx.hw.precision.stores_scales:
        params += scale_parameters(ctx.program)
    for p in params:
        value = labels(p)[by if by != "group" else "group"] if by != "param" else p.name
        part = _part(p.role) if (value, _part(p.role)) in groups else "all"
        g = groups.get((value, part))
        if g is not None:
            k, n, faults = inputs.get((value, part), (0, 0, 0))
            out[p.name] = PvfEntry(g.input_rate, g.input_lo, g.input_hi, g.due_rate, g.due_lo, g.due_hi,
                                   f"{by}={value},{part}", k, n, faults)
    return out


def _part(role: str) -> str:
    return "scale" if role == "scale" else "value"


def run_pvf(ctx: AvfContext, pvf_dir: str, trials: int, seed: int, by: str = "param",
            workers: int = 1, progress: bool = False) -> dict[str, PvfEntry]:
    """Run (or resume) the PVF campaign the joined AVF needs, then its table (with int8 scales
    stored, strata ``by`` × role, so that scales get trials of their own)."""
    strata = (by,) if by == "param" or not ctx.hw.precision.stores_scales else (by, "role")  # scales apart
    config = CampaignConfig(fault="sbf", dtypes=(ctx.dtype,), by=strata, trials=trials, seed=seed,
                            criterion=ctx.criterion.text, output=ctx.output, inputs_per_trial=1,
                            nonfinite=ctx.nonfinite)
    run_campaign(ctx.program, ctx.inputs, config, pvf_dir, workers=workers, progress=progress)
    return pvf_table(ctx, pvf_dir, by)
