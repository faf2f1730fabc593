"""SDC and DUE FIT per structure from AVF and raw FIT/Mbit.

``FIT_S = AVF_S × raw_FIT_per_Mbit_S × Mbit_S`` (1 FIT = 1 failure per 10^9 device-hours;
1 Mbit = 2^20 bits). For HBM, AVF and bits are those of the parameter region (the rest of HBM
holds no parameter, so it contributes nothing to the SDC/DUE of this inference); the product is
the same as with the full capacity and its (proportionally smaller) AVF. Totals add structures.
Intervals come from the AVF intervals (the raw rate is taken as exact).

Raw FIT/Mbit defaults — **order-of-magnitude assumptions, not measurements of any product;
override them** (``--fit structure=value`` on the CLI, ``StudyConfig.fit_per_mbit`` in Python, or :func:`raw_rates` overrides):

* ``weight_sram``, ``embedding_sram``: 1000 FIT/Mbit (≈1e-3 FIT/bit). Order of magnitude of
  terrestrial SRAM soft-error rates summarised by R. Baumann, "Radiation-induced soft errors in
  advanced semiconductor technologies", IEEE Trans. Device and Materials Reliability 5(3),
  305–316, 2005 (SRAM SER per Mbit in the hundreds to thousands of FIT, roughly flat across
  nodes). The upper end of the 1e-4..1e-3 FIT/bit range; use 100 for the lower end.
* ``pe`` (operand flip-flops): 1000 FIT/Mbit — assumed equal to SRAM per bit (sequential-logic
  SER per bit is commonly reported to be of the same order as SRAM's; Baumann 2005 discusses
  latches/flip-flops becoming a significant share of chip SER). An assumption.
* ``hbm``: 10 FIT/Mbit — an assumption two orders of magnitude below SRAM per bit, reflecting
  the much lower per-bit soft-error rate of modern DRAM reported in the same survey; it is not
  taken from a measured HBM rate. Field DRAM studies report errors per device and are dominated
  by hard faults, which this model does not cover.

If the hardware config carries a ``fit_per_mbit`` field on a structure (not in the current
schema), it is used before these defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from accelsim.errors import UserError

DEFAULT_FIT_PER_MBIT = {"hbm": 10.0, "weight_sram": 1000.0, "embedding_sram": 1000.0, "pe": 1000.0}
DEFAULT_SOURCE = {
    "hbm": "assumption (10 FIT/Mbit; ~100x below SRAM per bit, cf. Baumann 2005) - override",
    "weight_sram": "Baumann, IEEE TDMR 2005: SRAM SER order of magnitude 1e3 FIT/Mbit - override",
    "embedding_sram": "Baumann, IEEE TDMR 2005: SRAM SER order of magnitude 1e3 FIT/Mbit - override",
    "pe": "assumption: flip-flops ~ SRAM per bit (1e3 FIT/Mbit) - override",
}
BITS_PER_MBIT = 1 << 20


class FitError(UserError, ValueError):
    """Bad --fit option (one line)."""


def parse_fit(items: Iterable[str]) -> dict[str, float]:
    """``["weight_sram=500", "hbm=1"]`` (or comma-joined) -> {structure: FIT/Mbit}."""
    out: dict[str, float] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in str(item).split(","))):
            key, sep, value = part.partition("=")
            if not sep or key not in DEFAULT_FIT_PER_MBIT:
                raise FitError(f"--fit {part!r}: use STRUCTURE=FIT_PER_MBIT with STRUCTURE in "
                               f"{', '.join(DEFAULT_FIT_PER_MBIT)}")
            try:
                rate = float(value)
            except ValueError:
                raise FitError(f"--fit {part!r}: {value!r} is not a number") from None
            if not rate >= 0:
                raise FitError(f"--fit {part!r}: FIT/Mbit must be >= 0")
            out[key] = rate
    return out


def raw_rates(hw=None, overrides: Mapping[str, float] | None = None) -> dict[str, tuple[float, str]]:
    """structure -> (FIT/Mbit, source): overrides, then the config's field if any, then defaults."""
    rates: dict[str, tuple[float, str]] = {}
    for s, default in DEFAULT_FIT_PER_MBIT.items():
        value, source = default, DEFAULT_SOURCE[s]
        if hw is not None:
            part = getattr(hw, s, None) if s != "pe" else getattr(hw, "array", None)
            cfg = getattr(part, "fit_per_mbit", None)
            if cfg is not None:
                value, source = float(cfg), "hardware config"
        if overrides and s in overrides:
            value, source = float(overrides[s]), "user (--fit)"
        rates[s] = (value, source)
    return rates


