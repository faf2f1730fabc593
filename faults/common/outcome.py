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

Non-finite outputs (NaN or Inf in an input's output) follow a *policy* (``nonfinite``),
applied when outcomes are computed — the raw records keep the ``nonfinite`` flag, so a report
can re-apply another policy:

* ``"sdc"`` (default, :data:`DEFAULT_NONFINITE`): a non-finite output is a silent corruption,
  whatever the criterion says. Accelerators do not trap on NaN/Inf by default (IEEE 754
  arithmetic propagates them quietly), so nothing detects it;
* ``"due"``: detected — counted as DUE (for hardware that traps or checks outputs);
* ``"apart"``: neither SDC nor DUE — its own outcome :data:`NONFINITE` (code 3), reported
  beside them.

Per input the outcome is the policy's code for a non-finite output, else SDC if the criterion
holds, else masked; a trial (one fault, possibly several inputs) takes the largest code over
its inputs (non-finite apart > DUE > SDC > masked).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from accelsim.errors import UserError

MASKED, SDC, DUE, NONFINITE = 0, 1, 2, 3
NONFINITE_POLICIES = ("sdc", "due", "apart")
DEFAULT_NONFINITE = "sdc"

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


def check_nonfinite(policy: str) -> str:
    """The validated non-finite policy (``sdc``, ``due`` or ``apart``)."""
    name = str(policy).strip().lower()
    if name not in NONFINITE_POLICIES:
        raise CriterionError(f"unknown non-finite policy {policy!r}; choose {', '.join(NONFINITE_POLICIES)}")
    return name


_NONFINITE_CODE = {"sdc": SDC, "due": DUE, "apart": NONFINITE}


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

    def outcomes(self, rec: np.ndarray, nonfinite: str = DEFAULT_NONFINITE) -> np.ndarray:
        """Per-input outcome code: SDC (1) or masked (0) by the criterion; a non-finite output
        gets the code of the ``nonfinite`` policy (SDC 1, DUE 2, or NONFINITE 3 for "apart")."""
        out = np.where(self.incorrect(rec), SDC, MASKED)
        return np.where(rec["nonfinite"], _NONFINITE_CODE[check_nonfinite(nonfinite)], out).astype(np.int8)

    def trial_outcome(self, rec: np.ndarray, nonfinite: str = DEFAULT_NONFINITE) -> int:
        """Outcome of one fault over its inputs: the largest code (NONFINITE > DUE > SDC > masked)."""
        return int(self.outcomes(rec, nonfinite).max()) if rec.size else MASKED

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
                threshold = float(match.group("thr"))
                if not threshold >= 0:  # |Δ| > T with T < 0 (or NaN) would call every output wrong
                    raise CriterionError(f"criterion {term!r}: the threshold must be >= 0")
                terms.append((match.group("key"), threshold))
            elif term.lower().startswith("click"):
                threshold = float(match.group("click") or 0.5)
                if not 0.0 < threshold < 1.0:
                    raise CriterionError(f"criterion {term!r}: a click threshold is a probability in (0, 1)")
                terms.append(("click", threshold))
            else:
                terms.append((term.lower(), 0.0))
        groups.append(tuple(terms))
    return Criterion(text.replace(" ", ""), tuple(groups))


def default_criterion(classifier: bool) -> str:
    """``top1`` for classifiers, ``ctr>0.05|click`` for single-output (CTR) models."""
    return "top1" if classifier else "ctr>0.05|click"


# ---------------------------------------------------------------------------- storage
class RecordError(UserError, ValueError):
    """A stored record blob that is not a whole number of records (a damaged store)."""


def records_from_bytes(blob: bytes) -> np.ndarray:
    """Records of one trial from its stored bytes (one-line :class:`RecordError` if damaged)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) % RECORD.itemsize:
        size = len(blob) if isinstance(blob, (bytes, bytearray, memoryview)) else type(blob).__name__
        raise RecordError(f"a stored trial record of {size} bytes is not a whole number of "
                          f"{RECORD.itemsize}-byte records: the store is damaged")
    return np.frombuffer(blob, dtype=RECORD).copy()


def summarize_many(rec: np.ndarray, bounds: np.ndarray) -> list[dict[str, float | int]]:
    """Scalar raw deviations (columns of the store) of consecutive trials: trial ``i`` owns
    ``rec[bounds[i]:bounds[i+1]]``."""
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
