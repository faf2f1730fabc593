"""Predicted protection outcomes: the same upsets, decoded and classified exactly, with the
network run replaced by a read-weighted join with PVF.

:func:`predict_trials` strikes and classifies exactly the upsets :func:`faults.protect.evaluate.
evaluate_trials` would (same seed, same trials: DUE classes are identical), and for the data
that gets through (``silent``) gives the probability of an incorrect inference instead of
running it:

    P(SDC) = 1 − Π_hits Π_{bits b wrong in the hit element} (1 − share_hit · PVF(stratum, b)),

``share`` being the fraction of the element's reads the corruption reaches (the read-weighted
join, ``accelsim.schedule.reach``) and ``PVF(stratum, b)`` the per-event PVF of a single flip of
bit b in the parameter's stratum (:class:`BitPvf`, from a whole-batch PVF campaign stratified
by stratum × bit position). Flips of different bits are taken as independent. Words zeroed by
the ``zero`` policy are predicted masked (zeroing a weight is rarely harmful, and no PVF
measures it): the confirmation by injection tells how far that holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

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


@dataclass(frozen=True)
class BitPvf:
    """Per-event PVF by (stratum, stored part, bit position), with the stratum's average as the
    fallback for a bit without trials."""

    by: str
    table: Mapping[tuple[str, str, int], float]
    average: Mapping[tuple[str, str], float]

    def key(self, ctx: AvfContext, param: str) -> tuple[str, str]:
        spec = parameter_spec(ctx.program, param)
        return labels(spec)["group" if self.by == "group" else self.by], ("scale" if base_of(param) else "value")

    def mean(self, ctx: AvfContext, param: str) -> float:
        """Per-event PVF of a flip of a uniformly random bit of ``param`` (its stratum's)."""
        return self.average.get(self.key(ctx, param), 0.0)

    def pvf(self, ctx: AvfContext, param: str, bit: int) -> float:
        stratum, part = self.key(ctx, param)
        value = self.table.get((stratum, part, int(bit)))
        return self.average.get((stratum, part), 0.0) if value is None else value


def bit_pvf(ctx: AvfContext, pvf_dir: str | Path, trials: int, seed: int, by: str = "component",
            workers: int = 1, progress: bool = False) -> BitPvf:
    """Run (or resume) the whole-batch PVF campaign by ``by`` × bit position and tabulate it."""
    config = CampaignConfig(fault="sbf", dtypes=(ctx.dtype,), by=(by, "bit"), trials=trials, seed=seed,
                            criterion=ctx.criterion.text, output=ctx.output, inputs_per_trial=0,
                            nonfinite=ctx.nonfinite)
    run_campaign(ctx.program, ctx.inputs, config, str(pvf_dir), workers=workers, progress=progress)
    _, _, rows = results.load(pvf_dir, criterion=ctx.criterion.text, nonfinite=ctx.nonfinite)
    counts: dict[tuple[str, str, int], list[int]] = {}
    for t in rows:
        key = (str(t["grp"] if by == "group" else t[by]), "scale" if t["role"] == "scale" else "value", int(t["bit"]))
        c = counts.setdefault(key, [0, 0])
        c[0] += int(t["outcome"] == 1)
        c[1] += 1
    table = {k: s / n for k, (s, n) in counts.items() if n}
    average: dict[tuple[str, str], list[int]] = {}
    for (stratum, part, _), (s, n) in counts.items():
        a = average.setdefault((stratum, part), [0, 0])
        a[0] += s
        a[1] += n
    return BitPvf(by, table, {k: s / n for k, (s, n) in average.items() if n})


def sdc_probability(ctx: AvfContext, hits: Sequence, pvf: BitPvf) -> float:
    """P(incorrect inference) of element hits that get through (module docstring)."""
    keep = 1.0
    for h in hits:
        mask = ctx.injector.stored_bits(h.param, h.element) ^ h.new_bits
        bit = 0
        while mask:
            if mask & 1:
                keep *= 1.0 - min(1.0, h.share * pvf.pvf(ctx, h.param, bit))
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
