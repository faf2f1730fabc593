"""Trial outcomes: raw deviations per input, criteria, masked / SDC / DUE.

Every trial keeps, for each of its inputs whose output changed at all, the raw deviation
record :data:`RECORD` (input index, max |Δ| over the output, NaN/Inf, golden and faulty top-1
with the faulty deciding gap, golden and faulty CTR), so that any criterion can be re-applied
later without re-running; an input whose output is bit-identical to the golden one is masked
under every criterion, so only the trial's input count is kept for it.

Criteria (``parse_criterion``), combinable with ``|`` (or) and ``&`` (and):

* ``top1``            the faulty top-1 class differs from the golden one (classifiers);
* ``ctr>T``           |CTR_faulty − CTR_golden| > T (single-output models: DLRM);
* ``click`` / ``click@T``  the click decision (CTR > T, default 0.5) flips;
* ``dev>T``           max |Δ| over the output elements > T (any model);
* ``any``             any output element changed at all.

DUE (detected, not silent): the output of that input contains NaN or Inf — where the
hardware would trap. Per input the outcome is DUE, else SDC if the criterion holds, else
masked; a trial (one fault, possibly several inputs) is DUE if any input is, else SDC if any
input is, else masked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from accelsim.errors import UserError

MASKED, SDC, DUE = 0, 1, 2
OUTCOME_NAMES = ("masked", "sdc", "due")

RECORD = np.dtype(
    [
        ("input", "<i4"),
        ("dev", "<f8"),
        ("nonfinite", "?"),
        ("g_top1", "<i4"),
        ("f_top1", "<i4"),
        ("f_gap", "<f8"),
        ("ctr_g", "<f8"),
        ("ctr_f", "<f8"),
    ]
)


class CriterionError(UserError, ValueError):
    """A malformed criterion string (one line)."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def compare(
    golden: np.ndarray,
    faulty: np.ndarray,
    input_index: np.ndarray,
    *,
    probability: bool = False,
) -> np.ndarray:
    """Raw deviation records of faulty vs golden outputs (leading axis = input).

    Args:
        golden, faulty: arrays ``[m, ...]`` of the same shape.
        input_index: the eval-set index of each of the ``m`` inputs.
        probability: single-value outputs are already probabilities (else logits → sigmoid).
    """
    m = golden.shape[0]
    g = golden.reshape(m, -1).astype(np.float64)
    f = faulty.reshape(m, -1).astype(np.float64)
    rec = np.zeros(m, dtype=RECORD)
    rec["input"] = input_index
    finite = np.isfinite(f).all(axis=1)
    rec["nonfinite"] = ~finite
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(f - g)
    diff = np.where(np.isnan(diff), np.inf, diff)
    rec["dev"] = diff.max(axis=1) if g.shape[1] else 0.0
    if g.shape[1] > 1:
        g_top = np.argmax(g, axis=1)
        f_clean = np.where(np.isnan(f), -np.inf, f)
        rec["g_top1"] = g_top
        rec["f_top1"] = np.argmax(f_clean, axis=1)
        own = f_clean[np.arange(m), g_top]
        others = f_clean.copy()
        others[np.arange(m), g_top] = -np.inf
        with np.errstate(invalid="ignore"):
            rec["f_gap"] = own - others.max(axis=1)
        rec["ctr_g"] = np.nan
        rec["ctr_f"] = np.nan
    else:
        rec["g_top1"] = -1
        rec["f_top1"] = -1
        rec["f_gap"] = np.nan
        if g.shape[1] == 1:
            rec["ctr_g"] = g[:, 0] if probability else _sigmoid(g[:, 0])
            rec["ctr_f"] = f[:, 0] if probability else _sigmoid(f[:, 0])
        else:
            rec["ctr_g"] = np.nan
            rec["ctr_f"] = np.nan
    return rec


# ---------------------------------------------------------------------------- criteria
_TERM = re.compile(r"^(top1|any|click(?:@(?P<click>[-+0-9.eE]+))?|(?P<key>ctr|dev)>(?P<thr>[-+0-9.eE]+))$")


@dataclass(frozen=True)
class Criterion:
    """A parsed criterion: OR of AND-groups of terms (each term a (name, threshold) pair)."""

    text: str
    groups: tuple[tuple[tuple[str, float], ...], ...]

    def incorrect(self, rec: np.ndarray) -> np.ndarray:
        """Per-input boolean: is this output incorrect (SDC, if finite)?"""
        result = np.zeros(rec.shape, dtype=bool)
        for group in self.groups:
            part = np.ones(rec.shape, dtype=bool)
            for name, thr in group:
                part &= _term(name, thr, rec)
            result |= part
        return result

    def outcomes(self, rec: np.ndarray) -> np.ndarray:
        """Per-input outcome code: DUE (2), SDC (1) or masked (0)."""
        out = np.where(self.incorrect(rec), SDC, MASKED)
        return np.where(rec["nonfinite"], DUE, out).astype(np.int8)

    def trial_outcome(self, rec: np.ndarray) -> int:
        """Outcome of one fault over its inputs: DUE > SDC > masked."""
        return int(self.outcomes(rec).max()) if rec.size else MASKED

    def ambiguous(self, rec: np.ndarray, atol: float = 1e-5, rtol: float = 1e-5) -> np.ndarray:
        """Inputs whose deciding margin is within floating-point noise (may be set aside).

        top1: the faulty gap between the golden class and the best other class is within
        ``atol``; click/ctr: the faulty CTR (or its deviation) is within ``atol`` of the
        threshold; dev: the deviation is within ``rtol`` of the threshold.
        """
        amb = np.zeros(rec.shape, dtype=bool)
        for group in self.groups:
            for name, thr in group:
                if name == "top1":
                    amb |= np.abs(rec["f_gap"]) <= atol
                elif name == "click":
                    amb |= np.abs(rec["ctr_f"] - thr) <= atol
                elif name == "ctr":
                    amb |= np.abs(np.abs(rec["ctr_f"] - rec["ctr_g"]) - thr) <= atol
                elif name == "dev":
                    amb |= np.abs(rec["dev"] - thr) <= rtol * max(abs(thr), 1e-30) + atol
        return amb & ~rec["nonfinite"]


