"""Number formatting shared by the reports: 3 significant digits, intervals, percentages."""
from __future__ import annotations


def sig3(x, *, clamp: bool = False) -> str:
    """``x`` to 3 significant digits ("nan" for None/NaN). ``clamp``: beyond 1e30 (an interval's
    unbounded end) "∞", below 1e-30 "0" (bounds there come from products of tiny bounds and mean
    "no bound")."""
    if x is None or x != x:
        return "nan"
    x = float(x)
    if clamp and abs(x) > 1e30:
        return "∞"
    if clamp and abs(x) < 1e-30:
        return "0"
    return f"{x:.3g}"


def interval(value, lo, hi, *, clamp: bool = False) -> str:
    """``value [lo, hi]``, each by :func:`sig3`."""
    return f"{sig3(value, clamp=clamp)} [{sig3(lo, clamp=clamp)}, {sig3(hi, clamp=clamp)}]"


def percent(x) -> str:
    """A fraction as a percentage to 3 significant digits ("0%" for 0)."""
    value = 100 * float(x)
    return "0%" if value == 0 else f"{value:.3g}%"
