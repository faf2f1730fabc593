"""Binomial intervals for one proportion ``k / n`` and the :class:`Estimate` they produce.

* Wilson score (no continuity correction) and Clopper–Pearson (exact, from beta quantiles);
  both behave near 0 and 1, unlike the normal approximation. They equal scipy's
  ``binomtest(k, n).proportion_ci(method="wilson" | "exact")``.
* :func:`beta_interval` is the Clopper–Pearson form for *effective* (non-integer) counts
  ``k_eff`` of ``n_eff``; the stratified interval (:mod:`faults.common.intervals`) uses it.

Wilson's known weak spot is very small expected counts: at ``n·p`` ≈ 0.1–0.2 its coverage dips
to ≈ 0.84 (Brown, Cai & DasGupta 2001), because ``1/n`` has a Wilson lower bound of ≈ 0.18/n.
Per-stratum tables use the campaign's method (Wilson by default); pooled estimates use the
effective-count forms of :mod:`faults.common.intervals`, whose coverage is checked by simulation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

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
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
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
    return beta_interval(k, n, confidence)


def beta_interval(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson bounds from beta quantiles, for real-valued ``0 <= k <= n`` (``n > 0``):
    ``lo = B(α/2; k, n-k+1)``, ``hi = B(1-α/2; k+1, n-k)`` (0 / 1 at the edges)."""
    from scipy.stats import beta  # only these intervals need scipy

    alpha = 1.0 - confidence
    lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def interval(k: float, n: float, confidence: float = 0.95, method: str = "wilson") -> tuple[float, float]:
    """Interval by ``method`` ("wilson" or "clopper-pearson")."""
    if method_name(method) == "wilson":
        return wilson(k, n, confidence)
    return clopper_pearson(k, n, confidence)


def half_width(k: float, n: float, confidence: float = 0.95, method: str = "wilson") -> float:
    """Half the interval's width."""
    lo, hi = interval(k, n, confidence, method)
    return (hi - lo) / 2.0


@dataclass(frozen=True)
class Estimate:
    """A PVF estimate with its interval.

    ``unsampled`` strata (no trials) of a pooled estimate are not dropped: their share of the
    population (``unsampled_weight``) enters the bounds as ``[0, w]`` (worst case) and ``pvf``
    is the estimate over the sampled strata alone. ``exact``: no sampling error (every fault of
    the population evaluated on every input), the interval has zero width.
    """

    k: int
    n: int
    pvf: float
    lo: float
    hi: float
    unsampled: int = 0
    unsampled_weight: float = 0.0
    exact: bool = False

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0


def estimate(k: int, n: int, confidence: float = 0.95, method: str = "wilson") -> Estimate:
    lo, hi = interval(k, n, confidence, method)
    return Estimate(int(k), int(n), (k / n) if n else float("nan"), lo, hi)