@dataclass(frozen=True)
class FitRow:
    """FIT of one structure (or ``total``); bits = sampled bits (HBM: parameter region).

    ``basis``: "event" when the headline ``avf_*`` / ``*_fit`` columns count failure events (an
    inference of B samples with an incorrect output, per upset), "sample" when only per-sample
    rates exist (sites run on part of the batch). ``sample_*``: the per-sample AVF and FIT beside
    it (an upset's chance of spoiling one given sample output).
    """

    structure: str
    bits: int
    fit_per_mbit: float
    raw_fit: float
    basis: str
    avf_sdc: float
    sdc_fit: float
    sdc_fit_lo: float
    sdc_fit_hi: float
    avf_due: float
    due_fit: float
    due_fit_lo: float
    due_fit_hi: float
    sample_avf_sdc: float
    sample_sdc_fit: float
    sample_sdc_fit_lo: float
    sample_sdc_fit_hi: float
    source: str


_EVENT_KEYS = ("avf_event", "event_lo", "event_hi", "avf_due_event", "due_event_lo", "due_event_hi")
_SAMPLE_KEYS = ("avf_sdc", "sdc_lo", "sdc_hi", "avf_due", "due_lo", "due_hi")


def fit_table(avf: Mapping[str, Mapping[str, float]], bits: Mapping[str, int],
              rates: Mapping[str, tuple[float, str]]) -> list[FitRow]:
    """Rows per structure + ``total`` (sums; interval bounds summed, conservative).

    ``avf[s]`` has the per-sample ``avf_sdc, sdc_lo, sdc_hi, avf_due, due_lo, due_hi`` and, when
    measured, the per-event ``avf_event, event_lo, event_hi, avf_due_event, due_event_lo,
    due_event_hi`` (the headline when every structure has them).
    """
    event = bool(avf) and all(all(k in a and a[k] == a[k] for k in _EVENT_KEYS) for a in avf.values())
    basis = "event" if event else "sample"
    rows = []
    for s, a in avf.items():
        rate, source = rates[s]
        raw = rate * bits[s] / BITS_PER_MBIT
        head = [a[k] for k in (_EVENT_KEYS if event else _SAMPLE_KEYS)]
        rows.append(FitRow(s, int(bits[s]), rate, raw, basis, head[0], head[0] * raw, head[1] * raw, head[2] * raw,
                           head[3], head[3] * raw, head[4] * raw, head[5] * raw, a["avf_sdc"], a["avf_sdc"] * raw,
                           a["sdc_lo"] * raw, a["sdc_hi"] * raw, source))
    if rows:
        tot = lambda f: sum(getattr(r, f) for r in rows)  # noqa: E731
        nan = float("nan")
        rows.append(FitRow("total", tot("bits"), nan, tot("raw_fit"), basis, nan, tot("sdc_fit"), tot("sdc_fit_lo"),
                           tot("sdc_fit_hi"), nan, tot("due_fit"), tot("due_fit_lo"), tot("due_fit_hi"), nan,
                           tot("sample_sdc_fit"), tot("sample_sdc_fit_lo"), tot("sample_sdc_fit_hi"), "sum"))
    return rows
