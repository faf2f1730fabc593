"""Predicted protection outcomes: the same upsets, decoded and classified exactly, with the
network run replaced by a read-weighted join with PVF.

:func:`predict_trials` strikes and classifies exactly the upsets :func:`faults.protect.evaluate.
evaluate_trials` would (same seed, same trials: DUE classes are identical), and for the data
that gets through (``silent``) gives the probability of an incorrect inference instead of
running it:

    P(SDC) = 1 − Π_hits Π_{bits b wrong in the hit element} (1 − R(stratum, b, share_hit)),

``share`` being the share of the batch's samples the corruption reaches and ``R`` the
probability that a single flip of bit b in the parameter's stratum, seen by only that share of
the batch, makes the inference incorrect (:class:`BitPvf`, from a whole-batch PVF campaign
stratified by stratum × bit position). A whole-batch trial records how many of the batch's B
samples went wrong (k); a corruption that reaches r of the samples is taken to reach r drawn
without replacement (the batch's samples are exchangeable), so

    R(r / B) = mean over the stratum's trials of 1 − C(B − k, r) / C(B, r)

(linear between the integers around a fractional r). At r = B this is the batch PVF; at r = 1
the per-sample PVF. Scaling the batch PVF by r/B instead would understate R wherever one flip
breaks many samples at once (an exponent flip in a weight register breaks most of them).

The samples reached are those owning an output row of a read the corruption reaches (rows of a
GEMM view are sample-major: row // (M / B); lookups likewise): a sample counts as reached when
any of its rows is — a conv weight corrupted in a PE register for the last 93 of a sample's 784
output positions breaks that sample about as often as a corruption of all of them, while the
share of its reads (93/784) would say a ninth. Where rows do not map to samples (a swapped GEMM,
M not a multiple of B) the share of the element's reads stands in (the read-weighted join,
``accelsim.schedule.reach``).
Flips of different bits are taken as independent. Words zeroed by the ``zero`` policy are
predicted masked (zeroing a weight is rarely harmful, and no PVF measures it): the
confirmation by injection tells how far that holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from accelsim.schedule.workload import GatherWork, GemmWork

from faults.avf.context import AvfContext
from faults.common import stats
from faults.common.scales import base_of
from faults.pvf import results
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import CampaignConfig
from faults.pvf.targets import labels, parameter_spec
from faults.protect.evaluate import classify, strike
from faults.protect.geometry import Area
from faults.protect.upsets import UpsetModel


@lru_cache(maxsize=4096)
def _missed(batch: int, reached: int) -> np.ndarray:
    """``[batch + 1]``: for k wrong samples of ``batch``, C(batch − k, reached) / C(batch, reached),
    the probability that ``reached`` samples drawn without replacement miss every wrong one."""
    out = np.zeros(batch + 1)
    out[0] = 1.0  # no wrong sample: always missed (exactly, not through lgamma's rounding)
    for k in range(1, batch + 1):
        if batch - k >= reached:
            out[k] = math.exp(math.lgamma(batch - k + 1) - math.lgamma(batch - k - reached + 1)
                              - math.lgamma(batch + 1) + math.lgamma(batch - reached + 1))
    out.flags.writeable = False  # cached and shared
    return out


def reach_probability(wrong: np.ndarray, batch: int, share: float) -> float:
    """P(incorrect inference) when a share of the batch's reads sees the corruption.

    ``wrong``: ``[batch + 1]`` counts of whole-batch trials by how many samples went wrong;
    ``share`` in [0, 1]. Returns the mean over those trials of 1 − C(B − k, r)/C(B, r), r = share·B,
    linear between the integers around r (module docstring).
    """
    trials = float(wrong.sum())
    if trials == 0 or share <= 0.0:
        return 0.0
    reached = min(1.0, share) * batch
    low = int(math.floor(reached))
    frac = reached - low
    hit_low = 1.0 - float(wrong @ _missed(batch, low)) / trials
    hit_high = hit_low if frac == 0.0 else 1.0 - float(wrong @ _missed(batch, low + 1)) / trials
    return min(1.0, max(0.0, (1.0 - frac) * hit_low + frac * hit_high))


@dataclass(frozen=True)
class BitPvf:
    """Whole-batch PVF by (stratum, stored part, bit position): per key a histogram ``[batch + 1]``
    of trials by the number of the batch's samples they made wrong, with the stratum's pooled
    histogram as the fallback for a bit without trials."""

    by: str
    batch: int
    wrong: Mapping[tuple[str, str, int], np.ndarray] = field(repr=False)
    pooled: Mapping[tuple[str, str], np.ndarray] = field(repr=False)

    def key(self, ctx: AvfContext, param: str) -> tuple[str, str]:
        spec = parameter_spec(ctx.program, param)
        return labels(spec)["group" if self.by == "group" else self.by], ("scale" if base_of(param) else "value")

    def _histogram(self, ctx: AvfContext, param: str, bit: int) -> np.ndarray | None:
        stratum, part = self.key(ctx, param)
        counts = self.wrong.get((stratum, part, int(bit)))
        return self.pooled.get((stratum, part)) if counts is None else counts

    def mean(self, ctx: AvfContext, param: str) -> float:
        """Batch PVF of a flip of a uniformly random bit of ``param`` (its stratum's)."""
        counts = self.pooled.get(self.key(ctx, param))
        return 0.0 if counts is None else reach_probability(counts, self.batch, 1.0)

    def pvf(self, ctx: AvfContext, param: str, bit: int, share: float = 1.0) -> float:
        """P(incorrect inference) of a flip of ``bit`` of ``param`` that reaches ``share`` of its
        reads (1: the batch PVF of the bit)."""
        counts = self._histogram(ctx, param, bit)
        return 0.0 if counts is None else reach_probability(counts, self.batch, share)


def bit_pvf(ctx: AvfContext, pvf_dir: str | Path, trials: int, seed: int, by: str = "component",
            workers: int = 1, progress: bool = False) -> BitPvf:
    """Run (or resume) the whole-batch PVF campaign by ``by`` × bit position and tabulate it."""
    config = CampaignConfig(fault="sbf", dtypes=(ctx.dtype,), by=(by, "bit"), trials=trials, seed=seed,
                            criterion=ctx.criterion.text, output=ctx.output, inputs_per_trial=0,
                            nonfinite=ctx.nonfinite)
    run_campaign(ctx.program, ctx.inputs, config, str(pvf_dir), workers=workers, progress=progress)
    _, _, rows = results.load(pvf_dir, criterion=ctx.criterion.text, nonfinite=ctx.nonfinite)
    batch = int(rows[0]["n_inputs"]) if rows else int(ctx.batch)
    wrong: dict[tuple[str, str, int], np.ndarray] = {}
    pooled: dict[tuple[str, str], np.ndarray] = {}
    for t in rows:
        if int(t["n_inputs"]) != batch:
            raise ValueError(f"{pvf_dir}: trials judged on {t['n_inputs']} and on {batch} inputs; "
                             "a whole-batch campaign judges every trial on the whole batch")
        stratum = str(t["grp"] if by == "group" else t[by])
        part = "scale" if t["role"] == "scale" else "value"
        k = min(batch, max(int(t["n_sdc"]), 1)) if int(t["outcome"]) == 1 else 0
        wrong.setdefault((stratum, part, int(t["bit"])), np.zeros(batch + 1))[k] += 1
        pooled.setdefault((stratum, part), np.zeros(batch + 1))[k] += 1
    return BitPvf(by, batch, wrong, pooled)


def samples_reached(ctx: AvfContext, hit) -> int | None:
    """How many of the batch's samples own an output row of a read ``hit`` reaches, or None when
    the rows of some read do not map to samples (module docstring)."""
    batch = ctx.batch
    samples: set[int] = set()
    for use in hit.uses:
        if use.kind == "whole":
            return batch
        work = ctx.schedule.works[use.op]
        if isinstance(work, GemmWork) and not work.swapped and work.m % batch == 0:
            per_sample = work.m // batch
        elif isinstance(work, GatherWork) and work.rows.size % batch == 0:
            per_sample = work.rows.size // batch
        else:
            return None
        samples.update((np.asarray(use.rows, dtype=np.int64) // per_sample).tolist())
    return len(samples)


def sdc_probability(ctx: AvfContext, hits: Sequence, pvf: BitPvf) -> float:
    """P(incorrect inference) of element hits that get through (module docstring)."""
    keep = 1.0
    for h in hits:
        reached = samples_reached(ctx, h)
        share = h.share if reached is None else reached / ctx.batch
        mask = ctx.injector.stored_bits(h.param, h.element) ^ h.new_bits
        bit = 0
        while mask:
            if mask & 1:
                keep *= 1.0 - pvf.pvf(ctx, h.param, bit, share)
            mask >>= 1
            bit += 1
    return 1.0 - keep


def predict_trials(ctx: AvfContext, areas: tuple[Area, ...], upset: UpsetModel, structure: str,
                   trials: Sequence[int], seed: int, pvf: BitPvf) -> list[dict]:
    """One row per trial: its class (exact) and the predicted P(SDC) (module docstring)."""
    out = []
    for t in trials:
        s = strike(ctx, areas, upset, seed, structure, t)
        cls, hits = classify(ctx, s)
        p = sdc_probability(ctx, hits, pvf) if cls == "silent" else 0.0
        out.append({"structure": structure, "trial": int(t), "cls": cls, "p_sdc": p,
                    "true_due": int(cls == "true_due"), "false_due": int(cls == "false_due")})
    return out


@dataclass(frozen=True)
class PredictedRates:
    """Per-upset rates of predicted trials with intervals.

    ``sdc`` = mean predicted P(SDC); its interval is Wilson's with the expected count Σ p as the
    successes (conservative for a mean of values in [0, 1], whose variance is at most
    μ(1 − μ)); it covers the sampling of upsets only, not the PVF table's own uncertainty.
    DUE rates are exact counts of classified trials (Wilson).
    """

    trials: int
    sdc: float
    sdc_lo: float
    sdc_hi: float
    due: float
    due_lo: float
    due_hi: float
    false_due: float


def predicted_rates(rows: Sequence[dict], confidence: float = 0.95) -> PredictedRates:
    """:class:`PredictedRates` of :func:`predict_trials` rows."""
    n = len(rows)
    if n == 0:
        raise ValueError("no predicted trials")
    expected = float(np.sum([r["p_sdc"] for r in rows]))
    due = sum(r["true_due"] + r["false_due"] for r in rows)
    s_lo, s_hi = stats.wilson(expected, n, confidence)
    d_lo, d_hi = stats.wilson(due, n, confidence)
    return PredictedRates(n, expected / n, s_lo, s_hi, due / n, d_lo, d_hi, sum(r["false_due"] for r in rows) / n)
