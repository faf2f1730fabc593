"""Statistics of fault-injection campaigns (one import for callers).

* Binomial intervals for one proportion (Wilson, Clopper–Pearson) and :class:`Estimate`:
  :mod:`faults.common.binomial`.
* Pooled estimates — strata weighted by population share, rates per (fault, input) pair —
  with intervals that keep their coverage (checked by simulation): :mod:`faults.common.intervals`.
* Adaptive sample size (two-stage design, unbiased): :mod:`faults.common.sequential`.
* Sample size of Leveugle et al., "Statistical fault injection: quantified error and
  confidence", DATE 2009 (:func:`leveugle_sample_size`). The paper's formula
  ``n = N / (1 + e² (N-1) / (t² p (1-p)))`` assumes draws *without* replacement from the
  ``N`` faults; campaigns draw *with* replacement, where the finite-population correction
  does not apply and the size is ``t² p(1-p) / e²`` (``with_replacement=True``, the default).
  Example: a 192-fault cell at margin 0.05 gets 129 draws from the paper's formula — with
  replacement only ≈ 94 distinct faults, so the margin is not met — but needs 385 with
  replacement, more than the cell has: such a cell is enumerated instead (each fault exactly
  once; :func:`faults.pvf.plan.make_plan`).
"""
from __future__ import annotations

import math

from faults.common.binomial import (METHODS, Estimate, StatsError, beta_interval, clopper_pearson, estimate,
                                    half_width, interval, method_name, wilson, z_value)
from faults.common.intervals import clustered_rate, stratified
from faults.common.sequential import PLAN_CONFIDENCE, required_trials, two_stage_total

__all__ = ["METHODS", "Estimate", "StatsError", "beta_interval", "clopper_pearson", "estimate", "half_width",
           "interval", "method_name", "wilson", "z_value", "clustered_rate", "stratified", "PLAN_CONFIDENCE",
           "required_trials", "two_stage_total", "leveugle_sample_size", "should_stop"]


def leveugle_sample_size(
    population: float, margin: float, confidence: float = 0.95, p: float = 0.5, *, with_replacement: bool = True,
) -> int:
    """Faults to inject for error ``margin`` at ``confidence`` (rounded up, at most ``population``).

    ``with_replacement`` (default, how campaigns draw): ``t² p(1-p) / e²``; otherwise the
    paper's finite-population formula. A result equal to ``population`` means: enumerate.
    """
    if not 0.0 < margin < 1.0:
        raise StatsError(f"margin must be in (0, 1), got {margin}")
    if not 0.0 < p < 1.0:
        raise StatsError(f"p must be in (0, 1), got {p}")
    t = z_value(confidence)
    infinite = t * t * p * (1 - p) / (margin * margin)
    if math.isinf(population):
        return int(math.ceil(infinite - 1e-9))
    if population < 1:
        raise StatsError(f"population must be >= 1, got {population}")
    if with_replacement:
        return int(min(population, math.ceil(infinite - 1e-9)))
    n = population / (1.0 + margin * margin * (population - 1) / (t * t * p * (1 - p)))
    return int(min(population, math.ceil(n - 1e-9)))


def should_stop(
    k: int, n: int, target_half_width: float, confidence: float = 0.95, method: str = "wilson",
    min_trials: int = 30,
) -> bool:
    """The naive adaptive rule (stop once the interval is narrow enough). Biased low for rare
    events (:mod:`faults.common.sequential`); campaigns use :func:`two_stage_total` instead."""
    if n < min_trials:
        return False
    return half_width(k, n, confidence, method) <= target_half_width