def _term(name: str, thr: float, rec: np.ndarray) -> np.ndarray:
    if name == "top1":
        return rec["g_top1"] != rec["f_top1"]
    if name == "any":
        return rec["dev"] > 0
    if name == "dev":
        return rec["dev"] > thr
    if name == "ctr":
        with np.errstate(invalid="ignore"):
            return np.abs(rec["ctr_f"] - rec["ctr_g"]) > thr
    if name == "click":
        return (rec["ctr_g"] > thr) != (rec["ctr_f"] > thr)
    raise CriterionError(f"unknown criterion term {name!r}")


def parse_criterion(text: str) -> Criterion:
    """Parse ``top1``, ``ctr>0.1|click``, ``dev>1e-3&top1`` ... (see module docstring)."""
    groups: list[tuple[tuple[str, float], ...]] = []
    if not text.strip():
        raise CriterionError("empty criterion")
    for alt in text.replace(" ", "").split("|"):
        terms: list[tuple[str, float]] = []
        for term in alt.split("&"):
            match = _TERM.match(term.lower())
            if not match:
                raise CriterionError(
                    f"unknown criterion {term!r} in {text!r}; use top1, ctr>T, click[@T], dev>T, any"
                )
            if match.group("key"):
                terms.append((match.group("key"), float(match.group("thr"))))
            elif term.lower().startswith("click"):
                terms.append(("click", float(match.group("click") or 0.5)))
            else:
                terms.append((term.lower(), 0.0))
        groups.append(tuple(terms))
    return Criterion(text.replace(" ", ""), tuple(groups))


def default_criterion(classifier: bool) -> str:
    """``top1`` for classifiers, ``ctr>0.05|click`` for single-output (CTR) models."""
    return "top1" if classifier else "ctr>0.05|click"


# ---------------------------------------------------------------------------- storage
def records_to_bytes(rec: np.ndarray) -> bytes:
    """Raw little-endian bytes of a record array (dtype :data:`RECORD`, fixed layout)."""
    return np.ascontiguousarray(rec, dtype=RECORD).tobytes()


def records_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=RECORD).copy()


def summarize(rec: np.ndarray) -> dict[str, float | int]:
    """Scalar raw deviations of one trial (columns of the store)."""
    return summarize_many(rec, np.array([0, rec.size]))[0]


def summarize_many(rec: np.ndarray, bounds: np.ndarray) -> list[dict[str, float | int]]:
    """:func:`summarize` for consecutive trials: trial ``i`` owns ``rec[bounds[i]:bounds[i+1]]``."""
    bounds = np.asarray(bounds, dtype=np.int64)
    starts = bounds[:-1]
    sizes = np.diff(bounds)
    n = sizes.size
    if rec.size == 0:
        return [dict(n_inputs=0, max_abs_dev=0.0, n_nonfinite=0, n_top1_changed=0,
                     max_ctr_dev=float("nan"), n_click_flipped=0) for _ in range(n)]
    with np.errstate(invalid="ignore"):
        ctr_dev = np.abs(rec["ctr_f"] - rec["ctr_g"])
    ctr_dev = np.where(np.isnan(ctr_dev) & rec["nonfinite"], np.inf, ctr_dev)
    has_ctr = ~np.isnan(rec["ctr_g"])
    ctr_fill = np.where(np.isnan(ctr_dev), -np.inf, ctr_dev)
    max_dev = np.maximum.reduceat(rec["dev"], starts)
    nonfinite = np.add.reduceat(rec["nonfinite"].astype(np.int64), starts)
    top1 = np.add.reduceat(((rec["g_top1"] != rec["f_top1"]) & (rec["g_top1"] >= 0)).astype(np.int64), starts)
    max_ctr = np.maximum.reduceat(ctr_fill, starts)
    any_ctr = np.add.reduceat(has_ctr.astype(np.int64), starts) > 0
    clicks = np.add.reduceat((((rec["ctr_g"] > 0.5) != (rec["ctr_f"] > 0.5)) & has_ctr).astype(np.int64), starts)
    out = []
    for i in range(n):
        out.append({
            "n_inputs": int(sizes[i]),
            "max_abs_dev": float(max_dev[i]),
            "n_nonfinite": int(nonfinite[i]),
            "n_top1_changed": int(top1[i]),
            "max_ctr_dev": float(max_ctr[i]) if any_ctr[i] else float("nan"),
            "n_click_flipped": int(clicks[i]),
        })
    return out
