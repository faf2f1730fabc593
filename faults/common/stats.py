"""Statistics of fault-injection campaigns.

* Binomial intervals for a PVF estimate ``k / n``: Wilson score (no continuity correction)
  and Clopper–Pearson (exact, from beta quantiles); both behave near 0 and 1, unlike the
  normal approximation. They equal scipy's ``binomtest(k, n).proportion_ci(method=
  "wilson" | "exact")``.
* Sample size of Leveugle et al., "Statistical fault injection: quantified error and
  confidence", DATE 2009: ``n = N / (1 + e^2 (N-1) / (t^2 p (1-p)))`` for a fault population
  of ``N`` faults, margin ``e``, confidence quantile ``t`` and expected proportion ``p``
  (0.5 is the conservative choice); ``N = inf`` gives ``t^2 p(1-p) / e^2``.
* Adaptive stopping: a stratum stops once its interval half-width is at most the requested
  one (checked on complete rounds, so the decision does not depend on worker count).
* Clustered trials (several inputs share one fault): the per-fault outcome ("incorrect on
  any of its inputs") is a plain binomial over faults; the per-(fault, input) rate gets an
  interval on a Kish effective sample size ``n_pairs / deff`` with the design effect
  estimated from the between-fault variance, so the fault stays the sampling unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from statistics import NormalDist

import numpy as np

from accelsim.errors import UserError

METHODS = ("wilson", "clopper-pearson")
_METHOD_ALIASES = {"cp": "clopper-pearson", "exact": "clopper-pearson", "clopper_pearson": "clopper-pearson"}


class StatsError(UserError, ValueError):
    """Bad statistical input (one line)."""


def _check(k: float, n: float, confidence: float) -> None:
    if n < 0 or k < 0 or k > n:
        raise StatsError(f"need 0 <= k <= n, got k={k} n={n}")
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")


def method_name(method: str) -> str:
    name = _METHOD_ALIASES.get(method.lower(), method.lower())
    if name not in METHODS:
        raise StatsError(f"unknown interval method {method!r}; choose wilson or clopper-pearson")
    return name


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile for ``confidence`` (1.95996... for 0.95)."""
    return float(NormalDist().inv_cdf(0.5 + confidence / 2.0))


def wilson(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials; ``(0, 1)`` when ``n == 0``."""
    _check(k, n, confidence)
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    if k == 0:
        lo = 0.0
    if k == n:
        hi = 1.0
    return lo, hi


def clopper_pearson(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson (exact) interval; ``(0, 1)`` when ``n == 0``."""
    _check(k, n, confidence)
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import beta  # only this interval needs scipy

    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def interval(k: float, n: float, confidence: float = 0.95, method: str = "wilson") -> tuple[float, float]:
    """Interval by ``method`` ("wilson" or "clopper-pearson")."""
    if method_name(method) == "wilson":
        return wilson(k, n, confidence)
    return clopper_pearson(k, n, confidence)


def half_width(k: float, n: float, confidence: float = 0.95, method: str = "wilson") -> float:
    """Half the interval's width (the quantity adaptive stopping compares)."""
    lo, hi = interval(k, n, confidence, method)
    return (hi - lo) / 2.0


def leveugle_sample_size(
    population: float, margin: float, confidence: float = 0.95, p: float = 0.5
) -> int:
    """Leveugle et al. (DATE 2009) number of faults to inject (rounded up, at most N)."""
    if not 0.0 < margin < 1.0:
        raise StatsError(f"margin must be in (0, 1), got {margin}")
    if not 0.0 < p < 1.0:
        raise StatsError(f"p must be in (0, 1), got {p}")
    t = z_value(confidence)
    infinite = t * t * p * (1 - p) / (margin * margin)
    if math.isinf(population):
        return int(math.ceil(infinite))
    if population < 1:
        raise StatsError(f"population must be >= 1, got {population}")
    n = population / (1.0 + margin * margin * (population - 1) / (t * t * p * (1 - p)))
    return int(min(population, math.ceil(n - 1e-9)))


@dataclass(frozen=True)
class Estimate:
    """A PVF estimate for one stratum."""

    k: int
    n: int
    pvf: float
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0


def estimate(k: int, n: int, confidence: float = 0.95, method: str = "wilson") -> Estimate:
    lo, hi = interval(k, n, confidence, method)
    return Estimate(int(k), int(n), (k / n) if n else float("nan"), lo, hi)


def should_stop(
    k: int, n: int, target_half_width: float, confidence: float = 0.95, method: str = "wilson",
    min_trials: int = 30,
) -> bool:
    """Adaptive stopping rule: enough trials and the interval is narrow enough."""
    if n < min_trials:
        return False
    return half_width(k, n, confidence, method) <= target_half_width


def clustered_rate(
    incorrect: Sequence[int], inputs: Sequence[int], confidence: float = 0.95, method: str = "wilson"
) -> Estimate:
    """Per-(fault, input) incorrect rate with the fault as the sampling unit.

    ``incorrect[i]`` of ``inputs[i]`` inputs were incorrect under fault ``i``. The interval is
    the chosen binomial interval on the Kish effective sample size ``n_eff = n_pairs / deff``,
    ``deff = var_cluster / var_binomial`` (ratio-estimator variance over faults), never < 1.
    """
    y = np.asarray(incorrect, dtype=np.float64)
    m = np.asarray(inputs, dtype=np.float64)
    total = float(m.sum())
    if total == 0:
        return Estimate(0, 0, float("nan"), 0.0, 1.0)
    p = float(y.sum() / total)
    faults = y.size
    deff = 1.0
    if faults > 1 and 0.0 < p < 1.0 and not np.all(m == 1):
        mbar = total / faults
        var_cluster = float(np.sum((y - p * m) ** 2) / (faults - 1)) / (faults * mbar * mbar)
        var_binom = p * (1 - p) / total
        deff = max(1.0, var_cluster / var_binom)
    n_eff = total / deff
    lo, hi = interval(p * n_eff, n_eff, confidence, method)
    return Estimate(int(y.sum()), int(total), p, lo, hi)


def stratified(
    k: Sequence[int], n: Sequence[int], weights: Sequence[float], confidence: float = 0.95, method: str = "wilson"
) -> Estimate:
    """Population PVF from strata: ``Σ w_c k_c/n_c`` (weights normalised, e.g. bits per stratum).

    The interval is the chosen binomial interval on the effective sample size
    ``p(1-p) / Σ w_c² p_c(1-p_c)/n_c`` (Korn & Graubard style); strata without trials are
    ignored. With one stratum it is the plain binomial interval.
    """
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    keep = n_arr > 0
    k_arr, n_arr, w = k_arr[keep], n_arr[keep], w[keep]
    if not keep.any() or w.sum() <= 0:
        return Estimate(0, 0, float("nan"), 0.0, 1.0)
    w = w / w.sum()
    p_c = k_arr / n_arr
    p = float(np.sum(w * p_c))
    total_n = int(n_arr.sum())
    if k_arr.size == 1:
        return estimate(int(k_arr[0]), int(n_arr[0]), confidence, method)
    var = float(np.sum(w * w * p_c * (1 - p_c) / n_arr))
    if var > 0 and 0 < p < 1:
        n_eff = min(p * (1 - p) / var, float(total_n))
    else:
        # every stratum at 0 (or 1): the effective size of the weighted design is 1 / Σ w_c²/n_c
        n_eff = 1.0 / float(np.sum(w * w / n_arr))
    lo, hi = interval(p * n_eff, n_eff, confidence, method)
    return Estimate(int(k_arr.sum()), total_n, p, lo, hi)
